"""Mesh autoencoder encoding cost versus node count N (1k, 10k, 100k): time and peak memory.

Each N runs in a fresh subprocess (so the peak-RSS high-water mark belongs to that N alone):
build the advdiff_mesh2d-sized model (32×16 kernel grid, width 32, radius 1 cell → latent
1×16×8), warm up on 100 nodes, record the RSS, then encode one frame of N random nodes
``--repeats`` times. Reported: median wall time, time per node, and the peak RSS increase
over the warmed-up process. A dense N × M pair tensor (M = 512 grid cells, F = 32 features)
is listed for comparison; the bucketed search never forms it.

Usage: ``python benchmarks/autoencoder.py [--sizes 1000 10000 100000] [--repeats 5]``
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

MODEL = dict(in_channels=1, dim=2, grid=(32, 16), levels=1, latent_channels=1, width=32,
             radius=1.0, domain_lo=(0.0, 0.0), domain_hi=(2.0, 1.0))


def rss_mib() -> float:
    """Peak resident set size of this process so far, MiB (Linux ru_maxrss is KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(n: int, repeats: int, threads: int) -> dict:
    """Time and peak memory of encoding one frame of ``n`` nodes (runs in a subprocess)."""
    from genphys.autoencoder import MeshAutoencoder

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = MeshAutoencoder(**MODEL).eval()
    with torch.no_grad():
        warm = torch.rand(1, 100, 2) * torch.tensor([2.0, 1.0])
        model.encode(warm, warm[..., :1])
        base = rss_mib()
        x = torch.rand(1, n, 2) * torch.tensor([2.0, 1.0])  # (1, N, 2)
        f = torch.sin(4 * x[..., :1]) * torch.cos(3 * x[..., 1:])  # (1, N, 1)
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            model.encode(x, f)
            times.append(time.perf_counter() - t0)
    return {"n": n, "median_s": statistics.median(times), "min_s": min(times),
            "peak_extra_mib": rss_mib() - base,
            "dense_pairs_mib": n * 512 * 32 * 4 / 2**20}


def main() -> None:
    """Run every size in its own process, print a markdown table, write JSON."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--child", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "autoencoder.json"))
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.repeats, args.threads)))
        return
    rows = []
    for n in args.sizes:
        cmd = [sys.executable, __file__, "--child", str(n), "--repeats", str(args.repeats),
               "--threads", str(args.threads)]
        rows.append(json.loads(subprocess.run(cmd, check=True, capture_output=True,
                                              text=True).stdout.strip().splitlines()[-1]))
    first = rows[0]
    print("| N nodes | encode median (s) | µs / node | time ratio vs N ratio | peak extra RSS "
          "(MiB) | dense N×M×F pairs (MiB) |")
    print("|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        r["time_ratio"] = r["median_s"] / first["median_s"]
        r["n_ratio"] = r["n"] / first["n"]
        print(f"| {r['n']:,} | {r['median_s']:.4f} | {1e6 * r['median_s'] / r['n']:.2f} | "
              f"{r['time_ratio']:.1f} vs {r['n_ratio']:.0f} | {r['peak_extra_mib']:.1f} | "
              f"{r['dense_pairs_mib']:.0f} |")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"model": {k: list(v) if isinstance(v, tuple) else v
                                         for k, v in MODEL.items()},
                               "threads": args.threads, "repeats": args.repeats,
                               "torch": torch.__version__, "machine": platform.processor(),
                               "rows": rows}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
