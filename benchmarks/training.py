"""Training throughput at the burgers1d config: samples/s for 1 vs 2 processes (gloo DDP on
CPU through ``accelerate launch --multi_gpu``) and a per-step time breakdown (data vs compute).

    python benchmarks/training.py [--config configs/burgers1d.yaml] [--steps 30] [--repeats 3]
    python benchmarks/training.py --few-step BASE_EXPORT STUDENT_EXPORT [...]

The second form compares the relative L2 (val split, first-frame conditioning) of a base
flow model at 20 NFE and 2 NFE with a reflowed/distilled student at 1 and 2 NFE and writes
``benchmarks/results/training_few_step.json``.

Prints a markdown table and writes ``benchmarks/results/training.json``. Needs the config's
data file (see the comment at the top of the config).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
DRIVER = """
import json, sys, time
from genphys.config import load_config
from genphys.train import ExperimentConfig, Trainer
cfg_path, out, steps = sys.argv[1], sys.argv[2], int(sys.argv[3])
cfg = load_config(ExperimentConfig, cfg_path, [
    f"checkpoint.output_dir={out}", f"train.steps={steps}", "validation.every=0",
    "validation.num_trajectories=0", "validation.loss_batches=1", "checkpoint.every=100000",
    "logging.progress=false", "logging.trackers=[csv]"])
stamps = []
tr = Trainer(cfg, callback=lambda t: stamps.append(time.perf_counter()))
tr.fit()
if tr.acc.is_main_process:
    json.dump({"stamps": stamps, "global_batch": tr.global_batch,
               "processes": tr.acc.num_processes}, open(f"{out}/stamps.json", "w"))
"""


def run_processes(cfg: str, n: int, steps: int, threads: int) -> dict:
    """Launch ``n`` processes for ``steps`` steps; samples/s over the steps after the first 5."""
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "driver.py"
        script.write_text(DRIVER)
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "ACCELERATE_USE_CPU": "1"}
        if n == 1:
            cmd = [sys.executable, str(script)]
        else:
            cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu",
                   "--num_processes", str(n), "--num_machines", "1", "--mixed_precision", "no",
                   "--dynamo_backend", "no", str(script)]
        out = Path(tmp) / "run"
        subprocess.run([*cmd, cfg, str(out), str(steps)], check=True, env=env, cwd=ROOT,
                       capture_output=True, text=True)
        rec = json.loads((out / "stamps.json").read_text())
    s = rec["stamps"][5:]
    per_step = (s[-1] - s[0]) / (len(s) - 1)
    return {"processes": n, "threads_per_process": threads, "global_batch": rec["global_batch"],
            "s_per_step": per_step, "samples_per_s": rec["global_batch"] / per_step}


def breakdown(cfg_path: str, steps: int) -> dict:
    """Median seconds per step spent waiting for the DataLoader vs in loss+backward+AdamW."""
    from genphys.config import load_config
    from genphys.train import ExperimentConfig
    from genphys.train.data import train_loader
    from genphys.train.tasks import DiffusionTask

    cfg = load_config(ExperimentConfig, cfg_path)
    task = DiffusionTask(cfg)
    model = task.build_model()
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.optimizer.lr)
    loader = train_loader(task.train_dataset, cfg.data, cfg.train.seed)
    it = iter(loader)
    data_t, comp_t = [], []
    for i in range(steps):
        t0 = time.perf_counter()
        batch = next(it, None)
        if batch is None:  # next epoch
            it = iter(loader)
            batch = next(it)
        t1 = time.perf_counter()
        loss, _ = task.loss(model, batch, torch.Generator().manual_seed(i))
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        t2 = time.perf_counter()
        data_t.append(t1 - t0)
        comp_t.append(t2 - t1)
    d, c = statistics.median(data_t[2:]), statistics.median(comp_t[2:])
    return {"data_s": d, "compute_s": c, "data_fraction": d / (d + c),
            "batch": cfg.data.batch_size, "params": sum(p.numel() for p in model.parameters())}


def few_step(exports: list[str]) -> None:
    """Relative L2 of base vs student at few NFE (issue 5 acceptance); table + JSON."""
    from genphys.train.evaluate import evaluate_export

    base, *students = exports
    rows = [evaluate_export(base, sampler="rf_euler", steps=20),
            evaluate_export(base, sampler="rf_heun", steps=10),
            evaluate_export(base, sampler="rf_euler", steps=2, grid="euler_uniform")]
    for s in students:
        rows += [evaluate_export(s, sampler="rf_euler", steps=k, grid="euler_uniform")
                 for k in (1, 2)]
    print("| model | sampler | grid | NFE | rel L2 mean | rel L2 median | n |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['export']} | {r['sampler']} | {r['grid']} | {r['nfe']} | "
              f"{r['rel_l2_mean']:.4f} | {r['rel_l2_median']:.4f} | {r['n']} |")
    out = ROOT / "benchmarks" / "results" / "training_few_step.json"
    out.write_text(json.dumps(rows, indent=1))
    print(f"wrote {out}")


def main() -> None:
    """Run the measurements, print a markdown table, write the JSON."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=str(ROOT / "configs" / "burgers1d.yaml"))
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--few-step", nargs="+", metavar="EXPORT", default=None,
                    help="base export then student export(s): few-NFE accuracy comparison")
    args = ap.parse_args()
    if args.few_step:
        few_step(args.few_step)
        return
    cores = os.cpu_count() or 1
    # one process with 1 thread (the per-process budget of the 2-process run) and with all cores
    setups = [(1, 1), (1, cores), (2, max(cores // 2, 1))]
    bd = breakdown(args.config, args.steps)
    runs = {f"{n}x{t}": [run_processes(args.config, n, args.steps, t)
                         for _ in range(args.repeats)] for n, t in setups}
    med = {k: statistics.median(r["samples_per_s"] for r in v) for k, v in runs.items()}
    load = os.getloadavg()[0]
    print(f"| processes x threads | global batch | samples/s (median of {args.repeats}) |")
    print("|---|---|---|")
    for k, v in runs.items():
        print(f"| {k} | {v[0]['global_batch']} | {med[k]:.1f} |")
    ratio = med[f"2x{setups[2][1]}"] / med["1x1"]
    print(f"\n2 processes / 1 process (1 thread each): {ratio:.2f}x; per step "
          f"(1 process, batch {bd['batch']}, "
          f"{bd['params']} parameters): data {bd['data_s'] * 1e3:.1f} ms, compute "
          f"{bd['compute_s'] * 1e3:.1f} ms (data {100 * bd['data_fraction']:.1f}%); "
          f"{cores} cores, load average {load:.1f}")
    out = ROOT / "benchmarks" / "results" / "training.json"
    out.write_text(json.dumps({"config": args.config, "steps": args.steps, "cores": cores,
                               "load_average": load, "runs": runs, "median_samples_per_s": med,
                               "ratio_2_over_1": ratio, "breakdown": bd}, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
