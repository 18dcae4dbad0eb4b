"""Captions as training conditions: a frozen text encoder behind an on-disk embedding cache.

With ``data.text`` set, every trajectory's caption (one of its >= 3, rotated per epoch) is
looked up in a :class:`~genphys.conditioning.CaptionCache` filled once before training (on
the main process first, so W processes share one file) and fed to the backbone's text slots:
``tokens``/``token_mask`` (cross-attention) and/or ``pooled`` (added to the global vector).
The encoder itself never runs in the training step; its config is exported with the model so
a pipeline encodes prompts with the same network.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from accelerate import PartialState

from genphys.conditioning import CaptionCache, TextEncoder, TextEncoderConfig
from genphys.data import open_trajectories
from genphys.errors import UserInputError
from genphys.train.config import DataConfig


def file_captions(path: str | Path) -> list[str]:
    """Every caption stored in a trajectory file (all splits), unique and sorted."""
    caps: set[str] = set()
    with open_trajectories(path) as f:
        for item in f:
            caps.update(item["captions"])
    return sorted(caps)


class CaptionConditioner:
    """``captions -> {"tokens", "token_mask", "pooled"}`` (the slots of ``data.text``)."""

    def __init__(self, cfg: DataConfig, device: torch.device | str = "cpu"):
        try:
            self.encoder_config = TextEncoderConfig(**cfg.text_encoder)
        except TypeError as e:
            raise UserInputError(f"data.text_encoder={cfg.text_encoder!r} is invalid: {e}; "
                                 "allowed keys: model, max_length, pooling, normalize.") from None
        if self.encoder_config.trainable:
            raise UserInputError("data.text_encoder.trainable=true is not supported by the "
                                 "trainer's caption cache; train with a frozen encoder.")
        self.mode, self.device = cfg.text, torch.device(device)
        self.encoder = TextEncoder(self.encoder_config)
        self.cache = CaptionCache(self.encoder, cfg.caption_cache or f"{cfg.path}.captions")
        captions = file_captions(cfg.path)
        if not captions:
            raise UserInputError(f"data.text={cfg.text!r} but {cfg.path} stores no captions.")
        with PartialState().main_process_first():  # one process encodes, the others load
            self.cache.build(captions)

    @property
    def dim(self) -> int:
        """Width of the encoder's token and pooled vectors."""
        return self.encoder.dim

    def model_kwargs(self) -> dict[str, int]:
        """Backbone slot sizes: ``token_dim`` and/or ``pooled_dim``."""
        out = {}
        if self.mode in ("tokens", "both"):
            out["token_dim"] = self.dim
        if self.mode in ("pooled", "both"):
            out["pooled_dim"] = self.dim
        return out

    def __call__(self, captions: list[str] | tuple[str, ...]) -> dict[str, torch.Tensor]:
        """Backbone keywords for a batch of captions (cached embeddings, on ``device``)."""
        emb = self.cache.get(list(captions))
        out: dict[str, Any] = {}
        if self.mode in ("tokens", "both"):
            out["tokens"] = emb.tokens.to(self.device)
            out["token_mask"] = emb.mask.to(self.device)
        if self.mode in ("pooled", "both"):
            out["pooled"] = emb.pooled.to(self.device)
        return out
