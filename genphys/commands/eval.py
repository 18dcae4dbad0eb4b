"""``genphys eval``: score a trained model on held-out solver trajectories."""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

from genphys.errors import UserInputError

# (summary key, label) rows of the printed table
TABLE = (("rel_l2", "relative L2 (mean)"), ("rel_l2_median", "relative L2 (median)"),
         ("nrmse", "nRMSE (PDEBench)"), ("frmse_low", "fRMSE low"), ("frmse_mid", "fRMSE mid"),
         ("frmse_high", "fRMSE high"), ("conservation_drift_pred", "mean drift, samples"),
         ("conservation_drift_true", "mean drift, solver data"), ("crps", "CRPS"),
         ("spread_skill", "spread-skill ratio"), ("ensemble_mean_rel_l2", "ensemble-mean rel L2"),
         ("consistency", "physical consistency"),
         ("consistency_truth", "consistency of the data"))


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Attach ``genphys eval`` to the top-level parser."""
    p = sub.add_parser("eval", help="score a model on held-out solver trajectories",
                       description="Condition a trained model on the first frame, parameters "
                       "(and caption) of each held-out trajectory, sample, and compare with the "
                       "solver: relative L2, nRMSE, Fourier-band RMSE, conservation, CRPS, "
                       "spread-skill and physical consistency. Writes DIR/metrics.json and "
                       "three PNG figures.")
    p.add_argument("--model", required=True, help="pipeline folder or `genphys train` export")
    p.add_argument("--data", required=True, help="trajectory file (HDF5) of the model's system")
    p.add_argument("--split", default="test", help="train, val, test or all (default test)")
    p.add_argument("--steps", type=int, default=10, help="sampler steps (default 10)")
    p.add_argument("--sampler", default="dpmpp_2m", help="samplers.SAMPLERS name")
    p.add_argument("--num-samples", type=int, default=1, help="samples per trajectory")
    p.add_argument("--limit", type=int, default=None, help="evaluate the first N trajectories")
    p.add_argument("--seed", type=int, default=0, help="trajectory i, sample k: seed + i*K + k")
    p.add_argument("--batch-size", type=int, default=16, help="trajectories sampled at once")
    p.add_argument("--device", default="cpu", help="torch device (default cpu)")
    p.add_argument("--out", default="eval", help="output folder (default ./eval)")
    p.add_argument("--no-consistency", action="store_true",
                   help="skip the Burgers re-solve (slow at low viscosity)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.add_argument("--conserve", action=argparse.BooleanOptionalAction, default=None,
                   help="conserved-mean projection while sampling (default: on when the "
                   "system has a conserved mean; --no-conserve measures the raw model)")
    p.set_defaults(func=run)


def write_json_atomic(obj: dict, path: Path) -> Path:
    """Write JSON to a temporary file beside ``path`` and rename it into place."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".json", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(obj, f, indent=1, allow_nan=False)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def print_table(report: dict) -> None:
    """A short markdown table of the summary and the per-decade relative L2."""
    s = report["summary"]
    print(f"{report['n_trajectories']} {report['split']} trajectories x {report['num_samples']} "
          f"samples, {report['sampler']} {report['steps']} steps")
    print("| metric | value |\n|---|---|")
    for key, label in TABLE:
        if key in s:
            v = s[key]
            print(f"| {label} | {'n/a' if v is None else f'{v:.4g}'} |")
    for dec, row in report.get("by_viscosity_decade", {}).items():
        print(f"nu in {dec}: n={row['n']}, relative L2 {row['rel_l2']:.4g}")
    for note in report["notes"]:
        print(f"note: {note}")


def run(args: argparse.Namespace) -> int:
    """Evaluate, write metrics.json and the figures, print the table."""
    from genphys.evaluation.harness import json_safe, run_evaluation
    from genphys.evaluation.plots import write_plots

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UserInputError(f"--out {out} is a file; give a folder.")
    ev = run_evaluation(args.model, args.data, args.split, args.steps, args.sampler,
                        args.num_samples, args.limit, args.seed, args.batch_size,
                        device=args.device, progress=not args.no_progress,
                        check_consistency=not args.no_consistency, conserve=args.conserve)
    out.mkdir(parents=True, exist_ok=True)
    report = json_safe(ev.report)
    paths = [write_json_atomic(report, out / "metrics.json"), *write_plots(ev, out)]
    print_table(report)
    print("wrote " + ", ".join(str(p) for p in paths))
    return 0
