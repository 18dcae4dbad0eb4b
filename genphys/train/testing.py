"""Tiny datasets and configs for the trainer's tests, examples and benchmarks."""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

from genphys.config import apply_overrides, from_dict
from genphys.data import write_trajectories
from genphys.data.synthetic import toy_grid
from genphys.train.config import ExperimentConfig

FLOW = {"kind": "flow", "schedule": "flow", "prediction": "flow", "preconditioning": "none",
        "weighting": "uniform", "noise_sampling": "logit_normal"}
TINY_UNET = {"base_channels": 8, "channel_mult": [1, 2], "groups": 4, "num_heads": 2,
             "freq_dim": 16}


def toy_dataset(path: str | os.PathLike, num: int = 20, n_t: int = 8, nx: int = 16) -> Path:
    """Write ``num`` seeded random 1D trajectories ``(1, n_t, nx)`` (not a PDE) to ``path``."""
    return write_trajectories(path, [toy_grid(num, n_t=n_t, space=(nx,))],
                              system_name="toy1d", overwrite=True)


def tiny_config_dict(data_path: str | os.PathLike, out_dir: str | os.PathLike,
                     steps: int = 4) -> dict[str, Any]:
    """Plain-data experiment of a ~10k-parameter UNet flow model on a tiny file."""
    return {
        "data": {"path": str(data_path), "batch_size": 2, "condition": "first_frame",
                 "params": True},
        "model": {"kind": "unet", "kwargs": copy.deepcopy(TINY_UNET)},
        "objective": dict(FLOW),
        "representation": {"wavelet": "haar", "level": 1},
        "optimizer": {"lr": 1e-3, "grad_clip": 1.0},
        "schedule": {"warmup_steps": 2},
        "ema": {"decay": 0.9},
        "logging": {"every": 1, "trackers": ["csv"], "progress": False},
        "checkpoint": {"output_dir": str(out_dir), "every": 1000, "keep_last": 2},
        "validation": {"every": 0, "loss_batches": 1, "num_trajectories": 2, "steps": 2,
                       "sampler": "rf_euler"},
        "train": {"steps": steps, "seed": 0},
    }


def tiny_config(data_path: str | os.PathLike, out_dir: str | os.PathLike, steps: int = 4,
                overrides: list[str] | None = None) -> ExperimentConfig:
    """:func:`tiny_config_dict` with ``section.key=value`` overrides, as a typed config."""
    data = apply_overrides(tiny_config_dict(data_path, out_dir, steps), overrides or [])
    return from_dict(ExperimentConfig, data)
