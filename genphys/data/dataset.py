"""A torch ``Dataset`` over a trajectory file: lazy per-worker reading, seed-hash splits,
per-channel normalization with cached statistics."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from genphys.data.common import dumps
from genphys.data.normalize import Stats, cached_stats, channel_stats, stats_key
from genphys.data.normalize import denormalize as _denormalize
from genphys.data.normalize import normalize as _normalize
from genphys.data.reader import TrajectoryFile, open_trajectories
from genphys.errors import DataFormatError, UserInputError

SPLITS = ("train", "val", "test", "all")
CAPTION_CHOICES = ("epoch", "random", "first")


def seed_unit(seed: int) -> float:
    """A uniform number in [0, 1) from a SHA-256 hash of a trajectory seed."""
    h = hashlib.sha256(f"genphys-split:{int(seed)}".encode()).digest()
    return int.from_bytes(h[:8], "little") / 2.0**64


def seed_split(seed: int, fractions: Sequence[float] = (0.8, 0.1, 0.1)) -> str:
    """The split ("train"/"val"/"test") of a trajectory, decided by its seed alone."""
    u = seed_unit(seed)
    if u < fractions[0]:
        return "train"
    return "val" if u < fractions[0] + fractions[1] else "test"


def _check_fractions(fr: Sequence[float]) -> tuple[float, float, float]:
    ok = len(fr) == 3 and all(float(v) >= 0 for v in fr) and abs(sum(fr) - 1) < 1e-6
    if not ok:
        raise UserInputError(f"split_fractions={tuple(fr)!r} is not allowed; give three "
                             "non-negative numbers (train, val, test) that sum to 1.")
    return tuple(float(v) for v in fr)  # type: ignore[return-value]


class TrajectoryDataset(Dataset):
    """Trajectories of one file as training examples (``x``, ``params``, ``caption``, ``seed``).

    Grid items: ``x`` float32 ``(C, T, *space)``; mesh items: ``x`` float32 ``(T, N, C)`` plus
    ``points``/``cells``. The HDF5 file is opened on first access in each process, so the
    dataset is safe with ``DataLoader(num_workers>0)``.
    """

    def __init__(self, path: str | os.PathLike, split: str = "train",
                 split_fractions: Sequence[float] = (0.8, 0.1, 0.1),
                 fields: Sequence[str] | None = None, normalize: bool = True,
                 stats: Stats | dict | str | os.PathLike | None = None,
                 caption_choice: str = "epoch", generator: torch.Generator | None = None):
        if split not in SPLITS:
            raise UserInputError(f"split={split!r} is not allowed; use one of {', '.join(SPLITS)}.")
        if caption_choice not in CAPTION_CHOICES:
            raise UserInputError(f"caption_choice={caption_choice!r} is not allowed; use one of "
                                 f"{', '.join(CAPTION_CHOICES)}.")
        self.path = Path(path)
        self.split, self.fractions = split, _check_fractions(split_fractions)
        self.caption_choice, self.generator, self.epoch = caption_choice, generator, 0
        self._file: TrajectoryFile | None = None
        self._pid: int | None = None
        with open_trajectories(self.path) as f:  # metadata only: no field data is read here
            self.kind, self.system = f.kind, f.system
            self.all_field_names, self.param_names = f.field_names, f.param_names
            self.seeds = f.seeds()
        self.field_names = list(fields) if fields is not None else list(self.all_field_names)
        bad = [n for n in self.field_names if n not in self.all_field_names]
        if bad or not self.field_names:
            raise UserInputError(f"fields={bad or self.field_names!r} not in this file; "
                                 f"available: {', '.join(self.all_field_names)}.")
        self.channels = [self.all_field_names.index(n) for n in self.field_names]
        self.indices = self._split_indices(split)
        self.stats: Stats | None = self._resolve_stats(stats) if normalize else None

    def _split_indices(self, split: str) -> list[int]:
        return [i for i, s in enumerate(self.seeds)
                if split == "all" or seed_split(int(s), self.fractions) == split]

    # ------------------------------------------------------------- statistics
    def _resolve_stats(self, stats: Any) -> Stats:
        if stats is None:
            train = self._split_indices("train")
            seeds_sha = hashlib.sha256(dumps(sorted(int(self.seeds[i]) for i in train))
                                       .encode()).hexdigest()
            key = stats_key(self.path, {"fractions": self.fractions, "fields": self.field_names,
                                        "train_seeds": seeds_sha})
            return cached_stats(self.path, key, lambda: self._compute_stats(train))
        if isinstance(stats, (str, os.PathLike)):
            try:
                stats = json.loads(Path(stats).read_text())
            except (OSError, ValueError):
                raise DataFormatError(f"{stats} is not a readable JSON statistics file.") from None
        stats = stats if isinstance(stats, Stats) else Stats.from_dict(stats)
        if list(stats.field_names) != self.field_names:
            raise UserInputError(f"stats are for fields {list(stats.field_names)} but the "
                                 f"dataset uses {self.field_names}.")
        return stats

    def _chunk(self, item: dict[str, Any]) -> np.ndarray:
        """The selected channels of one trajectory, flattened to ``(C, M)``."""
        if self.kind == "grid":
            x = item["fields"][self.channels]  # (C, T, *space)
            return x.reshape(len(self.channels), -1)  # (C, T*prod(space))
        x = item["fields"][..., self.channels]  # (T, N, C)
        return np.moveaxis(x, -1, 0).reshape(len(self.channels), -1)  # (C, T*N)

    def _compute_stats(self, indices: list[int]) -> Stats:
        with open_trajectories(self.path) as f:
            return channel_stats((self._chunk(f[i]) for i in indices), self.field_names)

    # ------------------------------------------------------------- items
    def _open(self) -> TrajectoryFile:
        if self._file is None or self._pid != os.getpid():  # reopen in each worker process
            self._file, self._pid = open_trajectories(self.path), os.getpid()
        return self._file

    def __len__(self) -> int:
        return len(self.indices)

    def set_epoch(self, epoch: int) -> None:
        """Rotate the caption each trajectory returns (``caption_choice="epoch"``)."""
        self.epoch = int(epoch)

    def _caption(self, caps: list[str], seed: int) -> str:
        if not caps:
            return ""
        if self.caption_choice == "first":
            return caps[0]
        if self.caption_choice == "random":
            return caps[int(torch.randint(len(caps), (1,), generator=self.generator))]
        return caps[(seed + self.epoch) % len(caps)]

    def __getitem__(self, k: int) -> dict[str, Any]:
        item = self._open()[self.indices[k]]
        cdim = 0 if self.kind == "grid" else -1
        x = torch.from_numpy(np.ascontiguousarray(
            item["fields"][self.channels] if cdim == 0 else item["fields"][..., self.channels]))
        if self.stats is not None:
            x = _normalize(x, self.stats, cdim)
        out = {
            "x": x.float(),
            "params": torch.tensor([item["params"].get(p, np.nan) for p in self.param_names],
                                   dtype=torch.float32),
            "caption": self._caption(item["captions"], item["seed"]),
            "seed": int(item["seed"]),
        }
        if self.kind == "mesh":
            out["points"] = torch.from_numpy(item["points"])
            out["cells"] = torch.from_numpy(item["cells"])
        return out

    def denormalize(self, x: torch.Tensor, channel_dim: int | None = None) -> torch.Tensor:
        """Undo normalization; ``channel_dim`` defaults to 0 (grid) / -1 (mesh); 1 for batches."""
        if self.stats is None:
            return x
        cdim = channel_dim if channel_dim is not None else (0 if self.kind == "grid" else -1)
        return _denormalize(x, self.stats, cdim)

    def close(self) -> None:
        """Close the file handle of this process."""
        if self._file is not None:
            self._file.close()
            self._file = None

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_file"], state["_pid"] = None, None  # h5py handles do not cross processes
        return state
