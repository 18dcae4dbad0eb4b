"""Per-channel normalization statistics: streamed in float64, cached in a sidecar JSON.

Means and (population) standard deviations are accumulated one trajectory at a time and
merged with the pairwise update of Chan, Golub & LeVeque ("Updating formulae and a pairwise
algorithm for computing sample variances", 1979), so nothing but one trajectory is in memory.
The cache ``<file>.stats.json`` holds one entry per (file state, split, fields) key and is
replaced atomically (write to a temporary file, then ``os.replace``).
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
import warnings
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from genphys.data.common import dumps
from genphys.errors import DataFormatError


@dataclass(frozen=True)
class Stats:
    """Per-channel mean and standard deviation (population, ddof=0) and the value count."""

    field_names: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    count: int  # values per channel that went into the statistics

    def scale(self) -> np.ndarray:
        """Std with zeros replaced by 1 (constant channels are only shifted)."""
        s = np.asarray(self.std, np.float64)
        return np.where(s > 0, s, 1.0)

    def to_dict(self) -> dict:
        """JSON-able form."""
        return asdict(self)

    @staticmethod
    def from_dict(d: dict) -> Stats:
        """Inverse of :meth:`to_dict`."""
        try:
            return Stats(tuple(d["field_names"]), tuple(map(float, d["mean"])),
                         tuple(map(float, d["std"])), int(d["count"]))
        except (KeyError, TypeError, ValueError):
            raise DataFormatError("normalization statistics need field_names, mean, std and "
                                  "count entries.") from None


def channel_stats(chunks: Iterable[np.ndarray], field_names: list[str]) -> Stats:
    """Mean/std per channel over chunks ``(C, M)``, merged pairwise in float64 (Chan et al.)."""
    n, mean, m2 = 0, np.zeros(len(field_names)), np.zeros(len(field_names))
    for chunk in chunks:
        x = np.asarray(chunk, np.float64)  # (C, M)
        nb = x.shape[1]
        if nb == 0:
            continue
        mb = x.mean(axis=1)
        m2b = ((x - mb[:, None]) ** 2).sum(axis=1)
        delta = mb - mean
        tot = n + nb
        mean = mean + delta * (nb / tot)
        m2 = m2 + m2b + delta**2 * (n * nb / tot)
        n = tot
    if n == 0:
        raise DataFormatError("cannot compute normalization statistics: the train split is "
                              "empty; add trajectories or change split_fractions.")
    return Stats(tuple(field_names), tuple(mean.tolist()), tuple(np.sqrt(m2 / n).tolist()), n)


def stats_key(path: Path, parts: dict) -> str:
    """Cache key: the file's size and mtime plus the split/field choices and train seeds."""
    blob = dumps({**_file_state(path), **parts})
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def sidecar_path(path: Path) -> Path:
    """Where the statistics of ``path`` are cached: ``<path>.stats.json``."""
    return path.with_name(path.name + ".stats.json")


def _read_sidecar(p: Path) -> dict:
    try:
        return json.loads(p.read_text())
    except (OSError, ValueError):
        return {}


def _file_state(path: Path) -> dict:
    st = path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def cached_stats(path: Path, key: str, compute: Callable[[], Stats]) -> Stats:
    """Statistics from the sidecar cache, or computed once and stored atomically."""
    side = sidecar_path(path)
    entries = _read_sidecar(side).get("entries", {})
    if key in entries:
        return Stats.from_dict(entries[key])
    stats = compute()
    state = _file_state(path)
    entries = {k: v for k, v in _read_sidecar(side).get("entries", {}).items()
               if v.get("file") == state}  # drop entries of an older version of the file
    entries[key] = {**stats.to_dict(), "file": state}
    tmp = side.with_name(f".{side.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        tmp.write_text(dumps({"version": 1, "entries": entries}))
        os.replace(tmp, side)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        warnings.warn(f"could not store normalization statistics in {side} ({e}); they will "
                      "be recomputed next time.", stacklevel=2)
    return stats


def _shape(stats: Stats, x: torch.Tensor, channel_dim: int) -> list[int]:
    shape = [1] * x.dim()
    shape[channel_dim] = len(stats.mean)
    return shape


def normalize(x: torch.Tensor, stats: Stats, channel_dim: int = 0) -> torch.Tensor:
    """``(x - mean) / std`` per channel (channel axis ``channel_dim``)."""
    shape = _shape(stats, x, channel_dim)
    mean = torch.tensor(stats.mean, dtype=x.dtype, device=x.device).reshape(shape)
    std = torch.tensor(stats.scale(), dtype=x.dtype, device=x.device).reshape(shape)
    return (x - mean) / std


def denormalize(x: torch.Tensor, stats: Stats, channel_dim: int = 0) -> torch.Tensor:
    """Inverse of :func:`normalize`: ``x * std + mean`` per channel."""
    shape = _shape(stats, x, channel_dim)
    mean = torch.tensor(stats.mean, dtype=x.dtype, device=x.device).reshape(shape)
    std = torch.tensor(stats.scale(), dtype=x.dtype, device=x.device).reshape(shape)
    return x * std + mean
