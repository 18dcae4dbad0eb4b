"""Streaming, crash-safe writing of trajectory files, and conversion of foreign grid files.

:func:`write_trajectories` writes batches as they arrive into a temporary file next to the
target and renames it into place only after the last batch, so an interrupted run never
leaves a file that looks complete.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from genphys.data.mesh_h5 import MeshWriter
from genphys.data.well import WellWriter
from genphys.errors import UserInputError
from genphys.physics.base import GridTrajectories, MeshTrajectory


def check_target(path: str | os.PathLike, overwrite: bool) -> Path:
    """Validate an output path (existence, overwrite, directory writable) early."""
    p = Path(path)
    if p.is_dir():
        raise UserInputError(f"output path {p} is a directory; give a file name like data.hdf5.")
    if p.exists() and not overwrite:
        raise UserInputError(f"output file {p} already exists; pass overwrite=True "
                             "(--overwrite) to replace it.")
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        raise UserInputError(f"output directory {parent} does not exist; create it first.")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UserInputError(f"output directory {parent} is not writable.")
    return p


def _writer_for(f: h5py.File, batch: Any, system_name: str, attrs: dict | None):
    if isinstance(batch, GridTrajectories):
        return WellWriter(f, system_name, attrs)
    if isinstance(batch, (list, tuple)) and batch and isinstance(batch[0], MeshTrajectory):
        return MeshWriter(f, system_name, attrs)
    raise UserInputError(
        f"cannot write a batch of type {type(batch).__name__}; expected GridTrajectories or "
        "a non-empty list of MeshTrajectory.")


def write_trajectories(path: str | os.PathLike, batches: Iterable[Any], *, system_name: str,
                       overwrite: bool = False, attrs: dict[str, Any] | None = None) -> Path:
    """Stream batches into ``path`` (Well schema for grids, mesh schema for meshes), atomically."""
    p = check_target(path, overwrite)
    tmp = p.with_name(f".{p.name}.{uuid.uuid4().hex[:8]}.tmp")  # not *.h5: globs skip it
    try:
        with h5py.File(tmp, "w") as f:
            writer = None
            for batch in batches:
                if writer is None:
                    writer = _writer_for(f, batch, system_name, attrs)
                writer.append(batch)
            if writer is None or writer.n == 0:
                raise UserInputError(f"no trajectories to write to {p}; the batch iterator "
                                     "was empty.")
            writer.finish()
        os.replace(tmp, p)
    except BaseException:  # includes KeyboardInterrupt: never leave a half-written file
        tmp.unlink(missing_ok=True)
        raise
    return p


def _grid_batches(src: Any, batch_size: int, t_stride: int, x_stride: int,
                  periodic: bool) -> Iterator[GridTrajectories]:
    """Re-batch items of an open grid file as :class:`GridTrajectories` (optionally strided)."""
    sl = (slice(None), slice(None, None, t_stride)) + (slice(None, None, x_stride),) * 3
    for start in range(0, len(src), batch_size):
        items = [src[i] for i in range(start, min(start + batch_size, len(src)))]
        first = items[0]
        nd = len(first["coords"])
        yield GridTrajectories(
            system=src.system,
            fields={n: np.stack([it["fields"][c] for it in items])[sl[: 2 + nd]]
                    for c, n in enumerate(first["field_names"])},  # (B, T, *space)
            time=first["time"][::t_stride],
            coords={d: x[::x_stride] for d, x in first["coords"].items()},
            params={k: np.array([it["params"][k] for it in items]) for k in first["params"]},
            seeds=np.array([it["seed"] for it in items], np.int64),
            captions=[it["captions"] for it in items],
            periodic=periodic,
            attrs={"source": str(src.path), "source_layout": src.layout,
                   "time_stride": t_stride, "space_stride": x_stride},
        )


def import_pdebench(path_in: str | os.PathLike, path_out: str | os.PathLike, *,
                    system_name: str | None = None, overwrite: bool = False,
                    batch_size: int = 64, time_stride: int = 1, space_stride: int = 1,
                    periodic: bool = True) -> Path:
    """Convert a PDEBench file (either layout; any grid file works) to our Well layout."""
    from genphys.data.reader import open_trajectories

    for name, v in (("batch_size", batch_size), ("time_stride", time_stride),
                    ("space_stride", space_stride)):
        if int(v) != v or v < 1:
            raise UserInputError(f"{name}={v!r} is not allowed; use a positive integer.")
    check_target(path_out, overwrite)
    with open_trajectories(path_in) as src:
        if src.kind != "grid":
            raise UserInputError(f"{path_in} holds mesh trajectories; only grid files can be "
                                 "imported into the Well layout.")
        return write_trajectories(
            path_out, _grid_batches(src, batch_size, time_stride, space_stride, periodic),
            system_name=system_name or src.system, overwrite=overwrite)
