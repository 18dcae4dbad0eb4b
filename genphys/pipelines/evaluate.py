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
              sampler: str, seed: int = 0, **kw: Any) -> np.ndarray:
    """Relative L2 of one sample per trajectory, conditioned on its frame 0 and parameters."""
    x = items["x"]
    params = {n: items["params"][:, j] for j, n in enumerate(items["names"])}
    out = pipe(initial_state=x[:, :, 0], params=params, num_inference_steps=steps,
               sampler=sampler, generator=seed, **kw)
    return rel_l2(out.trajectories.numpy(), x)


def by_decade(nu: np.ndarray, err: np.ndarray) -> dict[str, float]:
    """Mean error per viscosity decade ``[1e-3, 1e-2)`` etc."""
    dec = np.floor(np.log10(nu)).astype(int)
    return {f"[1e{d}, 1e{d + 1})": float(err[dec == d].mean()) for d in sorted(set(dec))}


def adherence(nu_asked: np.ndarray, nu_fit: np.ndarray) -> dict[str, float]:
    """How well fitted viscosities follow the asked ones: Pearson r of log10 values and the
    mean absolute log10 error (decades)."""
    a, f = np.log10(nu_asked), np.log10(nu_fit)
    return {"log10_corr": float(np.corrcoef(a, f)[0, 1]),
            "mean_abs_log10_err": float(np.abs(a - f).mean())}


def stated_prompts(data: str, split: str, num: int,
                   stated: bool = True) -> tuple[list[str], np.ndarray]:
    """Up to ``num`` held-out captions that state the viscosity and the value they state, or
    (``stated=False``) captions that do not state it and their trajectory's viscosity (the
    text then implies it only through shocks, energy decay and the like)."""
    from genphys.data import TrajectoryDataset, open_trajectories
    from genphys.pipelines.spec import parse_params

    ds = TrajectoryDataset(data, split, normalize=False)
    prompts, nus = [], []
    with open_trajectories(data) as f:
        for i in ds.indices:
            item = f[i]
            for cap in item["captions"]:
                nu = parse_params(cap, ("nu",)).get("nu")
                if (nu is not None) == stated:
                    prompts.append(cap)
                    nus.append(nu if stated else float(item["params"]["nu"]))
                    break
            if len(prompts) == num:
                break
    return prompts, np.asarray(nus)


def text_adherence(pipe: TextToSimulationPipeline, prompts: list[str], nu: np.ndarray,
                   scales: Sequence[float], steps: int, sampler: str, guide: str = "all",
                   **kw: Any) -> dict[float, dict[str, float]]:
    """Text-only generation per guidance scale: how well the viscosity fitted to each sample
    follows the prompt's (``adherence``), and the physical-consistency error at that nu."""
    from genphys.physics.spectral1d import consistency_error, fit_viscosity

    time = np.asarray(pipe.spec.extra.get("time", [0.0, 1.0]))
    t_final = float(time[-1] - time[0])
    out = {}
    for g in scales:
        scale = float(g) if guide == "all" else {"text": float(g)}
        traj = pipe(prompts, guidance_scale=scale, num_inference_steps=steps,
                    sampler=sampler, generator=0, **kw).trajectories[:, 0].numpy()  # (N, T, X)
        fit = fit_viscosity(traj, t_final)
        out[float(g)] = {**adherence(nu, fit), "nu_fit": [float(v) for v in fit],
                         "consistency": float(consistency_error(traj, nu, t_final).mean())}
    return out


def long_items(path: str, num: int) -> dict[str, np.ndarray]:
    """The first ``num`` trajectories of a (longer-horizon) file in physical units."""
    from genphys.data import open_trajectories

    xs, ps = [], []
    with open_trajectories(path) as f:
        names = None
        for i in range(min(num, len(f))):
            it = f[i]
            names = names or list(it["params"])
            xs.append(np.asarray(it["fields"], dtype=np.float64))  # (C, T, X)
            ps.append([float(it["params"][n]) for n in names])
    return {"x": np.stack(xs), "params": np.asarray(ps), "names": np.array(names)}


def rollout_errors(roll: RolloutPipeline, items: dict[str, np.ndarray], steps: int,
                   sampler: str, dt: float, ref: np.ndarray | None = None,
                   **kw: Any) -> dict[str, Any]:
    """Errors per window of a rollout from frame 0 vs a reference ``ref`` (N, H, X).

    ``ref`` defaults to the spectral re-solve of a 2x-window horizon from frame 0; pass the
    stored frames of a longer-horizon data file (same dt) to skip the re-solve. ``median``:
    median relative L2 per window; ``mean``: mean; ``vs_start``: mean ||pred - ref|| over the
    window divided by ||ref|| over the first window (robust when a viscous field decays to
    almost zero); ``by_decade``: mean relative L2 per window and viscosity decade.
    """
    from genphys.physics.spectral1d import resolve_from_first_frame

    x, nu = items["x"], items["params"][:, list(items["names"]).index("nu")]
    t_win = roll.spec.field_shape[1]
    if ref is None:
        horizon = 2 * t_win - 1
        ref = resolve_from_first_frame(x[:, 0, 0], nu, horizon, dt * (horizon - 1))
    horizon = ref.shape[1]
    r = roll(x[:, :, 0], horizon, overlap=1, num_inference_steps=steps, sampler=sampler,
             params={"nu": nu}, **kw)
    pred = r.trajectories[:, 0, 0].numpy()  # (N, H, X), member 0
    norm0 = np.linalg.norm(ref[:, :t_win].reshape(len(ref), -1), axis=1)
    out: dict[str, Any] = {"starts": [int(s) for s in r.starts], "median": [], "mean": [],
                           "vs_start": [], "by_decade": {}}
    for s in r.starts:
        p, q = pred[:, s:s + t_win], ref[:, s:s + t_win]
        err = rel_l2(p, q)
        out["median"].append(float(np.median(err)))
        out["mean"].append(float(err.mean()))
        out["vs_start"].append(float((np.linalg.norm((p - q).reshape(len(p), -1), axis=1)
                                      / norm0).mean()))
        for k, v in by_decade(nu, err).items():
            out["by_decade"].setdefault(k, []).append(v)
    return out


def main(argv: Sequence[str] | None = None) -> None:
    """Print (and optionally save as JSON) the issue 7 figures of a Burgers model."""
    import json

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("data")
    ap.add_argument("--split", default="test")
    ap.add_argument("--num", type=int, default=32)
    ap.add_argument("--sampler", default="rf_euler")
    ap.add_argument("--steps", type=int, nargs="+", default=[5, 10, 20, 50])
    ap.add_argument("--sigma-min", type=float, default=None, help="override the grid's end")
    ap.add_argument("--guidance", type=float, nargs="*", default=[1.0, 2.0, 4.0],
                    help="text-only guidance scales (empty: skip)")
    ap.add_argument("--guide", choices=["all", "text"], default="all",
                    help="guide every condition with one scale, or the text slots only")
    ap.add_argument("--unstated", action="store_true",
                    help="text-only prompts that do not state nu (target: the trajectory's nu)")
    ap.add_argument("--no-rollout", action="store_true")
    ap.add_argument("--rollout-data", default=None,
                    help="longer-horizon file (same dt) whose stored frames are the rollout "
                         "reference; default: spectral re-solve of a 2x window")
    ap.add_argument("--rollout-num", type=int, default=None,
                    help="trajectories for the rollout (default: --num)")
    ap.add_argument("--conserve", action=argparse.BooleanOptionalAction, default=None,
                    help="conserved-mean projection (default: on when the system has one)")
    ap.add_argument("--json", default=None, help="write the figures to this JSON file")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    pipe = TextToSimulationPipeline.from_pretrained(args.model)
    kw = {"sigma_options": {"sigma_min": args.sigma_min}} if args.sigma_min else {}
    kw["conserve"] = args.conserve
    items = test_items(pipe, args.data, args.split, args.num)
    nu = items["params"][:, list(items["names"]).index("nu")]
    res: dict[str, Any] = {"model": args.model, "split": args.split, "n": len(nu),
                           "sampler": args.sampler, "sigma_min": args.sigma_min,
                           "conserve": pipe.conserved_channels(args.conserve) != [], "ic": {}}
    print(f"{len(nu)} {args.split} trajectories, sampler {args.sampler}")
    print("| steps | mean rel L2 | " + " | ".join(by_decade(nu, nu).keys()) + " |")
    for n in args.steps:
        err = ic_errors(pipe, items, n, args.sampler, **kw)
        res["ic"][n] = {"mean": float(err.mean()), **by_decade(nu, err)}
        cells = " | ".join(f"{v:.4f}" for v in by_decade(nu, err).values())
        print(f"| {n} | {err.mean():.4f} | {cells} |", flush=True)
    if args.guidance:
        prompts, pnu = stated_prompts(args.data, args.split, args.num, not args.unstated)
        res["text"] = text_adherence(pipe, prompts, pnu, args.guidance, 10, args.sampler,
                                     guide=args.guide, **kw)
        res["text_prompts"] = "unstated" if args.unstated else "stated"
        res["text_nu"] = [float(v) for v in pnu]
        print(f"text-only ({len(prompts)} prompts that {'do not ' * args.unstated}state nu), "
              f"10 steps, guiding {args.guide}:")
        for g, r in res["text"].items():
            print(f"  guidance {g}: log10 nu corr {r['log10_corr']:.3f}, mean |log10 err| "
                  f"{r['mean_abs_log10_err']:.3f}, consistency {r['consistency']:.4f}")
    if not args.no_rollout:
        time = np.asarray(pipe.spec.extra.get("time", []))
        dt = float(time[1] - time[0]) if len(time) > 1 else 1.0 / (items["x"].shape[2] - 1)
        roll = RolloutPipeline(backbone=pipe.backbone, spec=pipe.spec)
        n_roll = args.rollout_num or args.num
        ritems, ref = items, None
        if args.rollout_data:
            ritems = long_items(args.rollout_data, n_roll)
            ref = ritems["x"][:, 0]  # (N, H, X)
        else:
            ritems = {k: v[:n_roll] if k != "names" else v for k, v in items.items()}
        res["rollout"] = rollout_errors(roll, ritems, 10, args.sampler, dt, ref=ref, **kw)
        rr = res["rollout"]
        print(f"rollout of {len(ritems['x'])} trajectories, windows starting at {rr['starts']}")
        for key in ("mean", "median", "vs_start"):
            print(f"  {key} rel L2 per window: " + ", ".join(f"{e:.4f}" for e in rr[key]))
        for dec, vals in rr["by_decade"].items():
            print(f"  nu in {dec}: " + ", ".join(f"{e:.4f}" for e in vals))
    if args.json:
        from pathlib import Path

        Path(args.json).write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
