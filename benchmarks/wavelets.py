"""Benchmark: genphys.wavelets vs pywavelets (and ptwt if installed), forward + inverse on CPU.

Runs both sides in one process, alternating repeats (so machine-load drift hits both),
reports medians and ratios (pywt time / ours: > 1 means genphys is faster), prints a
markdown table and writes ``benchmarks/results/wavelets.json``.

    python3 benchmarks/wavelets.py              # default: db4, float32, 5 repeats
    python3 benchmarks/wavelets.py --wavelet bior2.4 --repeats 7
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

SHAPES = [  # (name, shape, axes)
    ("1D", (256, 4, 1024), (-1,)),
    ("2D", (64, 2, 64, 128), (-2, -1)),
    ("3D", (16, 4, 16, 64, 64), (-3, -2, -1)),
]


def _ours(x: torch.Tensor, wavelet: str, level: int, axes: tuple, mode: str) -> torch.Tensor:
    return W.waverecn(W.wavedecn(x, wavelet, level, axes, mode), wavelet, axes, mode)


def _pywt(x: np.ndarray, wavelet: str, level: int, axes: tuple, mode: str) -> np.ndarray:
    with warnings.catch_warnings():  # pywt warns when level > dwt_max_level (symmetric)
        warnings.simplefilter("ignore", UserWarning)
        return pywt.waverecn(pywt.wavedecn(x, wavelet, mode, level, axes), wavelet, mode, axes)


def _time(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def run_case(shape, axes, wavelet, level, mode, threads, repeats, dtype) -> dict:
    """Median forward+inverse times of both libraries for one configuration."""
    torch.set_num_threads(threads)
    x = torch.randn(shape, generator=torch.Generator().manual_seed(0)).to(dtype)
    xn = x.numpy()
    ours, ref = _ours(x, wavelet, level, axes, mode), _pywt(xn, wavelet, level, axes, mode)
    err = float(np.abs(ours.numpy() - ref).max())  # equivalence check on the same input
    t_ours, t_pywt = [], []
    for _ in range(repeats):  # alternate so load drift hits both sides equally
        t_ours.append(_time(lambda: _ours(x, wavelet, level, axes, mode)))
        t_pywt.append(_time(lambda: _pywt(xn, wavelet, level, axes, mode)))
    mo, mp = statistics.median(t_ours), statistics.median(t_pywt)
    return {"shape": list(shape), "axes": list(axes), "wavelet": wavelet, "level": level,
            "mode": mode, "threads": threads, "ours_ms": mo * 1e3, "pywt_ms": mp * 1e3,
            "ratio_pywt_over_ours": mp / mo, "max_abs_diff_vs_pywt": err}


def main() -> None:
    """Run every configuration, print a markdown table and write the JSON results."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--wavelet", default="db4")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "wavelets.json"))
    args = ap.parse_args()
    dtype = getattr(torch, args.dtype)
    default_threads, load_at_start = torch.get_num_threads(), os.getloadavg()
    try:
        import ptwt  # noqa: F401

        ptwt_note = "installed but not benchmarked (it has no periodization mode)"
    except ImportError:
        ptwt_note = "not installed"
    rows = []
    for threads in sorted({1, default_threads}):
        for name, shape, axes in SHAPES:
            for mode in ("periodization", "symmetric"):
                for level in (1, 2):
                    r = run_case(shape, axes, args.wavelet, level, mode, threads, args.repeats,
                                 dtype)
                    rows.append({"case": name, **r})
                    print(f"{name} {mode} L{level} threads={threads}: ours {r['ours_ms']:.1f} ms"
                          f", pywt {r['pywt_ms']:.1f} ms, ratio {r['ratio_pywt_over_ours']:.2f}",
                          flush=True)
    print(f"\nforward+inverse, {args.wavelet}, {args.dtype}, median of {args.repeats}; "
          f"ratio = pywt / ours (> 1: genphys faster); ptwt: {ptwt_note}\n")
    print("| case | shape | mode | level | threads | genphys ms | pywt ms | ratio | max diff |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['case']} | {tuple(r['shape'])} | {r['mode']} | {r['level']} | "
              f"{r['threads']} | {r['ours_ms']:.1f} | {r['pywt_ms']:.1f} | "
              f"{r['ratio_pywt_over_ours']:.2f} | {r['max_abs_diff_vs_pywt']:.1e} |")
    meta = {"torch": torch.__version__, "pywt": pywt.__version__, "cpu_count": os.cpu_count(),
            "load_average_at_start": load_at_start,
            "load_average_at_end": os.getloadavg(), "machine": platform.machine(),
            "dtype": args.dtype, "repeats": args.repeats, "ptwt": ptwt_note}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"meta": meta, "results": rows}, indent=1))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
