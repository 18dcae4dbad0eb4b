"""A small, seeded training loop for the mesh autoencoder (AdamW, warm-up + cosine).

Run ``python -m genphys.autoencoder.train configs/ae_advdiff_mesh2d.yaml [--set key=value]``.
Each step draws ``batch_frames`` random (trajectory, frame) pairs, encodes each from all its
nodes or (with probability ``subset_prob``) from a random subset, and decodes at all or
``queries`` random nodes; the loss is the MSE of normalized fields.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from genphys.autoencoder.data import PointTrajectory, field_stats, pad, read_trajectories
from genphys.autoencoder.model import MeshAutoencoder
from genphys.config import load_config, to_yaml
from genphys.errors import GenphysError, UserInputError


@dataclass(frozen=True)
class AETrainConfig:
    """One autoencoder training run (YAML in ``configs/ae_*.yaml``)."""

    data: str = ""  # training trajectory file (grid or mesh HDF5)
    val: str | None = None  # held-out file evaluated after training (None: skip)
    model: dict[str, Any] = field(default_factory=dict)  # MeshAutoencoder keywords
    init: str | None = None  # continue from a save_pretrained folder (its config wins)
    steps: int = 2000  # optimizer steps
    batch_frames: int = 8  # frames per step (different meshes are padded)
    queries: int = 0  # decoded nodes per frame (0: every node)
    lr: float = 1e-3  # AdamW peak learning rate
    weight_decay: float = 0.0
    warmup: int = 100  # linear warm-up steps
    min_lr_ratio: float = 0.02  # cosine floor
    subset_prob: float = 0.5  # probability of encoding from a random node subset
    keep_min: float = 0.5  # smallest kept node fraction of such a subset
    seed: int = 0  # init and data order
    threads: int = 1  # torch CPU threads
    output_dir: str = "runs/ae"  # model/ (save_pretrained), config.yaml, log.txt, metrics.json
    log_every: int = 50
    time_limit_min: float = 60.0  # cosine progress is max(step/steps, elapsed/limit)

    def __post_init__(self) -> None:
        if not self.data:
            raise UserInputError("data is empty; give the HDF5 trajectory file to train on.")
        for name in ("steps", "batch_frames", "threads", "log_every"):
            if getattr(self, name) < 1:
                raise UserInputError(f"{name}={getattr(self, name)} must be >= 1.")
        if not (0 < self.keep_min <= 1 and 0 <= self.subset_prob <= 1):
            raise UserInputError(f"keep_min={self.keep_min} must be in (0, 1] and subset_prob="
                                 f"{self.subset_prob} in [0, 1].")


def build_model(cfg: AETrainConfig, trajs: list[PointTrajectory]) -> MeshAutoencoder:
    """The autoencoder of ``cfg.model`` with channels/dim from the data and field stats set."""
    kw = dict(cfg.model)
    kw.setdefault("in_channels", trajs[0].fields.shape[-1])
    kw.setdefault("dim", trajs[0].points.shape[-1])
    try:
        model = MeshAutoencoder(**kw)
    except TypeError as e:
        raise UserInputError(f"model keywords do not fit MeshAutoencoder: {e}.") from None
    model.set_field_stats(*field_stats(trajs))
    return model


def lr_factor(progress: float, step: int, cfg: AETrainConfig) -> float:
    """Linear warm-up, then cosine decay to ``min_lr_ratio`` over ``progress`` in [0, 1]."""
    if step < cfg.warmup:
        return (step + 1) / cfg.warmup
    cos = 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))
    return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * cos


def sample_batch(trajs: list[PointTrajectory], cfg: AETrainConfig, rng: np.random.Generator
                 ) -> tuple[tuple[torch.Tensor, ...], tuple[torch.Tensor, ...]]:
    """Padded encoder inputs (coords, fields, mask) and decoder targets of random frames."""
    enc_p, enc_f, dec_p, dec_f = [], [], [], []
    for _ in range(cfg.batch_frames):
        tr = trajs[int(rng.integers(len(trajs)))]
        pts, vals = tr.points, tr.fields[int(rng.integers(len(tr.fields)))]  # (N, d), (N, C)
        n = len(pts)
        keep = np.arange(n)
        if rng.random() < cfg.subset_prob:
            keep = np.flatnonzero(rng.random(n) < rng.uniform(cfg.keep_min, 1.0))
        query = np.arange(n) if not cfg.queries or cfg.queries >= n else \
            rng.choice(n, cfg.queries, replace=False)
        enc_p.append(torch.from_numpy(pts[keep]))
        enc_f.append(torch.from_numpy(vals[keep]))
        dec_p.append(torch.from_numpy(pts[query]))
        dec_f.append(torch.from_numpy(vals[query]))
    return pad(enc_p, enc_f), pad(dec_p, dec_f)


def step_loss(model: MeshAutoencoder, enc: tuple[torch.Tensor, ...],
              dec: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """MSE of normalized fields over the real (unpadded) query nodes."""
    z = model.encode(*enc, normalize=False)
    y = model.decode(z, dec[0], normalized=False, physical=False)  # (B, Q, C)
    target = (dec[1] - model.field_mean) / model.field_std
    err = ((y - target) ** 2).sum(-1) * dec[2]  # (B, Q)
    return err.sum() / (dec[2].sum() * target.shape[-1])


@torch.no_grad()
def fit_latent_stats(model: MeshAutoencoder, trajs: list[PointTrajectory],
                     frames: int = 8) -> None:
    """Latent normalization from ``frames`` evenly spaced frames of every training trajectory."""
    z = []
    for tr in trajs:
        ts = np.linspace(0, len(tr.fields) - 1, min(frames, len(tr.fields))).astype(int)
        coords = torch.from_numpy(tr.points)[None].expand(len(ts), -1, -1)  # (F, N, d)
        z.append(model.encode(coords, torch.from_numpy(tr.fields[ts]), normalize=False))
    model.set_latent_stats(torch.cat(z))


def train(cfg: AETrainConfig) -> MeshAutoencoder:
    """Train, fit latent statistics, save to ``output_dir/model`` and evaluate ``cfg.val``."""
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.yaml").write_text(to_yaml(cfg))
    trajs = read_trajectories(cfg.data)
    model = MeshAutoencoder.from_pretrained(cfg.init) if cfg.init else build_model(cfg, trajs)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    rng, t0, log = np.random.default_rng(cfg.seed), time.time(), open(out / "log.txt", "w")
    for step in range(cfg.steps):
        elapsed = (time.time() - t0) / 60
        if elapsed > cfg.time_limit_min:
            break
        for g in opt.param_groups:
            g["lr"] = cfg.lr * lr_factor(max(step / cfg.steps, elapsed / cfg.time_limit_min),
                                         step, cfg)
        loss = step_loss(model, *sample_batch(trajs, cfg, rng))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % cfg.log_every == 0 or step == cfg.steps - 1:
            print(f"step {step} loss {loss.item():.4e} lr {opt.param_groups[0]['lr']:.2e} "
                  f"min {elapsed:.1f}", file=log, flush=True)
    model.eval()
    fit_latent_stats(model, trajs)
    model.save_pretrained(out / "model")
    if cfg.val:
        from genphys.autoencoder.evaluate import evaluate

        metrics = evaluate(model, read_trajectories(cfg.val), seed=cfg.seed)
        metrics["train_minutes"] = (time.time() - t0) / 60
        (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
        print(json.dumps(metrics), file=log, flush=True)
    log.close()
    return model


def main(argv: list[str] | None = None) -> int:
    """CLI: ``python -m genphys.autoencoder.train CONFIG [--set key=value ...]``."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("config")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = ap.parse_args(argv)
    try:
        train(load_config(AETrainConfig, args.config, args.set))
    except GenphysError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
