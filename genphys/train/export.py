"""Export of trained (EMA) weights into one folder a pipeline loads later, and the loader.

Layout of ``<output_dir>/export/``::

    backbone/config.json                     diffusers ConfigMixin config of the backbone
    backbone/diffusion_pytorch_model.safetensors   EMA weights (safetensors, never pickles)
    config.yaml                              the resolved training experiment
    normalization.json                       per-channel mean/std of the training split
    representation.json                      wavelet options and model/field shapes
    text_encoder.json                        text encoder config (text-conditioned models only)
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import nn

from genphys.config import from_dict, to_yaml
from genphys.data.normalize import Stats
from genphys.errors import DataFormatError
from genphys.train.checkpoint import atomic_dir
from genphys.train.config import ExperimentConfig

FILES = ("backbone/config.json", "config.yaml", "normalization.json", "representation.json")


def write_export(model: nn.Module, out_dir: str | os.PathLike, cfg: ExperimentConfig,
                 stats: Stats | None, coeff_shape: tuple[int, ...],
                 field_shape: tuple[int, ...], text_encoder: Any = None) -> Path:
    """Write ``model`` (``save_pretrained``) and its metadata atomically into ``out_dir``.

    ``text_encoder`` (a ``TextEncoderConfig``) is written as ``text_encoder.json`` so that a
    pipeline loading the folder encodes prompts with the encoder the model was trained with.
    """
    with atomic_dir(out_dir) as tmp:
        model.save_pretrained(tmp / "backbone", safe_serialization=True)
        (tmp / "config.yaml").write_text(to_yaml(cfg))
        (tmp / "normalization.json").write_text(
            json.dumps(stats.to_dict() if stats is not None else None, indent=1))
        rep = {**asdict(cfg.representation), "model_kind": cfg.model.kind,
               "coeff_shape": list(coeff_shape), "field_shape": list(field_shape),
               "condition": cfg.data.condition, "params": cfg.data.params}
        (tmp / "representation.json").write_text(json.dumps(rep, indent=1))
        if text_encoder is not None:
            (tmp / "text_encoder.json").write_text(json.dumps(text_encoder.to_dict(), indent=1))
    return Path(out_dir)


def load_export(path: str | os.PathLike, device: torch.device | str = "cpu") -> dict[str, Any]:
    """Read an export folder: ``model`` (eval mode), ``config``, ``stats``, ``representation``."""
    from genphys.train.tasks import BACKBONES

    p = Path(path)
    missing = [f for f in FILES if not (p / f).is_file()]
    if missing:
        raise DataFormatError(f"{p} is not a genphys export folder (missing {', '.join(missing)}).")
    try:
        rep = json.loads((p / "representation.json").read_text())
        stats_d = json.loads((p / "normalization.json").read_text())
    except ValueError:
        raise DataFormatError(f"{p}: representation.json or normalization.json is not "
                              "JSON.") from None
    import yaml

    cfg = from_dict(ExperimentConfig, yaml.safe_load((p / "config.yaml").read_text()))
    model = BACKBONES[rep["model_kind"]].from_pretrained(p, subfolder="backbone").to(device)
    return {"model": model.eval(), "config": cfg, "representation": rep,
            "stats": Stats.from_dict(stats_d) if stats_d is not None else None}
