"""Sampler sweep on a trained first-frame + parameter conditioned model: error vs NFE.

Every sampler in ``samplers.SAMPLERS`` and several diffusers schedulers generate the
test-split trajectories of ``--data`` conditioned on each trajectory's frame 0 and its
parameters (no text), through ``TextToSimulationPipeline`` with its default sigma grid
(``loguniform`` over the objective's range). Score: relative L2 over (C, T, X) to the stored
solver trajectory in physical units (``genphys.pipelines.evaluate.rel_l2``), mean and median
over the ``--limit`` trajectories.

- Steps are chosen per sampler so that its NFE is at most each ``--nfe`` target
  (``samplers.steps_for_nfe``); the NFE reported is the number of backbone calls counted
  with a forward hook (it equals ``samplers.nfe(name, steps)`` for the fixed-step samplers).
- Stochastic samplers (``euler_ancestral``, ``dpmpp_2m_sde``) run with the pipeline's fixed
  per-sample seeds (sample b: starting noise seed ``--seed`` + b, step noise seed
  ``--seed`` + b + 1), so the numbers are reproducible; their error includes the spread of
  the SDE's own samples.
  ``heun`` is registered as stochastic but runs deterministically here (churn 0).
- ``fkc`` is skipped: with no reward target it is SMC over ``num_particles`` (default 8)
  copies of an SDE sampler, costing 8x the NFE of its grid, so it has no place on one NFE axis.
- ``dpm_adaptive`` has no step count; it runs once per ``--adaptive-rtol`` and its counted
  NFE places it on the plot.
- diffusers schedulers: default configs (1000-step linear-beta table, which sets sigma_max),
  except DDIM with ``timestep_spacing="trailing"`` (start at t = 999) and
  ``clip_sample=False`` (the default clips physical fields to [-1, 1]). Steps = NFE target
  (one model call per step). A scheduler the pipeline rejects is reported with its message.

Run: ``python3 benchmarks/sampler_sweep.py --model DIR --data FILE [--limit 64]
[--nfe 2 4 6 10 20]``; writes ``benchmarks/results/sampler_sweep.{json,md,png}``.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import samplers  # noqa: E402
from genphys.errors import UserInputError  # noqa: E402
from genphys.pipelines import TextToSimulationPipeline  # noqa: E402
from genphys.pipelines.evaluate import rel_l2, test_items  # noqa: E402
from genphys.train.checkpoint import atomic_write_text

SKIPPED = {"fkc": "SMC over 8 particles of an SDE sampler: 8x the NFE of its grid",
           "dpm_adaptive": "adaptive: run per --adaptive-rtol instead of per NFE target"}
STOCHASTIC = ("euler_ancestral", "dpmpp_2m_sde")


def diffusers_schedulers() -> dict[str, Callable[[], Any]]:
    """Label -> factory of a fresh diffusers scheduler (each run gets its own instance)."""
    import diffusers as d

    return {
        "diffusers DPMSolverMultistep": d.DPMSolverMultistepScheduler,
        "diffusers EulerDiscrete": d.EulerDiscreteScheduler,
        "diffusers UniPCMultistep": d.UniPCMultistepScheduler,
        "diffusers DEISMultistep": d.DEISMultistepScheduler,
        "diffusers DDIM (trailing, no clip)": lambda: d.DDIMScheduler(
            timestep_spacing="trailing", clip_sample=False),
        "diffusers FlowMatchEulerDiscrete": d.FlowMatchEulerDiscreteScheduler,
    }


class CallCounter:
    """Counts forward calls of a module (the backbone: one call per denoiser evaluation)."""

    def __init__(self, module: torch.nn.Module):
        self.calls = 0
        module.register_forward_pre_hook(self._hook)

    def _hook(self, *_: Any) -> None:
        self.calls += 1


def plan(nfes: Sequence[int], adaptive_rtols: Sequence[float]) -> list[dict[str, Any]]:
    """The runs: (method, sampler spec, steps, NFE target), duplicates of a step count dropped."""
    runs = []
    for name in sorted(samplers.SAMPLERS):
        if name in SKIPPED:
            continue
        seen = set()
        for n in nfes:
            steps = samplers.steps_for_nfe(name, n)
            if steps not in seen:
                seen.add(steps)
                runs.append({"method": name, "family": "genphys", "sampler": name,
                             "steps": steps, "nfe_target": n, "options": {}})
    for rtol in adaptive_rtols:
        # a 2-step grid [sigma_max, sigma_min, 0]: the solver integrates to sigma_min
        runs.append({"method": "dpm_adaptive", "family": "genphys", "sampler": "dpm_adaptive",
                     "steps": 2, "nfe_target": None, "options": {"rtol": rtol}})
    for label, make in diffusers_schedulers().items():
        for n in nfes:
            runs.append({"method": label, "family": "diffusers", "sampler": make, "steps": n,
                         "nfe_target": n, "options": {}})
    return runs


def run_one(pipe: TextToSimulationPipeline, counter: CallCounter, items: dict[str, np.ndarray],
            run: dict[str, Any], seed: int) -> dict[str, Any]:
    """Generate all conditioned samples for one run; errors, counted NFE and seconds."""
    x = items["x"]  # (N, C, T, X) physical
    params = {n: items["params"][:, j] for j, n in enumerate(items["names"])}
    sampler = run["sampler"] if isinstance(run["sampler"], str) else run["sampler"]()
    counter.calls = 0
    t0 = time.perf_counter()
    try:
        out = pipe(initial_state=x[:, :, 0], params=params, num_inference_steps=run["steps"],
                   sampler=sampler, generator=seed, sampler_options=run["options"] or None)
    except (UserInputError, ValueError, RuntimeError) as e:
        return {"error": f"{type(e).__name__}: {e}"}
    seconds = time.perf_counter() - t0
    err = rel_l2(out.trajectories.numpy(), x)
    finite = bool(np.isfinite(err).all())
    return {"nfe": counter.calls, "seconds": round(seconds, 3),
            "rel_l2_mean": float(err.mean()) if finite else None,
            "rel_l2_median": float(np.median(err)) if finite else None,
            "non_finite": int((~np.isfinite(err)).sum())}


def sweep(args: argparse.Namespace) -> dict[str, Any]:
    """Load the model and the test items, run every planned run, return the JSON document."""
    pipe = TextToSimulationPipeline.from_pretrained(args.model)
    if pipe.spec.condition != "first_frame":
        raise UserInputError(f"--model {args.model} was trained without first-frame "
                             "conditioning; the sweep needs a first-frame conditioned model.")
    items = test_items(pipe, args.data, args.split, args.limit)
    counter = CallCounter(pipe.backbone)
    rows, t0 = [], time.perf_counter()
    for run in plan(args.nfe, args.adaptive_rtol):
        res = run_one(pipe, counter, items, run, args.seed)
        row = {k: v for k, v in run.items() if k != "sampler"} | res
        rows.append(row)
        print(json.dumps(row), flush=True)
    return {"model": str(args.model), "data": str(args.data), "split": args.split,
            "num_trajectories": int(len(items["x"])), "seed": args.seed,
            "trajectory_shape": list(items["x"].shape[1:]), "nfe_targets": list(args.nfe),
            "sigma_grid": "pipeline default (loguniform over the objective's sigma range)",
            "torch_threads": torch.get_num_threads(),
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
            "skipped": SKIPPED, "stochastic_fixed_seeds": list(STOCHASTIC),
            "command": command_line(args.argv), "wall_seconds": round(time.perf_counter() - t0, 1),
            "rows": rows}


def command_line(argv: Sequence[str] | None) -> str:
    """The command as typed (relative script path, quoted arguments)."""
    return "python3 benchmarks/sampler_sweep.py " + shlex.join(
        sys.argv[1:] if argv is None else argv)


def markdown(doc: dict[str, Any]) -> str:
    """Table: one row per method, one column per NFE target, cells mean rel L2 (NFE used)."""
    targets = doc["nfe_targets"]
    lines = [f"| method | {' | '.join(f'NFE {n}' for n in targets)} |",
             "|---|" + "---|" * len(targets)]
    methods = list(dict.fromkeys(r["method"] for r in doc["rows"] if r["nfe_target"]))
    for m in methods:
        cells = []
        for n in targets:
            r = next((r for r in doc["rows"] if r["method"] == m and r["nfe_target"] == n),
                     None)
            cells.append(_cell(r, n))
        lines.append(f"| {m} | {' | '.join(cells)} |")
    for r in (r for r in doc["rows"] if r["method"] == "dpm_adaptive"):
        lines.append(f"\ndpm_adaptive rtol={r['options']['rtol']}: {_cell(r, None)}")
    return "\n".join(lines)


def _cell(r: dict[str, Any] | None, target: int | None) -> str:
    """``0.0123`` or ``0.0123 (9)`` when the counted NFE differs from the target."""
    if r is None:
        return "—"
    if "error" in r:
        return "rejected" if "UserInputError" in r["error"] else "error"
    if r["rel_l2_mean"] is None:
        return f"non-finite ({r['nfe']})"
    note = "" if r["nfe"] == target else f" ({r['nfe']})"
    return f"{r['rel_l2_mean']:.4f}{note}"


def plot(doc: dict[str, Any], out: Path) -> None:
    """Log-log mean rel L2 vs counted NFE, one line per method (diffusers dashed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8.5, 5.2), constrained_layout=True)
    methods = list(dict.fromkeys(r["method"] for r in doc["rows"]))
    colors = plt.get_cmap("tab20")(np.linspace(0, 1, 20))
    for k, m in enumerate(methods):
        pts = sorted((r["nfe"], r["rel_l2_mean"]) for r in doc["rows"] if r["method"] == m
                     and r.get("rel_l2_mean") is not None)
        if not pts:
            continue
        style = "--" if m.startswith("diffusers") else (":" if m in STOCHASTIC else "-")
        marker = "*" if m == "dpm_adaptive" else "o"
        ax.plot(*zip(*pts), style, marker=marker, ms=4, color=colors[k % 20], label=m)
    ax.set(xscale="log", yscale="log", xlabel="NFE (backbone calls)",
           ylabel="mean relative L2 to solver",
           title=f"{doc['num_trajectories']} {doc['split']} trajectories, conditioned on "
                 "frame 0 and parameters")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize="x-small", loc="center left", bbox_to_anchor=(1.01, 0.5))
    tmp = out.with_name(f".{out.name}.tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, out)


def write_results(doc: dict[str, Any], prefix: Path) -> None:
    """``prefix``.json, .md (table + command + notes) and .png."""
    prefix.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(prefix.with_suffix(".json"), json.dumps(doc, indent=1) + "\n")
    secs = [r["seconds"] for r in doc["rows"] if "seconds" in r]
    rejected = [f"{r['method']}: {r['error']}" for r in doc["rows"] if "error" in r]
    md = [f"# Sampler sweep: {doc['model']}", "",
          f"Command (OMP_NUM_THREADS={doc['omp_num_threads']}, torch threads "
          f"{doc['torch_threads']}):", "", f"    {doc['command']}", "",
          f"{doc['num_trajectories']} `{doc['split']}` trajectories of {doc['data']} "
          f"(shape (C, T, X) = {tuple(doc['trajectory_shape'])}), each generated once "
          f"conditioned on its frame 0 and parameters (seed {doc['seed']}); cell = mean "
          "relative L2 over (C, T, X) to the solver trajectory in physical units; "
          "(n) = counted NFE when it differs from the column's target. Sigma grid: "
          f"{doc['sigma_grid']}. Stochastic samplers with fixed per-sample seeds: "
          f"{', '.join(doc['stochastic_fixed_seeds'])}. Skipped: "
          + "; ".join(f"{k} ({v})" for k, v in doc["skipped"].items()) + ".", "",
          markdown(doc), "",
          f"Sweep wall time {doc['wall_seconds']} s (median run {statistics.median(secs):.2f} s)."
          if secs else "", ""]
    if rejected:
        md += ["Not run (rejected or failed):", ""] + [f"- {r}" for r in sorted(set(rejected))]
    atomic_write_text(prefix.with_suffix(".md"), "\n".join(md) + "\n")
    plot(doc, prefix.with_suffix(".png"))


def main(argv: Sequence[str] | None = None) -> None:
    """Parse, sweep, write JSON/markdown/PNG, print the table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="pipeline or `genphys train` export folder")
    ap.add_argument("--data", required=True, help="trajectory file with the test split")
    ap.add_argument("--split", default="test")
    ap.add_argument("--limit", type=int, default=64, help="trajectories scored")
    ap.add_argument("--nfe", type=int, nargs="+", default=[2, 4, 6, 10, 20])
    ap.add_argument("--adaptive-rtol", type=float, nargs="*", default=[0.05],
                    help="dpm_adaptive tolerances (rtol 0.01 took ~300 NFE on a trained model)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path,
                    default=Path(__file__).resolve().parent / "results" / "sampler_sweep",
                    help="output prefix (.json, .md, .png are added)")
    args = ap.parse_args(argv)
    args.argv = None if argv is None else list(argv)
    if args.limit < 1 or min(args.nfe) < 1:
        ap.error(f"--limit {args.limit} and --nfe {args.nfe} must be >= 1.")
    doc = sweep(args)
    write_results(doc, args.out)
    print(markdown(doc))
    print(f"wrote {args.out.with_suffix('.json')}, .md, .png in {doc['wall_seconds']} s")


if __name__ == "__main__":
    main()
