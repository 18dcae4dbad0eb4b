"""The autoencoder objective as a task of the generic trainer (``genphys.train.loop.Trainer``).

``Trainer(cfg, task=AutoencoderTask(cfg)).fit()`` trains a :class:`MeshAutoencoder` with the
trainer's AdamW, warm-up + cosine, clipping, EMA, checkpoints and DDP. ``cfg.model.kwargs``
are the autoencoder's keywords (``in_channels``/``dim`` come from the data); the train and
val splits are the seed-hash splits of ``cfg.data.path``. Frames are padded to the file's
largest mesh so the trainer's default collation works.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from genphys.autoencoder.data import PointTrajectory, field_stats, read_trajectories
from genphys.autoencoder.evaluate import evaluate
from genphys.autoencoder.model import MeshAutoencoder
from genphys.autoencoder.train import fit_latent_stats
from genphys.config import to_yaml
from genphys.data.dataset import seed_split
from genphys.errors import UserInputError


class FrameDataset(torch.utils.data.Dataset):
    """Every frame of a list of trajectories, padded to ``n_max`` nodes (coords, fields, mask)."""

    def __init__(self, trajs: list[PointTrajectory]):
        self.trajs = trajs
        self.n_max = max(len(t.points) for t in trajs)
        self.index = [(i, k) for i, t in enumerate(trajs) for k in range(len(t.fields))]

    def __len__(self) -> int:
        return len(self.index)

    def set_epoch(self, epoch: int) -> None:
        """Nothing rotates per epoch (the trainer calls this on every dataset)."""

    def __getitem__(self, j: int) -> dict[str, torch.Tensor]:
        i, k = self.index[j]
        tr = self.trajs[i]
        n, d, c = len(tr.points), tr.points.shape[1], tr.fields.shape[2]
        coords, fields = torch.zeros(self.n_max, d), torch.zeros(self.n_max, c)
        coords[:n], fields[:n] = torch.from_numpy(tr.points), torch.from_numpy(tr.fields[k])
        return {"coords": coords, "fields": fields, "mask": torch.arange(self.n_max) < n}


class AutoencoderTask:
    """Reconstruction training: encode from all or a random subset of nodes, decode at all."""

    def __init__(self, cfg: Any, device: torch.device | str = "cpu", subset_prob: float = 0.5,
                 keep_min: float = 0.5):
        self.cfg, self.device = cfg, torch.device(device)
        self.subset_prob, self.keep_min = subset_prob, keep_min
        trajs = read_trajectories(cfg.data.path)
        fr = cfg.data.split_fractions
        self.train_trajs = [t for t in trajs if seed_split(t.seed, fr) == "train"]
        self.val_trajs = [t for t in trajs if seed_split(t.seed, fr) == "val"]
        if not self.train_trajs:
            raise UserInputError(f"the train split of {cfg.data.path} is empty; add "
                                 "trajectories or change data.split_fractions.")
        self.train_ds = FrameDataset(self.train_trajs)

    @property
    def train_dataset(self) -> torch.utils.data.Dataset:
        """What the loop's DataLoader iterates over (padded frames)."""
        return self.train_ds

    def build_model(self) -> MeshAutoencoder:
        """The autoencoder of ``cfg.model.kwargs`` with field statistics of the train split."""
        kw = dict(self.cfg.model.kwargs)
        kw.setdefault("in_channels", self.train_trajs[0].fields.shape[-1])
        kw.setdefault("dim", self.train_trajs[0].points.shape[-1])
        try:
            model = MeshAutoencoder(**kw)
        except TypeError as e:
            raise UserInputError(f"model.kwargs do not fit MeshAutoencoder: {e}.") from None
        model.set_field_stats(*field_stats(self.train_trajs))
        return model

    def loss(self, model: nn.Module, batch: dict[str, Any],
             generator: torch.Generator) -> tuple[torch.Tensor, dict[str, float]]:
        """MSE of normalized fields at every real node; encoder input randomly thinned."""
        coords, fields = batch["coords"].to(self.device), batch["fields"].to(self.device)
        mask = batch["mask"].to(self.device)
        b, n = mask.shape
        thin = torch.rand(b, 1, generator=generator, device=self.device) < self.subset_prob
        frac = self.keep_min + (1 - self.keep_min) * torch.rand(b, 1, generator=generator,
                                                                device=self.device)
        keep = torch.rand(b, n, generator=generator, device=self.device) < frac  # (B, N)
        enc_mask = mask & (keep | ~thin)
        y = model(coords, fields, enc_mask, query=coords, physical=False)  # (B, N, C)
        core = getattr(model, "module", model)  # DDP-wrapped or not
        target = (fields - core.field_mean) / core.field_std
        err = ((y - target) ** 2).sum(-1) * mask  # (B, N)
        loss = err.sum() / (mask.sum() * target.shape[-1])
        return loss, {"loss": float(loss.detach())}

    @torch.no_grad()
    def validate(self, model: nn.Module) -> dict[str, float]:
        """Held-out relative L2 (full and 50%-subset encoding) on the val split."""
        if not self.val_trajs:
            return {}
        m = evaluate(model.eval(), self.val_trajs)
        model.train()
        return {"val/rel_l2": m["rel_l2"], "val/rel_l2_subset50": m["rel_l2_subset50"]}

    def export(self, model: nn.Module, out_dir: Path) -> None:
        """Fit latent statistics, then ``save_pretrained`` the model and the resolved YAML."""
        model = model.to("cpu").eval()
        fit_latent_stats(model, self.train_trajs)
        model.save_pretrained(Path(out_dir) / "autoencoder")
        (Path(out_dir) / "config.yaml").write_text(to_yaml(self.cfg))


def split_sizes(task: AutoencoderTask) -> dict[str, int]:
    """Trajectory counts of the train/val splits (for logs and tests)."""
    return {"train": len(task.train_trajs), "val": len(task.val_trajs),
            "frames": len(task.train_ds), "n_max": int(task.train_ds.n_max)}
