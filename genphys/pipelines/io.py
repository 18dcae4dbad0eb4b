"""Pipeline outputs as data-engine files, initial states from files, the physics check."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from genphys.errors import UserInputError
from genphys.physics.base import GridTrajectories
from genphys.pipelines.spec import PipelineSpec


def grid_axes(spec: PipelineSpec, n_t: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(time, coords) of the model grid: the training file's, else unit-interval cell centres."""
    space = spec.field_shape[2:]
    time = np.asarray(spec.extra.get("time", []), dtype=np.float64)
    coords = {k: np.asarray(v, np.float64) for k, v in spec.extra.get("coords", {}).items()}
    if len(time) < 2:
        time = np.linspace(0.0, 1.0, spec.field_shape[1])
    if n_t > len(time):  # rollouts run past the trained window at the same step
        time = time[0] + (time[1] - time[0]) * np.arange(n_t)
    if [len(v) for v in coords.values()] != list(space):
        coords = {a: (np.arange(n) + 0.5) / n for a, n in zip(("x", "y", "z"), space)}
    return time[:n_t], coords


def to_grid_trajectories(spec: PipelineSpec, trajectories: torch.Tensor,
                         params: Mapping[str, np.ndarray], captions: Sequence[str],
                         seeds: Sequence[int], attrs: dict[str, Any]) -> GridTrajectories:
    """Generated ``(B, C, T, *space)`` trajectories as a writable :class:`GridTrajectories`."""
    u = trajectories.detach().cpu().numpy().astype(np.float32)
    n_t = u.shape[2]
    time, coords = grid_axes(spec, n_t)
    fields = {name: u[:, c] for c, name in enumerate(spec.field_names)}  # (B, T, *space)
    return GridTrajectories(
        system=spec.system or "generated", fields=fields, time=time, coords=coords,
        params={k: np.asarray(v, np.float64) for k, v in params.items()},
        seeds=np.asarray(seeds, np.int64), captions=[[c] for c in captions],
        periodic=True, attrs=attrs)


def write_output(path: str | os.PathLike, batch: GridTrajectories, overwrite: bool) -> Path:
    """Write a batch in the data engine's HDF5 schema (The Well layout + captions)."""
    from genphys.data import write_trajectories

    return write_trajectories(path, [batch], system_name=batch.system, overwrite=overwrite)


def load_initial_state(spec: str) -> tuple[np.ndarray, dict[str, float]]:
    """``FILE[:INDEX]`` -> (frame 0 ``(C, *space)`` of that trajectory, its parameters)."""
    from genphys.data.reader import open_trajectories

    path, _, index = spec.partition(":") if not Path(spec).is_file() else (spec, "", "")
    try:
        i = int(index) if index else 0
    except ValueError:
        raise UserInputError(f"--init {spec!r}: INDEX must be an integer (FILE:INDEX).") from None
    if not Path(path).is_file():
        raise UserInputError(f"--init file {path!r} does not exist.")
    with open_trajectories(Path(path)) as f:
        if f.kind != "grid":
            raise UserInputError(f"--init file {path} holds mesh data; give a grid file.")
        if not -len(f) <= i < len(f):
            raise UserInputError(f"--init index {i} is out of range for {len(f)} trajectories.")
        item = f[i]
    return np.asarray(item["fields"])[:, 0], dict(item["params"])


def consistency(spec: PipelineSpec, trajectories: torch.Tensor,
                params: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Relative L2 of each Burgers trajectory vs the re-solve from its own first frame.

    Returns ``(error, nu, inferred)``, each ``(B,)``: where the viscosity was not stated
    (NaN), it is inferred from the trajectory itself (``spectral1d.fit_viscosity``, the nu
    whose re-solve matches best), so the error is then the smallest over all viscosities.
    """
    from genphys.physics.spectral1d import consistency_error, fit_viscosity

    if (spec.system or "") != "burgers1d" or len(spec.field_shape) != 3:
        raise UserInputError(f"--check re-solves Burgers only; this model's system is "
                             f"{spec.system!r} (allowed: burgers1d).")
    time, _ = grid_axes(spec, trajectories.shape[2])
    t_final = float(time[-1] - time[0])
    u = trajectories[:, 0].detach().cpu().numpy()  # (B, T, X)
    nu = np.broadcast_to(np.asarray(params.get("nu", [np.nan]), dtype=np.float64),
                         (len(u),)).copy()
    inferred = ~np.isfinite(nu)
    if inferred.any():
        nu[inferred] = fit_viscosity(u[inferred], t_final)
    return consistency_error(u, nu, t_final), nu, inferred
