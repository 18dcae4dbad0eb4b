"""Data-engine speed: trajectories per second for each system at its default resolution.

Each system generates batches of ``--batch`` trajectories (its default config, batched
solver), repeated ``--repeats`` times with different seeds; we report the median wall time
per batch and trajectories/s. Prints a markdown table and writes JSON.

    python benchmarks/data_engine.py --repeats 3 --out benchmarks/results/data_engine.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch

from genphys.physics import SYSTEM_MODULES, get_system


def time_system(name: str, batch: int, repeats: int) -> dict:
    """Median wall time of generating one batch of ``batch`` trajectories of ``name``."""
    system = get_system(name)
    times = []
    for r in range(repeats):
        t0 = time.perf_counter()
        out = system.generate(batch, seed=1000 + r, batch_size=batch)
        times.append(time.perf_counter() - t0)
    n = len(out)
    assert n == batch, f"{name} returned {n} trajectories, expected {batch}"
    med = statistics.median(times)
    return {"system": name, "batch": batch, "repeats": repeats, "times_s": times,
            "median_s": med, "traj_per_s": batch / med,
            "config": {k: v for k, v in vars(system.config).items()}}


def main() -> None:
    """Run the benchmark over the chosen systems."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--systems", nargs="*", default=list(SYSTEM_MODULES))
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default="benchmarks/results/data_engine.json")
    args = ap.parse_args()
    rows = []
    for name in args.systems:
        rows.append(time_system(name, args.batch, args.repeats))
        r = rows[-1]
        print(f"{name}: median {r['median_s']:.2f} s / batch of {r['batch']}", flush=True)
    print("\n| system | batch | median s / batch | trajectories / s |")
    print("|---|---|---|---|")
    for r in rows:
        print(f"| {r['system']} | {r['batch']} | {r['median_s']:.2f} | {r['traj_per_s']:.2f} |")
    meta = {"machine": platform.processor() or platform.machine(),
            "torch_threads": torch.get_num_threads(), "python": platform.python_version()}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"meta": meta, "results": rows}, indent=2, default=str))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
