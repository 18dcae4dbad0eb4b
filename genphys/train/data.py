"""Trainer data plumbing: datasets from the config, a resumable epoch sampler, the model's
representation (packed wavelet channels; level 0 = raw grid) and the batch -> input map."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Sampler

from genphys.conditioning import param_transform
from genphys.data import TrajectoryDataset
from genphys.diffusion import WaveletRepresentation
from genphys.errors import DataFormatError, UserInputError
from genphys.train.config import DataConfig, RepresentationConfig


class EpochSampler(Sampler[int]):
    """A permutation of ``range(n)`` that depends only on (seed, epoch); resumable mid-epoch.

    accelerate shards the batches of this sampler across processes (batch i goes to rank
    i mod W), so the global data order is the same for any number of processes.
    """

    def __init__(self, n: int, seed: int):
        self.n, self.seed, self.epoch, self.skip = int(n), int(seed), 0, 0

    def set_epoch(self, epoch: int) -> None:
        """Select the permutation of ``epoch`` (accelerate calls this at every ``iter``)."""
        self.epoch = int(epoch)

    def __iter__(self) -> Iterator[int]:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        perm = torch.randperm(self.n, generator=g).tolist()
        skip, self.skip = self.skip, 0  # a resume offset applies to one pass only
        return iter(perm[skip:])

    def __len__(self) -> int:
        return self.n - self.skip


def build_representation(cfg: RepresentationConfig, ndim: int) -> WaveletRepresentation:
    """The wavelet model space of ``cfg`` for trajectories with ``ndim`` tensor dims."""
    axes = tuple(cfg.axes) if cfg.axes is not None else tuple(range(2, ndim))
    if any(not (2 <= a < ndim or -(ndim - 2) <= a < 0) for a in axes):
        raise UserInputError(f"representation.axes={axes} is not allowed; the trajectory axes "
                             f"of (B, C, T, *space) are {list(range(2, ndim))} "
                             f"(or {list(range(2 - ndim, 0))}).")
    axes = tuple(a - ndim if a >= 0 else a for a in axes)  # negative trailing axes
    return WaveletRepresentation(cfg.wavelet, cfg.level, axes, cfg.mode)


def open_datasets(cfg: DataConfig) -> tuple[TrajectoryDataset, TrajectoryDataset]:
    """(train, val) datasets of ``cfg.path``; the val split shares the train statistics."""
    path = Path(cfg.path)
    if not path.is_file():
        raise DataFormatError(f"data.path={cfg.path!r} does not exist; generate a file with "
                              "`genphys data SYSTEM --num N --out FILE` or fix the path.")
    fields = list(cfg.fields) if cfg.fields is not None else None
    train = TrajectoryDataset(path, "train", cfg.split_fractions, fields=fields,
                              caption_choice=cfg.caption_choice)
    if train.kind != "grid":
        raise DataFormatError(f"{path} holds mesh trajectories; the trainer needs grid data "
                              "(mesh data trains through the autoencoder).")
    val = TrajectoryDataset(path, "val", cfg.split_fractions, fields=fields, stats=train.stats,
                            caption_choice="first")
    if len(train) < cfg.batch_size:
        raise UserInputError(f"the train split of {path} has {len(train)} trajectories, fewer "
                             f"than data.batch_size={cfg.batch_size}; add data or lower it.")
    return train, val


def train_loader(ds: torch.utils.data.Dataset, cfg: DataConfig, seed: int) -> DataLoader:
    """Loader with an :class:`EpochSampler`; ``drop_last`` keeps every batch full."""
    return DataLoader(ds, batch_size=cfg.batch_size, sampler=EpochSampler(len(ds), seed),
                      num_workers=cfg.num_workers, drop_last=True,
                      persistent_workers=cfg.num_workers > 0)


def crop(x: torch.Tensor, cfg: DataConfig,
         generator: torch.Generator | None = None) -> torch.Tensor:
    """Keep the configured frames and strides of ``x (B, C, T, *space)``.

    With ``frame_offset: random`` and a ``generator`` (training) each sample's window of
    ``frames`` frames starts at its own random frame; otherwise at frame 0.
    """
    s = (slice(None, None, cfg.space_stride),) * (x.ndim - 3)
    x = x[(slice(None), slice(None), slice(None), *s)]
    if cfg.frame_offset != "random" or generator is None:
        return x[:, :, slice(0, cfg.frames, cfg.time_stride)]
    span = cfg.frames  # stored frames per window, strided inside like the first window
    if span > x.shape[2]:
        raise UserInputError(f"data.frames={cfg.frames} is longer than the "
                             f"{x.shape[2]} stored frames of the trajectories.")
    start = torch.randint(x.shape[2] - span + 1, (x.shape[0],), generator=generator,
                          device=generator.device).to(x.device)  # (B,)
    t = start[:, None] + torch.arange(0, span, cfg.time_stride, device=x.device)  # (B, kept)
    idx = t.reshape(*t.shape[:1], 1, t.shape[1], *([1] * (x.ndim - 3)))
    return torch.gather(x, 2, idx.expand(x.shape[0], x.shape[1], -1, *x.shape[3:]))


def model_inputs(batch: dict[str, Any], cfg: DataConfig, rep: WaveletRepresentation,
                 device: torch.device, text: Callable[[list[str]], dict[str, torch.Tensor]]
                 | None = None, generator: torch.Generator | None = None,
                 ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """(x0 in model space, conditions as backbone keywords) of a dataset batch.

    ``text`` maps the batch's captions to the text slots (a ``CaptionConditioner``);
    ``generator`` draws the random window starts of ``frame_offset: random`` (training).
    """
    x = crop(batch["x"].to(device), cfg, generator)  # (B, C, T, *space), normalized
    cond: dict[str, torch.Tensor] = {}
    if cfg.condition == "first_frame":
        first = x[:, :, :1].expand_as(x)  # (B, C, T, *space): frame 0 held over time
        cond["cond"] = rep.encode(first.contiguous())
    if cfg.params:
        p = batch["params"].to(device).float()  # (B, P); NaN rows = unknown (null embedding)
        cond["params"] = param_transform(p, cfg.param_transform)
    if text is not None:
        cond.update(text(list(batch["caption"])))
    return rep.encode(x), cond


def fixed_items(ds: TrajectoryDataset, n: int) -> dict[str, Any]:
    """The first ``n`` items of ``ds`` collated into one batch (validation references)."""
    if len(ds) == 0:
        raise DataFormatError(f"the validation split of {ds.path} is empty; add trajectories "
                              "or change data.split_fractions.")
    items = [ds[i] for i in range(min(n, len(ds)))]
    return torch.utils.data.default_collate(items)
