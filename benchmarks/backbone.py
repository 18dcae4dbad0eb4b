"""Backbone benchmark: parameters, forward / train-step latency and peak memory on this CPU.

Demo sizes: a 1D Burgers wavelet grid ``(B, 4, 32, 64)`` (1 field × 4 level-1 subbands of
a 64 × 128 space–time trajectory) and a 2D grid ``(B, 8, 8, 32, 32)`` (1 field × 8 subbands
of a 16 × 64 × 64 trajectory), B ∈ {1, 16}, for the default ``SpaceTimeDiT`` and
``SpaceTimeUNet`` configs, without conditioning and with every slot (1 PDE parameter,
384-d pooled text, 32 × 384-d text tokens with padding, masked field channels).

Each case runs in a fresh process; peak memory is the rise of the process's peak RSS
(``resource.getrusage``) over its value just before the timed calls (model and inputs
already built). Latency is the median over ``--repeats`` calls after one warm-up (at
least 3, fewer than ``--repeats`` when one call takes over 1/repeats of a 20 s budget).

    python3 benchmarks/backbone.py [--repeats 5] [--threads 1] [--quick]
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import multiprocessing as mp
import os
import pathlib
import platform
import resource
import statistics
import time

RESULTS = pathlib.Path(__file__).resolve().parent / "results" / "backbone.json"
GRIDS = {  # name -> (channels, grid, DiT kwargs, UNet kwargs)
    "burgers1d": (4, (32, 64), dict(patch_size=(2, 4)), dict(spatial_dims=1)),
    "grid2d": (8, (8, 32, 32), dict(patch_size=(2, 4, 4)), dict(spatial_dims=2)),
}
TEXT_DIM, TEXT_LEN = 384, 32  # all-MiniLM-L6-v2 width, a short caption


def _inputs(b: int, ch: int, grid: tuple[int, ...], conditioned: bool) -> dict:
    import torch

    g = torch.Generator().manual_seed(0)
    inp = dict(x=torch.randn(b, ch, *grid, generator=g), sigma=torch.rand(b, generator=g) + 0.1)
    if conditioned:
        mask = torch.arange(TEXT_LEN)[None] < torch.randint(8, TEXT_LEN, (b, 1), generator=g)
        inp.update(params=torch.randn(b, 1, generator=g),
                   pooled=torch.randn(b, TEXT_DIM, generator=g),
                   tokens=torch.randn(b, TEXT_LEN, TEXT_DIM, generator=g), token_mask=mask,
                   cond=torch.randn(b, ch, *grid, generator=g),
                   cond_mask=(torch.rand(b, 1, *grid, generator=g) < 0.25).float())
    return inp


def _timed(fn, repeats: int, budget_s: float = 20.0) -> tuple[float, float, int]:
    t0 = time.perf_counter()
    fn()  # warm-up
    warm = time.perf_counter() - t0
    n = max(3, min(repeats, int(budget_s / max(warm, 1e-9))))  # fewer repeats for slow cases
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), min(times), n


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB -> MiB


def measure(kind: str, grid_name: str, b: int, conditioned: bool, repeats: int,
            threads: int) -> dict:
    """Build one model in this (fresh) process and time forward and a train step."""
    import torch

    from genphys.backbone import SpaceTimeDiT, SpaceTimeUNet

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    ch, grid, dit_kw, unet_kw = GRIDS[grid_name]
    slots = dict(param_dim=1, pooled_dim=TEXT_DIM, token_dim=TEXT_DIM,
                 cond_channels=ch) if conditioned else {}
    cls, kw = (SpaceTimeDiT, dit_kw) if kind == "dit" else (SpaceTimeUNet, unet_kw)
    model = cls(in_channels=ch, **kw, **slots)
    inp = _inputs(b, ch, grid, conditioned)
    x, sigma = inp.pop("x"), inp.pop("sigma")

    def forward():
        with torch.no_grad():
            model(x, sigma, **inp)

    def train_step():
        model.zero_grad(set_to_none=True)
        model(x, sigma, **inp).square().mean().backward()

    base = _peak_mib()
    fwd, fwd_min, n_fwd = _timed(forward, repeats)
    fwd_peak = _peak_mib() - base
    step, step_min, n_step = _timed(train_step, repeats)
    return dict(model=cls.__name__, grid=grid_name, shape=[b, ch, *grid], conditioned=conditioned,
                params=sum(p.numel() for p in model.parameters()), forward_ms=1e3 * fwd,
                forward_min_ms=1e3 * fwd_min, train_step_min_ms=1e3 * step_min,
                forward_peak_mib=fwd_peak, train_step_ms=1e3 * step,
                train_peak_mib=_peak_mib() - base, repeats=[n_fwd, n_step], threads=threads)


def table(rows: list[dict]) -> str:
    """Markdown table of the measured rows."""
    head = ("| model | input | cond | params | forward ms | fwd peak MiB "
            "| train step ms | train peak MiB |\n|---|---|---|---:|---:|---:|---:|---:|")
    # latency columns: median (min) over the repeats
    lines = [head]
    for r in rows:
        cond = "all" if r["conditioned"] else "-"
        lines.append(f"| {r['model']} | {tuple(r['shape'])} | {cond} | {r['params'] / 1e6:.2f}M "
                     f"| {r['forward_ms']:.1f} ({r['forward_min_ms']:.1f}) "
                     f"| {r['forward_peak_mib']:.0f} "
                     f"| {r['train_step_ms']:.1f} ({r['train_step_min_ms']:.1f}) "
                     f"| {r['train_peak_mib']:.0f} |")
    return "\n".join(lines)


def main() -> None:
    """Run every case in its own process, print a markdown table and write JSON."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--quick", action="store_true", help="B=1 only, 2 repeats (smoke run)")
    args = ap.parse_args()
    batches = (1,) if args.quick else (1, 16)
    repeats = 2 if args.quick else args.repeats
    ctx = mp.get_context("spawn")
    load0 = os.getloadavg()
    rows = []
    for kind in ("dit", "unet"):
        for grid in GRIDS:
            for conditioned in (False, True):
                for b in batches:
                    with cf.ProcessPoolExecutor(1, mp_context=ctx) as pool:
                        rows.append(pool.submit(measure, kind, grid, b, conditioned, repeats,
                                                args.threads).result())
                    print(table(rows[-1:]).splitlines()[-1], flush=True)
    print("\n" + table(rows))
    import torch

    env = dict(torch=torch.__version__, loadavg_at_start=load0, python=platform.python_version(),
               cpu_count=os.cpu_count(), threads=args.threads, repeats=repeats,
               loadavg_at_end=os.getloadavg(), date=time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                  time.gmtime()))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(dict(env=env, rows=rows), indent=1) + "\n")
    print(f"\nwrote {RESULTS}")


if __name__ == "__main__":
    main()
