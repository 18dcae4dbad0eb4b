"""Benchmark: genphys.wavelets vs pywavelets, forward + inverse (wavedecn + waverecn) on CPU.

Both sides run in one process on the same input and are interleaved inside every repeat
(order alternating ABBA), so load drift on a shared machine hits both alike.  Each repeat
records wall time and CPU time (1 thread: ``time.thread_time``, where all the work runs;
more threads: ``time.process_time``, all threads summed, spin-waits included).  CPU time
leaves out the time the process waits for a core, so at 1 thread it is the load-robust
number.  Reported: median and min of each, and ratios
pywt / genphys (> 1: genphys faster).  Prints a markdown table, writes
``benchmarks/results/wavelets.json``.

    python3 benchmarks/wavelets.py                          # db4, float32, 15 repeats
    python3 benchmarks/wavelets.py --threads 1 --cases 1D --repeats 31
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
import warnings
from pathlib import Path

import numpy as np
import pywt
import torch

import genphys.wavelets as W

SHAPES = {  # name: (shape, axes)
    "1D": ((256, 4, 1024), (-1,)),
    "2D": ((64, 2, 64, 128), (-2, -1)),
    "3D": ((16, 4, 16, 64, 64), (-3, -2, -1)),
}


def _ours(x: torch.Tensor, wavelet: str, level: int, axes: tuple, mode: str) -> torch.Tensor:
    return W.waverecn(W.wavedecn(x, wavelet, level, axes, mode), wavelet, axes, mode)


def _pywt(x: np.ndarray, wavelet: str, level: int, axes: tuple, mode: str) -> np.ndarray:
    with warnings.catch_warnings():  # pywt warns when level > dwt_max_level (symmetric)
        warnings.simplefilter("ignore", UserWarning)
        return pywt.waverecn(pywt.wavedecn(x, wavelet, mode, level, axes), wavelet, mode, axes)


def _time(fn, threads: int) -> tuple[float, float]:
    """(wall, CPU) seconds of one call: CPU of this thread (1 thread) or the process."""
    cpu = time.thread_time if threads == 1 else time.process_time
    w, c = time.perf_counter(), cpu()
    fn()
    return time.perf_counter() - w, cpu() - c


def _stats(samples: list[tuple[float, float]]) -> dict:
    wall, cpu = [s[0] * 1e3 for s in samples], [s[1] * 1e3 for s in samples]
    return {"wall_median_ms": statistics.median(wall), "wall_min_ms": min(wall),
            "cpu_median_ms": statistics.median(cpu), "cpu_min_ms": min(cpu)}


def run_case(shape, axes, wavelet, level, mode, threads, repeats, dtype) -> dict:
    """Interleaved forward+inverse timings of both libraries for one configuration."""
    torch.set_num_threads(threads)
    x = torch.randn(shape, generator=torch.Generator().manual_seed(0)).to(dtype)
    xn = x.numpy()
    ours, ref = _ours(x, wavelet, level, axes, mode), _pywt(xn, wavelet, level, axes, mode)
    err = float(np.abs(ours.numpy() - ref).max())  # equivalence check on the same input
    sides = {"ours": lambda: _ours(x, wavelet, level, axes, mode),
             "pywt": lambda: _pywt(xn, wavelet, level, axes, mode)}
    samples = {"ours": [], "pywt": []}
    for i in range(repeats):  # ABBA: who runs first alternates
        for side in ("ours", "pywt") if i % 2 == 0 else ("pywt", "ours"):
            samples[side].append(_time(sides[side], threads))
    o, p = _stats(samples["ours"]), _stats(samples["pywt"])
    return {"shape": list(shape), "axes": list(axes), "wavelet": wavelet, "level": level,
            "mode": mode, "threads": threads, "repeats": repeats,
            "ours": o, "pywt": p,
            "ratio_wall_median": p["wall_median_ms"] / o["wall_median_ms"],
            "ratio_wall_min": p["wall_min_ms"] / o["wall_min_ms"],
            "ratio_cpu_median": p["cpu_median_ms"] / o["cpu_median_ms"],
            "max_abs_diff_vs_pywt": err}


def _table(rows: list[dict]) -> str:
    head = ("| case | shape | mode | L | threads | genphys ms med / min | pywt ms med / min "
            "| ratio med | ratio min | ratio CPU med | max diff |\n"
            "|---|---|---|---|---|---|---|---|---|---|---|")
    lines = [head]
    for r in rows:
        o, p = r["ours"], r["pywt"]
        lines.append(
            f"| {r['case']} | {tuple(r['shape'])} | {r['mode']} | {r['level']} | "
            f"{r['threads']} | {o['wall_median_ms']:.1f} / {o['wall_min_ms']:.1f} | "
            f"{p['wall_median_ms']:.1f} / {p['wall_min_ms']:.1f} | "
            f"{r['ratio_wall_median']:.2f} | {r['ratio_wall_min']:.2f} | "
            f"{r['ratio_cpu_median']:.2f} | {r['max_abs_diff_vs_pywt']:.1e} |")
    return "\n".join(lines)


def main() -> None:
    """Run every configuration, print a markdown table and write the JSON results."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--wavelet", default="db4")
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    ap.add_argument("--threads", default=None, help="comma list (default: 1 and all)")
    ap.add_argument("--cases", default="1D,2D,3D", help="comma list of " + ",".join(SHAPES))
    ap.add_argument("--modes", default="periodization,symmetric")
    ap.add_argument("--levels", default="1,2")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "wavelets.json"))
    args = ap.parse_args()
    dtype = getattr(torch, args.dtype)
    default_threads, load_at_start = torch.get_num_threads(), os.getloadavg()
    threads = sorted({1, default_threads}) if args.threads is None else \
        [int(t) for t in args.threads.split(",")]
    rows = []
    for t in threads:
        for name in args.cases.split(","):
            shape, axes = SHAPES[name]
            for mode in args.modes.split(","):
                for level in (int(v) for v in args.levels.split(",")):
                    r = {"case": name, **run_case(shape, axes, args.wavelet, level, mode, t,
                                                  args.repeats, dtype)}
                    rows.append(r)
                    print(f"{name} {mode} L{level} threads={t}: ratio median "
                          f"{r['ratio_wall_median']:.2f}, min {r['ratio_wall_min']:.2f}, "
                          f"CPU median {r['ratio_cpu_median']:.2f}", flush=True)
    print(f"\nforward+inverse, {args.wavelet}, {args.dtype}, {args.repeats} interleaved repeats;"
          " ratio = pywt / genphys (> 1: genphys faster); CPU: thread (1) / process CPU time\n")
    print(_table(rows))
    meta = {"torch": torch.__version__, "pywt": pywt.__version__, "cpu_count": os.cpu_count(),
            "load_average_at_start": load_at_start, "load_average_at_end": os.getloadavg(),
            "machine": platform.machine(), "dtype": args.dtype, "repeats": args.repeats,
            "wavelet": args.wavelet}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"meta": meta, "results": rows}, indent=1))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
