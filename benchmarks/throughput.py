"""Generation throughput of a first-frame conditioned model: trajectories per second.

For each batch size, a fresh Python subprocess loads the model, generates one warm-up batch,
then times ``--repeats`` batches of ``TextToSimulationPipeline(initial_state=..., params=...)``
with ``--steps`` steps of ``--sampler`` (default 10 steps of dpmpp_2m = 10 NFE) and reports
the median. Inputs: seeded smooth first frames ``sin(2 pi x + phase_b)`` (not data; the
cost does not depend on the values) and ``nu = 0.01`` for every parameter the model takes;
no text.

Memory. CPU: peak RSS growth of the subprocess during generation, ``ru_maxrss`` (KiB on
Linux) after all generation minus ``ru_maxrss`` after loading the model; a fresh process per
batch size keeps one batch's peak from hiding another's. CUDA: ``torch.cuda.
max_memory_allocated`` during generation, after ``reset_peak_memory_stats`` following the
load (tensors only, not the caching allocator's reserve).

Run: ``OMP_NUM_THREADS=1 python3 benchmarks/throughput.py --model DIR [--batch 1 16 64]
[--steps 10] [--repeats 3]``; writes ``benchmarks/results/throughput.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from genphys.train.checkpoint import atomic_write_text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def first_frames(batch: int, space: Sequence[int], channels: int, seed: int = 0) -> np.ndarray:
    """Seeded smooth periodic first frames ``(B, C, *space)``: sin(2 pi x + phase) per sample."""
    rng = np.random.default_rng(seed)
    phase = rng.uniform(0, 2 * np.pi, (batch, channels) + (1,) * len(space))
    axes = np.meshgrid(*[(np.arange(n) + 0.5) / n for n in space], indexing="ij")
    arg = 2 * np.pi * sum(axes)  # (*space)
    return np.sin(arg[None, None] + phase)  # (B, C, *space)


def worker(args: argparse.Namespace) -> dict[str, Any]:
    """Time one batch size in this process; returns the measurement as a dict."""
    import samplers
    from genphys.pipelines import TextToSimulationPipeline

    if args.threads:
        torch.set_num_threads(args.threads)
    cuda = args.device.startswith("cuda")
    pipe = TextToSimulationPipeline.from_pretrained(args.model, device=args.device)
    spec = pipe.spec
    b = args.batch[0]
    u0 = first_frames(b, spec.field_shape[2:], spec.field_shape[0])
    params = {n: np.full(b, 0.01) for n in spec.param_names} if spec.params else None
    kw = dict(initial_state=u0, params=params, num_inference_steps=args.steps,
              sampler=args.sampler, generator=0)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB, after loading
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    pipe(**kw)  # warm-up
    times = []
    for _ in range(args.repeats):
        if cuda:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        pipe(**kw)
        if cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    peak = torch.cuda.max_memory_allocated() / 2**20 if cuda else (rss1 - rss0) / 1024
    return {"batch": b, "seconds": [round(t, 4) for t in times], "median_s": round(med, 4),
            "trajectories_per_s": round(b / med, 3), "ms_per_trajectory": round(1e3 * med / b, 2),
            "nfe": samplers.nfe(args.sampler, args.steps),
            "peak_mem_mib": round(peak, 1), "process_peak_rss_mib": round(rss1 / 1024, 1),
            "mem_kind": "cuda max_memory_allocated" if cuda else "ru_maxrss growth",
            "torch_threads": torch.get_num_threads(),
            "field_shape": list(spec.field_shape), "coeff_shape": list(spec.coeff_shape),
            "backbone_params": sum(p.numel() for p in pipe.backbone.parameters())}


def run_batch(args: argparse.Namespace, batch: int) -> dict[str, Any]:
    """Measure one batch size in a fresh subprocess (its last stdout line is the JSON)."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", "--model", str(args.model),
           "--batch", str(batch), "--steps", str(args.steps), "--repeats", str(args.repeats),
           "--sampler", args.sampler, "--device", args.device]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0:
        raise RuntimeError(f"throughput worker for batch {batch} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def markdown(doc: dict[str, Any]) -> str:
    """Table: batch, median seconds per batch, trajectories/s, ms/trajectory, peak memory."""
    mem = doc["rows"][0]["mem_kind"] if doc["rows"] else ""
    lines = ["| batch | median s / batch | trajectories / s | ms / trajectory | "
             f"peak memory MiB ({mem}) | process peak RSS MiB | threads |",
             "|---|---|---|---|---|---|---|"]
    for r in doc["rows"]:
        lines.append(f"| {r['batch']} | {r['median_s']:.3f} | {r['trajectories_per_s']:.2f} | "
                     f"{r['ms_per_trajectory']:.1f} | {r['peak_mem_mib']:.1f} | "
                     f"{r['process_peak_rss_mib']:.0f} | {r['torch_threads']} |")
    return "\n".join(lines)


def write_results(doc: dict[str, Any], prefix: Path) -> None:
    """``prefix``.json and .md (command, setup, table)."""
    prefix.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(prefix.with_suffix(".json"), json.dumps(doc, indent=1) + "\n")
    r0 = doc["rows"][0]
    md = [f"# Generation throughput: {doc['model']}", "",
          f"Command (OMP_NUM_THREADS={doc['omp_num_threads']}):", "", f"    {doc['command']}",
          "", f"{doc['sampler']}, {doc['steps']} steps ({r0['nfe']} NFE), first frame + "
          f"parameters conditioned, trajectories of shape (C, T, *space) = "
          f"{tuple(r0['field_shape'])} (model space {tuple(r0['coeff_shape'])}), backbone "
          f"{r0['backbone_params']:,} parameters, device {doc['device']}, {doc['cpu']}. "
          f"Median of {doc['repeats']} timed batches after one warm-up batch, each batch "
          "size in a fresh process. Memory: " + (
              "torch.cuda.max_memory_allocated during generation."
              if doc["device"].startswith("cuda") else
              "peak RSS growth during generation (ru_maxrss after - after loading)."), "",
          markdown(doc), "", "Machine load average (1/5/15 min) before / after: "
          f"{doc['loadavg_before']} / {doc['loadavg_after']}.", ""]
    atomic_write_text(prefix.with_suffix(".md"), "\n".join(md))


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    """Command-line options (``--worker`` is internal: one batch size, JSON on stdout)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="pipeline or `genphys train` export folder")
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 16, 64])
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--sampler", default="dpmpp_2m")
    ap.add_argument("--device", default="cpu", help="cpu or cuda[:i]")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch intra-op threads (default: torch's, i.e. OMP_NUM_THREADS)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "throughput",
                    help="output prefix (.json and .md are added)")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if min(args.batch) < 1 or args.steps < 1 or args.repeats < 1:
        ap.error(f"--batch {args.batch}, --steps {args.steps} and --repeats {args.repeats} "
                 "must be >= 1.")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    """Measure every batch size in its own process, write JSON/markdown, print the table."""
    args = parse(argv)
    if args.worker:
        print(json.dumps(worker(args)))
        return
    t0, load_before = time.perf_counter(), [round(v, 2) for v in os.getloadavg()]
    rows = [run_batch(args, b) for b in args.batch]
    doc = {"model": str(args.model), "sampler": args.sampler, "steps": args.steps,
           "repeats": args.repeats, "device": args.device,
           "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
           "cpu": f"{platform.machine()} with {os.cpu_count()} logical CPUs",
           "torch": torch.__version__, "loadavg_before": load_before,
           "loadavg_after": [round(v, 2) for v in os.getloadavg()],
           "command": "python3 benchmarks/throughput.py "
                      + shlex.join(sys.argv[1:] if argv is None else argv),
           "wall_seconds": round(time.perf_counter() - t0, 1), "rows": rows}
    write_results(doc, args.out)
    print(markdown(doc))
    print(f"wrote {args.out.with_suffix('.json')} and .md")


if __name__ == "__main__":
    main()
