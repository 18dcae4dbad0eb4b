"""Training-step time of the mesh autoencoder with glibc's default allocator thresholds versus
``genphys.train.runtime.tune_allocator`` (what ``genphys train`` calls at start-up).

Each (case, threads, allocator) runs in a fresh subprocess — the allocator setting is
process-wide and cannot be undone — repeated ``--repeats`` times in alternating order.
A child builds the autoencoder of the shipped config, draws ``--steps`` + 5 batches of 8
frames (advdiff: a different random point cloud of 2400–2800 nodes per frame, as on the
advdiff_mesh2d meshes; ns2d: the 64 × 64 periodic grid), and times forward + backward +
AdamW for the last ``--steps`` of them; it also reports the user and kernel CPU seconds of
those steps (``getrusage``). Reported: medians over repeats, and default / tuned ratios.

Usage: ``python benchmarks/allocator.py [--threads 1 2] [--repeats 3] [--steps 40]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

CASES = {
    "advdiff_mesh2d": dict(grid=(40, 16), domain_lo=(0.0, 0.0), domain_hi=(2.0, 1.0),
                           periodic=False),
    "ns2d_64": dict(grid=(32, 32), domain_lo=(0.0, 0.0), domain_hi=(1.0, 1.0), periodic=True),
}


def batch(case: str, g: torch.Generator) -> tuple[torch.Tensor, ...]:
    """Padded coords (8, N, 2), fields (8, N, 1), mask (8, N) of one training batch."""
    if case == "ns2d_64":
        ax = (torch.arange(64) + 0.5) / 64
        x = torch.stack(torch.meshgrid(ax, ax, indexing="ij"), -1).reshape(1, -1, 2)
        x = x.expand(8, -1, -1)
        mask = torch.ones(8, x.shape[1], dtype=torch.bool)
    else:
        n = torch.randint(2400, 2801, (8,), generator=g)
        x = torch.rand(8, int(n.max()), 2, generator=g) * torch.tensor([2.0, 1.0])
        mask = torch.arange(x.shape[1])[None] < n[:, None]
    phase = torch.rand(8, 1, 2, generator=g) * 6
    f = (torch.sin(3 * x[..., :1] + phase[..., :1]) * torch.cos(4 * x[..., 1:] + phase[..., 1:]))
    return x, f, mask


def child(case: str, threads: int, tuned: bool, steps: int) -> dict:
    """Median step time and CPU split of ``steps`` training steps (runs in a subprocess)."""
    from genphys.autoencoder import MeshAutoencoder
    from genphys.autoencoder.task import reconstruction_loss
    from genphys.train.runtime import tune_allocator

    applied = tune_allocator() if tuned else False
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = MeshAutoencoder(in_channels=1, dim=2, levels=1, latent_channels=1, width=32,
                            n_freq=4, **CASES[case])
    opt = torch.optim.AdamW(model.parameters(), 1e-3)
    g = torch.Generator().manual_seed(0)
    times = []
    for i in range(steps + 5):
        x, f, mask = batch(case, g)
        if i == 5:
            r0 = resource.getrusage(resource.RUSAGE_SELF)
        t0 = time.perf_counter()
        y = model(x, f, mask, physical=False)
        loss = reconstruction_loss(y, f, mask, model.field_mean, model.field_std, 0.05)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if i >= 5:
            times.append(time.perf_counter() - t0)
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    return {"case": case, "threads": threads, "tuned": tuned, "applied": applied,
            "median_step_s": statistics.median(times),
            "user_s": r1.ru_utime - r0.ru_utime, "sys_s": r1.ru_stime - r0.ru_stime,
            "minor_faults": r1.ru_minflt - r0.ru_minflt}


def main() -> None:
    """Run every setting in its own process, print a markdown table, write JSON."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--json", default="benchmarks/results/allocator.json")
    ap.add_argument("--child", nargs=4, metavar=("CASE", "THREADS", "TUNED", "STEPS"),
                    help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        case, threads, tuned, steps = a.child
        print(json.dumps(child(case, int(threads), tuned == "1", int(steps))))
        return
    base_env = {k: v for k, v in os.environ.items()
                if not k.startswith("MALLOC_") and k != "GENPHYS_TUNE_MALLOC"}
    runs = []
    for rep in range(a.repeats):
        for case in a.cases:
            for threads in a.threads:
                order = (0, 1) if rep % 2 == 0 else (1, 0)  # alternate which goes first
                for tuned in order:
                    out = subprocess.run(
                        [sys.executable, __file__, "--child", case, str(threads), str(tuned),
                         str(a.steps)], capture_output=True, text=True, check=True,
                        env={**base_env, "OMP_NUM_THREADS": str(threads)})
                    runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
                    print(runs[-1], file=sys.stderr, flush=True)
    rows = []
    for case in a.cases:
        for threads in a.threads:
            sel = {t: [r for r in runs if r["case"] == case and r["threads"] == threads
                       and r["tuned"] == bool(t)] for t in (0, 1)}
            med = {t: {k: statistics.median(r[k] for r in sel[t])
                       for k in ("median_step_s", "user_s", "sys_s", "minor_faults")}
                   for t in (0, 1)}
            rows.append({"case": case, "threads": threads, "default": med[0], "tuned": med[1],
                         "speedup": med[0]["median_step_s"] / med[1]["median_step_s"]})
    print("| case | threads | default ms/step | tuned ms/step | speed-up | kernel CPU s "
          "default → tuned | page faults default → tuned |")
    print("|---|---:|---:|---:|---:|---|---|")
    for r in rows:
        d, t = r["default"], r["tuned"]
        print(f"| {r['case']} | {r['threads']} | {1e3 * d['median_step_s']:.1f} | "
              f"{1e3 * t['median_step_s']:.1f} | {r['speedup']:.2f}× | {d['sys_s']:.2f} → "
              f"{t['sys_s']:.2f} | {d['minor_faults']:.0f} → {t['minor_faults']:.0f} |")
    meta = {"machine": platform.processor() or platform.machine(), "torch": torch.__version__,
            "glibc": platform.libc_ver()[1], "steps": a.steps, "repeats": a.repeats}
    Path(a.json).parent.mkdir(parents=True, exist_ok=True)
    Path(a.json).write_text(json.dumps({"meta": meta, "rows": rows, "runs": runs}, indent=1))


if __name__ == "__main__":
    main()
