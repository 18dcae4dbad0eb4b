"""A 1D Fourier Neural Operator baseline for initial-condition-conditioned Burgers generation.

FNO as in Li, Kovachki, Azizzadenesheli, Liu, Bhattacharya, Stuart & Anandkumar, "Fourier
Neural Operator for Parametric Partial Differential Equations" (ICLR 2021): a pointwise
lifting P, four Fourier layers v <- GELU(W v + K v) in which K multiplies the ``modes``
lowest Fourier modes by learned complex matrices (no activation after the last layer), and a
pointwise two-layer projection Q. Written from the paper's equations.

Task (the diffusion model's, issue 8): from u(x, 0), log10(nu) and the x grid, predict the
whole trajectory u(x, t_1..t_31). ``--mode oneshot`` outputs all 31 frames as channels at
once (PDEBench's "single step to all times"); ``--mode autoregressive`` maps u(t_k) to
u(t_{k+1}) (residual) and is rolled out. Training: AdamW, relative L2 loss in physical units,
cosine decay of the learning rate scheduled on elapsed process CPU time, one thread, stopping
when ``--cpu-seconds`` are spent. Results: ``benchmarks/results/fno_<name>.json`` + ``.md``.

    OMP_NUM_THREADS=1 python benchmarks/fno.py --data data/burgers1d_3k.h5 --cpu-seconds 4200 \
        --out runs/fno_burgers1d
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from genphys.backbone import SpectralConv

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class FNOConfig:
    """Shape of a 1D FNO (Li et al. 2021, Section 4.1)."""

    in_channels: int = 3  # u(t_0) (or u(t_k)), log10(nu) feature, x grid
    out_channels: int = 31  # frames predicted at once
    width: int = 64  # channels of the Fourier layers
    modes: int = 16  # lowest Fourier modes kept by each spectral convolution
    layers: int = 4  # Fourier layers
    proj_width: int = 128  # hidden channels of the projection Q


class FNO1d(nn.Module):
    """Lifting P -> 4 x [spectral conv + pointwise linear, GELU] -> projection Q."""

    def __init__(self, cfg: FNOConfig):
        super().__init__()
        self.cfg = cfg
        self.lift = nn.Conv1d(cfg.in_channels, cfg.width, 1)
        self.spectral = nn.ModuleList(SpectralConv(cfg.width, cfg.width, cfg.modes, dims=1)
                                      for _ in range(cfg.layers))
        self.pointwise = nn.ModuleList(nn.Conv1d(cfg.width, cfg.width, 1)
                                       for _ in range(cfg.layers))
        self.proj = nn.Sequential(nn.Conv1d(cfg.width, cfg.proj_width, 1), nn.GELU(),
                                  nn.Conv1d(cfg.proj_width, cfg.out_channels, 1))

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        """``(B, in_channels, N) -> (B, out_channels, N)``."""
        v = self.lift(a)  # (B, width, N)
        for i, (k, w) in enumerate(zip(self.spectral, self.pointwise)):
            v = k(v) + w(v)
            if i < len(self.spectral) - 1:  # the paper's last Fourier layer has no activation
                v = nn.functional.gelu(v)
        return self.proj(v)


def nu_feature(nu: torch.Tensor) -> torch.Tensor:
    """log10(nu) mapped from [-3, -1] to [-1, 1] (the default viscosity range)."""
    return torch.log10(nu) + 2.0


def inputs(u: torch.Tensor, nu: torch.Tensor) -> torch.Tensor:
    """Stack a normalized frame ``(B, N)``, the nu feature and the x grid to ``(B, 3, N)``."""
    b, n = u.shape
    x = (torch.arange(n, dtype=u.dtype) + 0.5) / n  # cell centres of [0, 1)
    return torch.stack([u, nu_feature(nu)[:, None].expand(b, n).to(u.dtype),
                        x.expand(b, n)], dim=1)


def predict(model: FNO1d, u0: torch.Tensor, nu: torch.Tensor, mode: str,
            frames: int) -> torch.Tensor:
    """Normalized trajectory ``(B, frames, N)`` from a normalized first frame ``u0`` (B, N)."""
    if mode == "oneshot":
        return torch.cat([u0[:, None], model(inputs(u0, nu))], dim=1)
    out = [u0]
    for _ in range(frames - 1):  # residual step u_{k+1} = u_k + FNO(u_k)
        out.append(out[-1] + model(inputs(out[-1], nu))[:, 0])
    return torch.stack(out, dim=1)


def rel_l2_loss(pred: torch.Tensor, true: torch.Tensor, mean: float, std: float) -> torch.Tensor:
    """Mean over the batch of ||pred - true|| / ||true|| in physical units (normalized in)."""
    p, t = pred * std + mean, true * std + mean
    dims = tuple(range(1, pred.ndim))
    return ((p - t).pow(2).sum(dims).sqrt() / t.pow(2).sum(dims).sqrt().clamp_min(1e-12)).mean()


def load_split(path: str, split: str) -> dict:
    """Normalized trajectories ``u`` (M, T, N), ``nu`` (M,) and the training-split statistics."""
    from genphys.data import TrajectoryDataset

    ds = TrajectoryDataset(path, split, fields=["u"])
    items = [ds[i] for i in range(len(ds))]
    u = torch.stack([it["x"][0] for it in items])  # (M, T, N) normalized
    nu = torch.stack([it["params"][ds.param_names.index("nu")] for it in items])
    return {"u": u, "nu": nu, "mean": float(ds.stats.mean[0]), "std": float(ds.stats.std[0])}


def cosine_lr(lr: float, used: float, budget: float, warmup: float = 0.01) -> float:
    """Linear warm-up over ``warmup`` of the budget, then cosine decay to 0 (on CPU seconds)."""
    f = used / budget
    if f < warmup:
        return lr * max(f / warmup, 0.01)
    return lr * 0.5 * (1 + math.cos(math.pi * min(1.0, (f - warmup) / (1 - warmup))))


def batch_loss(model: FNO1d, data: dict, idx: torch.Tensor, mode: str,
               gen: torch.Generator) -> torch.Tensor:
    """Loss on trajectories ``idx``: whole-trajectory relative L2 (oneshot) or one-step MSE."""
    u, nu = data["u"][idx], data["nu"][idx]
    if mode == "oneshot":
        return rel_l2_loss(predict(model, u[:, 0], nu, mode, u.shape[1]), u,
                           data["mean"], data["std"])
    # one random step per trajectory with teacher forcing; mean squared error in normalized
    # units, since a per-frame relative L2 explodes on late, almost fully decayed frames
    k = torch.randint(u.shape[1] - 1, (len(idx),), generator=gen)
    rows = torch.arange(len(idx))
    pred = u[rows, k] + model(inputs(u[rows, k], nu))[:, 0]  # (B, N)
    return (pred - u[rows, k + 1]).pow(2).mean()


@torch.no_grad()
def evaluate(model: FNO1d, data: dict, mode: str, batch: int = 256) -> np.ndarray:
    """Per-trajectory relative L2 of the whole predicted trajectory, physical units."""
    from genphys.pipelines.evaluate import rel_l2

    model.eval()
    u, errs = data["u"], []
    for s in range(0, len(u), batch):
        true = u[s:s + batch]
        pred = predict(model, true[:, 0], data["nu"][s:s + batch], mode, u.shape[1])
        scale = lambda z: (z * data["std"] + data["mean"]).double().numpy()  # noqa: E731
        errs.append(rel_l2(scale(pred), scale(true)))
    model.train()
    return np.concatenate(errs)


def train(model: FNO1d, data: dict, val: dict | None, args: argparse.Namespace) -> dict:
    """AdamW + cosine-on-CPU-time until ``args.cpu_seconds`` of process CPU time are spent."""
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    gen = torch.Generator().manual_seed(args.seed)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    steps = epochs = 0
    log, n = [], len(data["u"])
    while True:
        perm = torch.randperm(n, generator=gen)
        for s in range(0, n - args.batch_size + 1, args.batch_size):
            used = time.process_time() - cpu0
            if used >= args.cpu_seconds:
                return {"steps": steps, "epochs": epochs + s / n, "cpu_seconds": used,
                        "wall_seconds": time.perf_counter() - wall0, "log": log}
            for g in opt.param_groups:
                g["lr"] = cosine_lr(args.lr, used, args.cpu_seconds)
            loss = batch_loss(model, data, perm[s:s + args.batch_size], args.mode, gen)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            steps += 1
            if steps % args.log_every == 0:
                entry = {"step": steps, "cpu": round(used, 1), "loss": loss.item()}
                if val is not None:
                    entry["val_rel_l2"] = float(evaluate(model, val, args.mode).mean())
                log.append(entry)
                print(json.dumps(entry), flush=True)
        epochs += 1


def save_model(model: FNO1d, data: dict, args: argparse.Namespace, out: Path) -> None:
    """Weights as safetensors and the config (shape, mode, normalization) as JSON."""
    from safetensors.torch import save_file

    out.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()},
              str(out / "fno.safetensors"))
    cfg = {"fno": asdict(model.cfg), "mode": args.mode, "mean": data["mean"], "std": data["std"],
           "nu_feature": "log10(nu) + 2", "data": args.data}
    (out / "config.json").write_text(json.dumps(cfg, indent=2))


def report(name: str, args: argparse.Namespace, model: FNO1d, fit: dict, test: dict,
           err: np.ndarray, cmd: str) -> dict:
    """Write ``benchmarks/results/fno_<name>.json`` and ``.md``; return the JSON dict."""
    from genphys.pipelines.evaluate import by_decade

    decades = by_decade(test["nu"].double().numpy(), err)
    res = {"model": "FNO1d (Li et al. 2021)", "mode": args.mode, "config": asdict(model.cfg),
           "params": sum(p.numel() for p in model.parameters()), "lr": args.lr,
           "batch_size": args.batch_size, "weight_decay": args.weight_decay,
           "cpu_budget_s": args.cpu_seconds, "cpu_seconds": round(fit["cpu_seconds"], 1),
           "wall_seconds": round(fit["wall_seconds"], 1), "steps": fit["steps"],
           "epochs": round(fit["epochs"], 2), "test_trajectories": len(err),
           "test_rel_l2_mean": float(err.mean()), "test_rel_l2_median": float(np.median(err)),
           "test_rel_l2_by_decade": decades, "command": cmd, "log": fit["log"]}
    res_dir = ROOT / "benchmarks" / "results"
    (res_dir / f"fno_{name}.json").write_text(json.dumps(res, indent=2) + "\n")
    cells = " | ".join(f"{v:.4f}" for v in decades.values())
    md = [f"FNO baseline on `{args.data}` (test split, {len(err)} trajectories, whole "
          "trajectory relative L2 in physical units).", "", "```", cmd, "```", "",
          "| model | mode | params | CPU s | wall s | steps | epochs | rel L2 mean | median | "
          + " | ".join(decades) + " |",
          "|---" * (9 + len(decades)) + "|",
          f"| FNO1d w{model.cfg.width} m{model.cfg.modes} | {args.mode} | {res['params']} | "
          f"{res['cpu_seconds']} | {res['wall_seconds']} | {res['steps']} | {res['epochs']} | "
          f"{res['test_rel_l2_mean']:.4f} | {res['test_rel_l2_median']:.4f} | {cells} |", ""]
    (res_dir / f"fno_{name}.md").write_text("\n".join(md))
    print("\n".join(md))
    return res


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options (see the module docstring)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="burgers1d HDF5 file")
    ap.add_argument("--cpu-seconds", type=float, default=4200.0, help="process CPU budget")
    ap.add_argument("--mode", choices=("oneshot", "autoregressive"), default="oneshot")
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--modes", type=int, default=16)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--weight-decay", type=float, default=1e-4)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--log-every", type=int, default=500, help="steps between val evaluations")
    ap.add_argument("--eval-split", default="test", help="split scored at the end")
    ap.add_argument("--out", default="runs/fno_burgers1d", help="weights + config folder")
    ap.add_argument("--name", default="burgers1d", help="results file suffix; '' = no files")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    """Train the FNO on the train split under a CPU budget and score it on the test split."""
    args = parse_args(argv)
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    data, val = load_split(args.data, "train"), load_split(args.data, "val")
    test = load_split(args.data, args.eval_split)
    frames = data["u"].shape[1]
    out_ch = frames - 1 if args.mode == "oneshot" else 1
    model = FNO1d(FNOConfig(out_channels=out_ch, width=args.width, modes=args.modes))
    print(f"train {len(data['u'])}, val {len(val['u'])}, {args.eval_split} {len(test['u'])}; "
          f"{sum(p.numel() for p in model.parameters())} parameters", flush=True)
    fit = train(model, data, val, args)
    err = evaluate(model, test, args.mode)
    print(f"{args.eval_split} rel L2 mean {err.mean():.4f} after {fit['steps']} steps, "
          f"{fit['cpu_seconds']:.0f} CPU s, {fit['wall_seconds']:.0f} wall s", flush=True)
    save_model(model, data, args, ROOT / args.out)
    cmd = "OMP_NUM_THREADS=1 python benchmarks/fno.py " + " ".join(argv or sys.argv[1:])
    if not args.name:
        return {"test_rel_l2_mean": float(err.mean()), **fit}
    return report(args.name, args, model, fit, test, err, cmd)


if __name__ == "__main__":
    main()
