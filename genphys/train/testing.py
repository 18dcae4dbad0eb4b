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


def tiny_burgers_export(folder: str | os.PathLike, num: int = 4) -> Path:
    """``folder/b.h5`` (``num`` burgers1d trajectories, 32 cells x 16 frames) and an untrained
    first-frame + log10(nu) model exported to ``folder/export``; returns ``folder``."""
    import warnings

    from genphys.physics import get_system
    from genphys.train.tasks import DiffusionTask

    d = Path(folder)
    system = get_system("burgers1d", nx=32, nt=16)
    write_trajectories(d / "b.h5", [system.generate(num, seed=1)], system_name="burgers1d")
    with warnings.catch_warnings():  # no validation split in this tiny file: expected
        warnings.simplefilter("ignore", UserWarning)
        task = DiffusionTask(tiny_config(d / "b.h5", d / "run", overrides=[
            "data.param_transform=log10", "data.split_fractions=[1.0,0.0,0.0]"]))
    task.export(task.build_model(), d / "export")
    return d
