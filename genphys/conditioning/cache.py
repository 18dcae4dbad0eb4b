"""Caption embeddings computed once and kept on disk (safetensors, never pickles) for training.

A cache file holds ``tokens (N, L, D)``, ``mask (N, L)`` and ``pooled (N, D)`` for N unique
captions, padded to the encoder's ``max_length``. Its name is a hash of the encoder's
fingerprint (config, vocabulary and weights, :meth:`TextEncoder.fingerprint`) and of the
sorted caption set, so a different encoder or caption set never reads a stale file; the
metadata repeats both and is checked on load.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file

from genphys.conditioning.text import TextEmbedding, TextEncoder
from genphys.errors import UserInputError

FORMAT = "genphys-caption-cache-1"


def caption_key(fingerprint: str, captions: Iterable[str]) -> str:
    """Hash of an encoder fingerprint and a caption set (order and repeats do not matter)."""
    h = hashlib.sha256(fingerprint.encode())
    h.update(json.dumps(sorted(set(captions))).encode())
    return h.hexdigest()[:20]


class CaptionCache:
    """Lookup of caption embeddings by string; misses are encoded on the fly and remembered."""

    def __init__(self, encoder: TextEncoder, cache_dir: str | os.PathLike,
                 batch_size: int = 64):  # prompts per encoder call when filling the cache
        if encoder.trainable:
            raise UserInputError("a CaptionCache needs a frozen text encoder (trainable=False); "
                                 "a fine-tuned encoder's embeddings change every step.")
        if batch_size < 1:
            raise UserInputError(f"batch_size={batch_size} must be >= 1.")
        self.encoder, self.dir, self.batch_size = encoder, Path(cache_dir), int(batch_size)
        self.length = encoder.config.max_length
        self.index: dict[str, int] = {}
        self._parts: list[TextEmbedding] = []
        self._store: TextEmbedding | None = None
        self.path: Path | None = None

    def __len__(self) -> int:
        return len(self.index)

    def __contains__(self, caption: str) -> bool:
        return caption in self.index

    def _encode(self, captions: list[str]) -> TextEmbedding:
        """Encode in batches of similar token length (padding only to the batch's longest
        caption, then zero-padded to ``max_length``: the encoder zeroes padded positions and
        masks them in attention, so this equals fixed-length encoding up to rounding)."""
        ids = self.encoder.tokenizer(captions, verbose=False)["input_ids"]
        order = sorted(range(len(captions)), key=lambda i: len(ids[i]))
        tokens, mask, pooled = [], [], []
        for i in range(0, len(order), self.batch_size):
            e = self.encoder.encode([captions[j] for j in order[i:i + self.batch_size]])
            pad = self.length - e.tokens.shape[1]
            tokens.append(F.pad(e.tokens.cpu(), (0, 0, 0, pad)))  # (b, max_length, D)
            mask.append(F.pad(e.mask.cpu(), (0, pad)))  # (b, max_length)
            pooled.append(e.pooled.cpu())
        back = torch.argsort(torch.tensor(order))  # sorted position of each caption
        return TextEmbedding(torch.cat(tokens)[back], torch.cat(mask)[back],
                             torch.cat(pooled)[back])

    def _add(self, captions: list[str], emb: TextEmbedding) -> None:
        for c in captions:
            self.index[c] = len(self.index)
        self._parts.append(emb)
        self._store = None

    def _table(self) -> TextEmbedding:
        if self._store is None:  # concatenate lazily: one copy per batch of additions
            self._store = TextEmbedding(*(torch.cat([getattr(p, k) for p in self._parts])
                                          for k in ("tokens", "mask", "pooled")))
            self._parts = [self._store]
        return self._store

    def build(self, captions: Iterable[str]) -> Path:
        """Load the file of this encoder and caption set if present, else encode and write it."""
        unique = sorted(set(captions))
        fp = self.encoder.fingerprint()
        self.dir.mkdir(parents=True, exist_ok=True)
        self.path = self.dir / f"captions-{caption_key(fp, unique)}.safetensors"
        if self.path.is_file() and self._load(self.path, fp, unique):
            return self.path
        todo = [c for c in unique if c not in self.index]
        if todo:
            self._add(todo, self._encode(todo))
        self.save(self.path)
        return self.path

    def _load(self, path: Path, fp: str, unique: list[str]) -> bool:
        try:
            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
            caps = json.loads(meta.get("captions", "null"))
            ok = (meta.get("format") == FORMAT and meta.get("encoder") == fp
                  and caps == unique)
            t = load_file(str(path)) if ok else {}
        except (OSError, SafetensorError, ValueError):
            ok = False
        if not ok or t["tokens"].shape[:2] != (len(unique), self.length):
            warnings.warn(f"caption cache {path} does not match this encoder and caption set; "
                          "re-encoding.", stacklevel=3)
            return False
        self.index, self._parts, self._store = {}, [], None
        self._add(unique, TextEmbedding(t["tokens"], t["mask"].bool(), t["pooled"]))
        return True

    def save(self, path: str | os.PathLike | None = None) -> Path:
        """Write every cached embedding (atomically: temporary file, then ``os.replace``)."""
        path = Path(path) if path is not None else self.path
        if path is None:
            raise UserInputError("CaptionCache.save() needs a path before build() was called.")
        tab = self._table()
        caps = sorted(self.index, key=self.index.__getitem__)
        meta = {"format": FORMAT, "encoder": self.encoder.fingerprint(),
                "captions": json.dumps(caps)}
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
        save_file({"tokens": tab.tokens.contiguous(), "mask": tab.mask.contiguous(),
                   "pooled": tab.pooled.contiguous()}, str(tmp), metadata=meta)
        os.replace(tmp, path)
        return path

    def get(self, captions: Sequence[str]) -> TextEmbedding:
        """Embeddings ``(B, max_length, D)`` of ``captions``; misses are encoded and kept."""
        if isinstance(captions, str):
            raise UserInputError(f"captions must be a list of strings, got the string "
                                 f"{captions!r}.")
        miss = sorted({c for c in captions if c not in self.index})
        if miss:
            self._add(miss, self._encode(miss))
        tab = self._table()
        rows = torch.tensor([self.index[c] for c in captions], dtype=torch.long)  # (B,)
        p = next(self.encoder.parameters())
        return TextEmbedding(tab.tokens[rows].to(p), tab.mask[rows].to(p.device),
                             tab.pooled[rows].to(p))
