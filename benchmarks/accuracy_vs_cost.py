"""Accuracy vs cost on burgers1d: the reference solver at coarser resolutions vs genphys at
a few function evaluations, both against the stored test trajectories, in one process.

Solver side: ``genphys.physics.burgers.solve_burgers_fv`` (WENO5-Z + Godunov + Lawson RK4)
rerun from each test trajectory's seed (the same analytic initial condition and viscosity
that made the stored data) on ``n`` finite-volume cells, n in ``--resolutions``, and averaged
onto the stored 64 cells x 32 frames. The stored data came from 1024 cells, so n = 1024
reproduces it (its error is the float32 rounding of the file). Timed: the batched solve and
the averaging (the initial cell averages are prepared untimed).

genphys side: ``TextToSimulationPipeline.from_pretrained(--model)`` conditioned on each test
trajectory's stored first frame and its viscosity (no caption), one sample per trajectory,
``--nfe`` steps of each sampler in ``--samplers`` (rf_euler and dpmpp_2m: NFE = steps);
optionally a distilled/reflowed ``--distilled`` model at ``--distilled-nfe`` and a trained
FNO of ``benchmarks/fno.py`` (``--fno``, its ``--out`` folder) on the same inputs. Timed: the whole
pipeline call (encode, sample, decode) on batches of ``--batch-size``.

Both sides run with one thread; each setting is repeated ``--repeats`` times and the median
wall time (and process CPU time) per trajectory is reported. Writes
``benchmarks/results/<--out-name>.json`` and ``.md``.

    OMP_NUM_THREADS=1 python benchmarks/accuracy_vs_cost.py --data data/burgers1d_3k.h5 \
        --limit 128 --model runs/burgers1d_text/export
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from genphys.errors import UserInputError
from genphys.pipelines.evaluate import by_decade, rel_l2

ROOT = Path(__file__).resolve().parents[1]


def load_reference(path: str, split: str, limit: int | None) -> dict[str, Any]:
    """Stored trajectories ``u`` (M, T, X) float64 physical, ``nu``, ``seeds``, solver config."""
    from genphys.data import TrajectoryDataset, open_trajectories

    ds = TrajectoryDataset(path, split, normalize=False)
    if ds.system != "burgers1d":
        raise UserInputError(f"{path} holds system {ds.system!r}; this benchmark needs burgers1d.")
    idx = ds.indices[:limit] if limit else ds.indices
    with open_trajectories(path) as f:
        items = [f[i] for i in idx]
        config = dict(f.attrs["genphys_attrs"]["config"])
    u = np.stack([it["fields"][0] for it in items]).astype(np.float64)  # (M, T, X)
    return {"u": u, "nu": np.array([it["params"]["nu"] for it in items]),
            "seeds": np.array([int(it["seed"]) for it in items]),
            "time": np.asarray(items[0]["time"], np.float64), "config": config}


def timed(fn: Callable[[], Any], repeats: int) -> tuple[Any, list[float], list[float]]:
    """Run ``fn`` ``repeats`` times; its last result, wall seconds and process CPU seconds."""
    walls, cpus, out = [], [], None
    for _ in range(repeats):
        c0, w0 = time.process_time(), time.perf_counter()
        out = fn()
        walls.append(time.perf_counter() - w0)
        cpus.append(time.process_time() - c0)
    return out, walls, cpus


def initial_averages(ref: dict[str, Any], n: int) -> np.ndarray:
    """Cell averages ``(M, n)`` of each trajectory's analytic initial condition (from its seed)."""
    from genphys.physics import get_system
    from genphys.physics.ic1d import cell_averages, draw_params_and_ic

    system = get_system("burgers1d", nx=ref["config"]["nx"], nt=ref["config"]["nt"])
    out = []
    for seed, nu in zip(ref["seeds"], ref["nu"]):
        params, ic = draw_params_and_ic(system.sample_params, int(seed))
        if not np.isclose(params["nu"], nu, rtol=1e-6):
            raise UserInputError(f"seed {seed} redraws nu={params['nu']:g} but the file stores "
                                 f"{nu:g}; the file was not made by this burgers1d generator.")
        out.append(cell_averages(ic, n))
    return np.stack(out)


def solver_rows(ref: dict[str, Any], resolutions: list[int], repeats: int,
                batch: int) -> list[dict[str, Any]]:
    """One row per FV resolution: batched solve from the seeds, error vs the stored data."""
    from genphys.physics.burgers import solve_burgers_fv
    from genphys.physics.ic1d import coarsen

    nx, cfl, rows = ref["u"].shape[-1], float(ref["config"].get("cfl", 1.0)), []
    for n in resolutions:
        if n % nx:
            raise UserInputError(f"resolution {n} is not a multiple of the stored {nx} cells.")
        u0 = initial_averages(ref, n)  # (M, n)

        def run(u0: np.ndarray = u0) -> np.ndarray:
            parts = [coarsen(solve_burgers_fv(u0[s:s + batch], ref["nu"][s:s + batch],
                                              ref["time"], cfl), nx)
                     for s in range(0, len(u0), batch)]
            return np.concatenate(parts)  # (M, T, nx)

        pred, walls, cpus = timed(run, repeats)
        rows.append(row("solver (FV WENO5-Z, Lawson RK4)", f"{n} cells", pred, ref, walls,
                        cpus))
        print(format_row(rows[-1]), flush=True)
    return rows


def row(method: str, setting: str, pred: np.ndarray, ref: dict[str, Any], walls: list[float],
        cpus: list[float]) -> dict[str, Any]:
    """A result row: median times per trajectory and the relative L2 to the stored data."""
    err = rel_l2(pred.reshape(ref["u"].shape), ref["u"])
    m = len(err)
    return {"method": method, "setting": setting,
            "wall_ms_per_traj": 1e3 * statistics.median(walls) / m,
            "cpu_ms_per_traj": 1e3 * statistics.median(cpus) / m,
            "wall_s_repeats": [round(w, 4) for w in walls],
            "rel_l2_mean": float(err.mean()), "rel_l2_median": float(np.median(err)),
            "rel_l2_by_decade": by_decade(ref["nu"], err)}


def model_rows(model_dir: str, label: str, ref: dict[str, Any], nfes: list[int],
               samplers: list[str], repeats: int, batch: int) -> list[dict[str, Any]]:
    """One row per (sampler, NFE): first-frame + nu conditioned samples, error vs stored."""
    from genphys.pipelines import TextToSimulationPipeline

    pipe = TextToSimulationPipeline.from_pretrained(model_dir)
    frame0 = ref["u"][:, None, 0]  # (M, 1, X) physical first frames
    rows = []
    for sampler in samplers:
        for nfe in nfes:
            def run(sampler: str = sampler, nfe: int = nfe) -> np.ndarray:
                parts = [pipe(initial_state=frame0[s:s + batch],
                              params={"nu": ref["nu"][s:s + batch]}, num_inference_steps=nfe,
                              sampler=sampler, generator=[int(v) for v in
                                                          ref["seeds"][s:s + batch]])
                         .trajectories[:, 0].numpy() for s in range(0, len(frame0), batch)]
                return np.concatenate(parts)  # (M, T, X)

            if not rows:
                pipe(initial_state=frame0[:2], params={"nu": ref["nu"][:2]},
                     num_inference_steps=1, sampler=sampler)  # warm-up, untimed
            pred, walls, cpus = timed(run, repeats)
            rows.append(row(label, f"{sampler}, NFE {nfe}", pred, ref, walls, cpus))
            print(format_row(rows[-1]), flush=True)
    return rows


def load_fno(fno_dir: str) -> tuple[Any, Any, dict[str, Any]]:
    """The ``benchmarks/fno.py`` module, a trained FNO from its folder, and its config."""
    import importlib.util

    from safetensors.torch import load_file

    spec = importlib.util.spec_from_file_location("bench_fno", ROOT / "benchmarks" / "fno.py")
    fno = importlib.util.module_from_spec(spec)
    sys.modules["bench_fno"] = fno  # dataclasses look their module up here
    spec.loader.exec_module(fno)
    try:
        cfg = json.loads((Path(fno_dir) / "config.json").read_text())
    except (OSError, ValueError):
        raise UserInputError(f"--fno {fno_dir} has no readable config.json; give the --out "
                             "folder of benchmarks/fno.py.") from None
    model = fno.FNO1d(fno.FNOConfig(**cfg["fno"]))
    model.load_state_dict(load_file(str(Path(fno_dir) / "fno.safetensors")))
    return fno, model.eval(), cfg


def fno_rows(fno_dir: str, ref: dict[str, Any], repeats: int, batch: int) -> list[dict[str, Any]]:
    """One row for a trained FNO of ``benchmarks/fno.py`` (same inputs as the diffusion side)."""
    fno, model, cfg = load_fno(fno_dir)
    u0 = torch.as_tensor((ref["u"][:, 0] - cfg["mean"]) / cfg["std"], dtype=torch.float32)
    nu, frames = torch.as_tensor(ref["nu"], dtype=torch.float32), ref["u"].shape[1]

    @torch.no_grad()
    def run() -> np.ndarray:
        parts = [fno.predict(model, u0[s:s + batch], nu[s:s + batch], cfg["mode"], frames)
                 for s in range(0, len(u0), batch)]
        return torch.cat(parts).double().numpy() * cfg["std"] + cfg["mean"]  # (M, T, X)

    pred, walls, cpus = timed(run, repeats)
    rows = [row("FNO (benchmarks/fno.py)", f"{cfg['mode']}, 1 forward"
                if cfg["mode"] == "oneshot" else f"{cfg['mode']}, {frames - 1} forwards",
                pred, ref, walls, cpus)]
    print(format_row(rows[-1]), flush=True)
    return rows


def format_row(r: dict[str, Any]) -> str:
    """One markdown table row."""
    dec = " | ".join(f"{v:.3g}" for v in r["rel_l2_by_decade"].values())
    return (f"| {r['method']} | {r['setting']} | {r['wall_ms_per_traj']:.2f} | "
            f"{r['cpu_ms_per_traj']:.2f} | {r['rel_l2_mean']:.3g} | {r['rel_l2_median']:.3g} | "
            f"{dec} |")


def table(rows: list[dict[str, Any]], decades: list[str]) -> list[str]:
    """The markdown table of all rows."""
    head = ("| method | resolution / NFE | wall ms / traj | CPU ms / traj | rel L2 mean | "
            "rel L2 median | " + " | ".join(decades) + " |")
    return [head, "|---" * (6 + len(decades)) + "|"] + [format_row(r) for r in rows]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options (see the module docstring)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="burgers1d HDF5 file (the reference)")
    ap.add_argument("--split", default="test")
    ap.add_argument("--limit", type=int, default=None, help="first N trajectories of the split")
    ap.add_argument("--resolutions", type=int, nargs="+", default=[64, 128, 256, 512, 1024])
    ap.add_argument("--model", default=None, help="genphys export or pipeline folder")
    ap.add_argument("--samplers", nargs="+", default=["rf_euler", "dpmpp_2m"])
    ap.add_argument("--nfe", type=int, nargs="+", default=[5, 10, 20])
    ap.add_argument("--distilled", default=None, help="few-step (reflow/distilled) export")
    ap.add_argument("--distilled-nfe", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--fno", default=None, help="--out folder of benchmarks/fno.py")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--out-name", default="accuracy_vs_cost", help="'' = write no files")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run both sides, print the markdown table, write JSON + markdown."""
    args = parse_args(argv)
    if args.repeats < 1 or args.batch_size < 1:
        raise UserInputError(f"--repeats {args.repeats} and --batch-size {args.batch_size} "
                             "must be at least 1.")
    torch.set_num_threads(1)
    load0 = os.getloadavg()[0]
    ref = load_reference(args.data, args.split, args.limit)
    print(f"{len(ref['u'])} {args.split} trajectories of {args.data}", flush=True)
    rows = solver_rows(ref, args.resolutions, args.repeats, args.batch_size)
    if args.model:
        rows += model_rows(args.model, "genphys", ref, args.nfe, args.samplers, args.repeats,
                           args.batch_size)
    if args.fno:
        rows += fno_rows(args.fno, ref, args.repeats, args.batch_size)
    if args.distilled:
        rows += model_rows(args.distilled, "genphys distilled", ref, args.distilled_nfe,
                           ["rf_euler"], args.repeats, args.batch_size)
    decades = list(by_decade(ref["nu"], ref["nu"]))
    cmd = "OMP_NUM_THREADS=1 python benchmarks/accuracy_vs_cost.py " + " ".join(
        argv if argv is not None else sys.argv[1:])
    res = {"data": args.data, "split": args.split, "trajectories": len(ref["u"]),
           "repeats": args.repeats, "batch_size": args.batch_size, "threads": 1,
           "model": args.model, "distilled": args.distilled, "fno": args.fno, "command": cmd,
           "loadavg_1min": [round(load0, 2), round(os.getloadavg()[0], 2)],
           "cpu_count": os.cpu_count(), "rows": rows}
    lines = [f"Accuracy vs cost on `{args.data}` ({args.split} split, {len(ref['u'])} "
             f"trajectories; relative L2 of the whole 64x32 trajectory to the stored 1024-cell "
             f"reference; medians of {args.repeats} repeats, 1 thread, batches of "
             f"{args.batch_size}; 1-minute load average {res['loadavg_1min'][0]} at the start, "
             f"{res['loadavg_1min'][1]} at the end, {os.cpu_count()} cores).", "", "```", cmd,
             "```", "", *table(rows, decades), ""]
    print("\n".join(lines))
    if args.out_name:
        out = ROOT / "benchmarks" / "results" / args.out_name
        out.with_suffix(".json").write_text(json.dumps(res, indent=2) + "\n")
        out.with_suffix(".md").write_text("\n".join(lines))
    return res


if __name__ == "__main__":
    main()
