"""Relative L2 of an exported model's samples against held-out trajectories (physical units)."""

from __future__ import annotations

import os
from typing import Any

import torch

import samplers
from genphys.train.data import model_inputs
from genphys.train.export import load_export
from genphys.train.reflow import euler_grid
from genphys.train.tasks import DiffusionTask, relative_l2


def evaluate_export(path: str | os.PathLike, *, sampler: str = "rf_euler", steps: int = 20,
                    grid: str = "default", split: str = "val", limit: int | None = None,
                    batch_size: int = 16, seed: int = 1234) -> dict[str, Any]:
    """Sample every trajectory of ``split`` from its first frame; per-trajectory relative L2.

    ``grid``: "default" (the objective's sigma grid) or "euler_uniform" (k uniform flow-time
    steps, the grid distilled students are trained on). Needs first-frame conditioning.
    """
    exp = load_export(path)
    cfg = exp["config"]
    task = DiffusionTask(cfg)
    ds = task.val_ds if split == "val" else task.train_ds
    n = len(ds) if limit is None else min(limit, len(ds))
    sigmas = euler_grid(task.objective, steps) if grid == "euler_uniform" else None
    errs = []
    for start in range(0, n, batch_size):
        idx = list(range(start, min(start + batch_size, n)))
        batch = torch.utils.data.default_collate([ds[i] for i in idx])
        x0, cond = model_inputs(batch, cfg.data, task.rep, torch.device("cpu"), task.text)
        out = task.objective.sample(exp["model"], x0.shape, cond=cond or None, sampler=sampler,
                                    steps=steps, sigmas=sigmas,
                                    generator=[seed + i for i in idx])
        errs.append(relative_l2(task.to_fields(out), task.to_fields(x0)))
    e = torch.cat(errs)
    return {"export": str(path), "sampler": sampler, "steps": steps, "grid": grid,
            "nfe": samplers.nfe(sampler, steps), "n": int(e.numel()),
            "rel_l2_mean": float(e.mean()), "rel_l2_median": float(e.median())}
