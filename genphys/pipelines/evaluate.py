"""Measure a first-frame-conditioned Burgers model through the pipelines (issue 7 figures).

``python -m genphys.pipelines.evaluate MODEL DATA [--split test] [--num 32]`` prints

- the relative L2 of initial-condition-conditioned samples to the stored solver trajectories
  at several step counts, per viscosity decade;
- the rollout to twice the trained window: relative L2 per window against a spectral
  re-solve from the stored first frame (``genphys.physics.spectral1d``).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from genphys.pipelines.rollout import RolloutPipeline
from genphys.pipelines.text_to_simulation import TextToSimulationPipeline


def rel_l2(pred: np.ndarray, true: np.ndarray) -> np.ndarray:
    """Per-sample ||pred - true||_2 / ||true||_2 over all non-batch axes."""
    d = (pred - true).reshape(len(pred), -1)
    return np.linalg.norm(d, axis=1) / np.linalg.norm(true.reshape(len(true), -1), axis=1)


def test_items(pipe: Any, data: str, split: str, num: int) -> dict[str, np.ndarray]:
    """The first ``num`` trajectories of a split in physical units, with their parameters."""
    from genphys.data import TrajectoryDataset

    ds = TrajectoryDataset(data, split, fields=list(pipe.spec.field_names))
    items = [ds[i] for i in range(min(num, len(ds)))]
    x = ds.denormalize(torch.stack([it["x"] for it in items]), channel_dim=1).double()
    params = torch.stack([it["params"] for it in items]).double().numpy()  # (N, P)
    return {"x": x.numpy(), "params": params, "names": np.array(ds.param_names)}


def ic_errors(pipe: TextToSimulationPipeline, items: dict[str, np.ndarray], steps: int,
              sampler: str, seed: int = 0) -> np.ndarray:
    """Relative L2 of one sample per trajectory, conditioned on its frame 0 and parameters."""
    x = items["x"]
    params = {n: items["params"][:, j] for j, n in enumerate(items["names"])}
    out = pipe(initial_state=x[:, :, 0], params=params, num_inference_steps=steps,
               sampler=sampler, generator=seed)
    return rel_l2(out.trajectories.numpy(), x)


def by_decade(nu: np.ndarray, err: np.ndarray) -> dict[str, float]:
    """Mean error per viscosity decade ``[1e-3, 1e-2)`` etc."""
    dec = np.floor(np.log10(nu)).astype(int)
    return {f"[1e{d}, 1e{d + 1})": float(err[dec == d].mean()) for d in sorted(set(dec))}


def fit_viscosity(u: np.ndarray, t_final: float, grid: np.ndarray | None = None,
                  n_modes: int = 256) -> np.ndarray:
    """Viscosity of each Burgers trajectory ``u (B, T, X)`` by simulation: the nu whose
    spectral re-solve from u's own first frame matches u best in relative L2 (a grid search
    in log nu, refined by a parabola through the best point and its neighbours), shape (B,)."""
    from genphys.physics.spectral1d import relative_l2, resolve_from_first_frame

    u = np.asarray(u, dtype=np.float64)
    grid = np.geomspace(5e-4, 2e-1, 17) if grid is None else np.asarray(grid, dtype=np.float64)
    err = np.stack([relative_l2(u, resolve_from_first_frame(u[:, 0], nu, u.shape[1], t_final,
                                                             n_modes)) for nu in grid], 1)
    k = np.clip(err.argmin(1), 1, len(grid) - 2)  # (B,) interior best index
    lg, rows = np.log(grid), np.arange(len(u))
    e0, e1, e2 = err[rows, k - 1], err[rows, k], err[rows, k + 1]
    h = lg[1] - lg[0]  # uniform step in log nu
    denom = e0 - 2 * e1 + e2
    shift = np.where(denom > 0, 0.5 * (e0 - e2) / np.where(denom > 0, denom, 1.0), 0.0)
    return np.exp(lg[k] + h * np.clip(shift, -1.0, 1.0))


def adherence(nu_asked: np.ndarray, nu_fit: np.ndarray) -> dict[str, float]:
    """How well fitted viscosities follow the asked ones: Pearson r of log10 values and the
    mean absolute log10 error (decades)."""
    a, f = np.log10(nu_asked), np.log10(nu_fit)
    return {"log10_corr": float(np.corrcoef(a, f)[0, 1]),
            "mean_abs_log10_err": float(np.abs(a - f).mean())}


def rollout_errors(roll: RolloutPipeline, items: dict[str, np.ndarray], steps: int,
                   sampler: str, dt: float) -> dict[str, list[float]]:
    """Errors per window of a 2x-window rollout vs the spectral re-solve from frame 0.

    ``median``: median relative L2 per window; ``vs_start``: mean ||pred - ref|| over the
    window divided by ||ref|| over the first window (robust when a viscous field decays to
    almost zero, where the relative L2 of a later window is dominated by a tiny norm).
    """
    from genphys.physics.spectral1d import resolve_from_first_frame

    x, nu = items["x"], items["params"][:, list(items["names"]).index("nu")]
    t_win = x.shape[2]
    horizon = 2 * t_win - 1
    r = roll(x[:, :, 0], horizon, overlap=1, num_inference_steps=steps, sampler=sampler,
             params={"nu": nu})
    ref = resolve_from_first_frame(x[:, 0, 0], nu, horizon, dt * (horizon - 1))  # (N, H, X)
    pred = r.trajectories[:, 0, 0].numpy()  # (N, H, X), member 0
    norm0 = np.linalg.norm(ref[:, :t_win].reshape(len(ref), -1), axis=1)
    out: dict[str, list[float]] = {"median": [], "vs_start": []}
    for s in r.starts:
        p, q = pred[:, s:s + t_win], ref[:, s:s + t_win]
        out["median"].append(float(np.median(rel_l2(p, q))))
        out["vs_start"].append(float((np.linalg.norm((p - q).reshape(len(p), -1), axis=1)
                                      / norm0).mean()))
    return out


def main(argv: Sequence[str] | None = None) -> None:
    """Print the IC-conditioned errors per step count and the rollout error per window."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("data")
    ap.add_argument("--split", default="test")
    ap.add_argument("--num", type=int, default=32)
    ap.add_argument("--sampler", default="rf_heun")
    ap.add_argument("--steps", type=int, nargs="+", default=[5, 10, 25, 50])
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    pipe = TextToSimulationPipeline.from_pretrained(args.model)
    items = test_items(pipe, args.data, args.split, args.num)
    nu = items["params"][:, list(items["names"]).index("nu")]
    print(f"{len(nu)} {args.split} trajectories, sampler {args.sampler}")
    print("| steps | mean rel L2 | " + " | ".join(by_decade(nu, nu).keys()) + " |")
    for n in args.steps:
        err = ic_errors(pipe, items, n, args.sampler)
        cells = " | ".join(f"{v:.4f}" for v in by_decade(nu, err).values())
        print(f"| {n} | {err.mean():.4f} | {cells} |")
    time = np.asarray(pipe.spec.extra.get("time", []))
    dt = float(time[1] - time[0]) if len(time) > 1 else 1.0 / (items["x"].shape[2] - 1)
    roll = RolloutPipeline(backbone=pipe.backbone, spec=pipe.spec)
    errs = rollout_errors(roll, items, 10, args.sampler, dt)
    for key, vals in errs.items():
        print(f"rollout to 2x window ({key}) per window: " + ", ".join(f"{e:.4f}" for e in vals))


if __name__ == "__main__":
    main()
