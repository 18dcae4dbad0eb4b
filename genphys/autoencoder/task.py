"""The autoencoder objective as a task of the generic trainer (``genphys.train.loop.Trainer``).

``genphys train configs/ae_advdiff_mesh2d.yaml`` (``train.mode: autoencoder``) trains a
:class:`MeshAutoencoder` with the trainer's AdamW, warm-up + cosine, clipping, EMA,
checkpoints and DDP. ``cfg.model.kwargs`` are the autoencoder's keywords (``in_channels``/
``dim`` come from the data) plus an optional ``loss`` mapping (:class:`AELossConfig`); the
train and val splits are the seed-hash splits of ``cfg.data.path``. Frames are padded to the
file's largest mesh so the trainer's default collation works.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from genphys.autoencoder.data import (
    PointTrajectory,
    field_stats,
    fit_latent_stats,
    read_trajectories,
)
from genphys.autoencoder.evaluate import evaluate
from genphys.autoencoder.model import MeshAutoencoder
from genphys.config import from_dict, to_yaml
from genphys.data.dataset import seed_split
from genphys.errors import UserInputError
from genphys.weights import copy_matching_state


class FrameDataset(torch.utils.data.Dataset):
    """Every frame of a list of trajectories, padded to ``n_max`` nodes (coords, fields, mask)."""

    def __init__(self, trajs: list[PointTrajectory]):
        self.trajs = trajs
        self.n_max = max(len(t.points) for t in trajs)
        self.index = [(i, k) for i, t in enumerate(trajs) for k in range(len(t.fields))]
        # per-channel mean square of each whole trajectory (C,): the trajectory-relative loss
        self.traj_ms = [torch.from_numpy((t.fields.astype("float64") ** 2).mean((0, 1)))
                        .float() for t in trajs]

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
        return {"coords": coords, "fields": fields, "mask": torch.arange(self.n_max) < n,
                "traj_ms": self.traj_ms[i]}


@dataclass(frozen=True)
class AELossConfig:
    """Training-objective options of the autoencoder (``model.kwargs.loss`` in the YAML)."""

    subset_prob: float = 0.5  # probability of encoding a frame from a random node subset
    keep_min: float = 0.5  # smallest kept node fraction of such a subset
    rel_floor: float | None = None  # None: MSE; else relative loss with this floor
    relative_to: str = "frame"  # relative loss: each frame's own mean square or its trajectory's

    def __post_init__(self) -> None:
        if self.relative_to not in ("frame", "trajectory"):
            raise UserInputError(f"model.kwargs.loss.relative_to={self.relative_to!r} is not "
                                 "allowed; use 'frame' or 'trajectory'.")
        if not (0 < self.keep_min <= 1 and 0 <= self.subset_prob <= 1):
            raise UserInputError(f"model.kwargs.loss.keep_min={self.keep_min} must be in (0, 1] "
                                 f"and subset_prob={self.subset_prob} in [0, 1].")
        if self.rel_floor is not None and not self.rel_floor > 0:
            raise UserInputError(f"model.kwargs.loss.rel_floor={self.rel_floor} must be "
                                 "positive or null.")


class AutoencoderTask:
    """Reconstruction training: encode from all or a random subset of nodes, decode at all.

    ``cfg.model.kwargs`` are :class:`MeshAutoencoder` keywords plus an optional ``loss``
    mapping (:class:`AELossConfig`); validation uses the first ``validation.num_trajectories``
    trajectories of the val split.
    """

    def __init__(self, cfg: Any, device: torch.device | str = "cpu"):
        self.cfg, self.device = cfg, torch.device(device)
        self.opts = from_dict(AELossConfig, cfg.model.kwargs.get("loss", {}), "model.kwargs.loss")
        trajs = read_trajectories(cfg.data.path)
        fr = cfg.data.split_fractions
        self.train_trajs = [t for t in trajs if seed_split(t.seed, fr) == "train"]
        self.val_trajs = [t for t in trajs if seed_split(t.seed, fr) == "val"]
        self.val_trajs = self.val_trajs[:cfg.validation.num_trajectories]
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
        kw = {k: v for k, v in self.cfg.model.kwargs.items() if k != "loss"}
        kw.setdefault("in_channels", self.train_trajs[0].fields.shape[-1])
        kw.setdefault("dim", self.train_trajs[0].points.shape[-1])
        try:
            model = MeshAutoencoder(**kw)
        except TypeError as e:
            raise UserInputError(f"model.kwargs do not fit MeshAutoencoder: {e}.") from None
        model.set_field_stats(*field_stats(self.train_trajs))
        if self.cfg.train.init_from:  # fine-tuning: weights and the statistics they expect
            load_autoencoder_weights(model, self.cfg.train.init_from)
        return model

    def loss(self, model: nn.Module, batch: dict[str, Any],
             generator: torch.Generator) -> tuple[torch.Tensor, dict[str, float]]:
        """Reconstruction loss at every real node; encoder input randomly thinned."""
        coords, fields = batch["coords"].to(self.device), batch["fields"].to(self.device)
        mask = batch["mask"].to(self.device)
        b, n = mask.shape
        o = self.opts
        thin = torch.rand(b, 1, generator=generator, device=self.device) < o.subset_prob
        frac = o.keep_min + (1 - o.keep_min) * torch.rand(b, 1, generator=generator,
                                                          device=self.device)
        keep = torch.rand(b, n, generator=generator, device=self.device) < frac  # (B, N)
        z = getattr(model, "module", model)  # DDP-wrapped or not: the statistics live here
        y = model(coords, fields, mask & (keep | ~thin), query=coords, physical=False)
        traj_ms = batch["traj_ms"].to(self.device) if o.relative_to == "trajectory" else None
        loss = reconstruction_loss(y, fields, mask, z.field_mean, z.field_std, o.rel_floor,
                                   traj_ms)
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


def load_autoencoder_weights(model: MeshAutoencoder, folder: str | Path) -> None:
    """Copy a saved autoencoder (``save_pretrained`` folder, or an export containing one
    under ``autoencoder/``) into ``model``: weights, field and latent statistics.

    The field statistics are taken from the saved model, not the new data: the weights were
    trained with that normalization. ``model`` must have the same architecture.
    """
    from safetensors.torch import load_file

    root = Path(folder)
    files = [f for d in (root, root / "autoencoder", root / "export" / "autoencoder")
             for f in sorted(d.glob("*.safetensors"))]
    if not files:
        raise UserInputError(f"train.init_from={str(folder)!r} holds no autoencoder "
                             "*.safetensors; give a save_pretrained folder or an export.")
    copy_matching_state(model, load_file(str(files[0])), folder, "autoencoder",
                        "use the model.kwargs of the run that made it")


def reconstruction_loss(y: torch.Tensor, fields: torch.Tensor, mask: torch.Tensor,
                        mean: torch.Tensor, std: torch.Tensor,
                        rel_floor: float | None = None,
                        traj_ms: torch.Tensor | None = None) -> torch.Tensor:
    """Squared error of normalized predictions ``y (B, N, C)`` against physical ``fields``.

    ``rel_floor=None``: the MSE over real nodes (``mask (B, N)``). Otherwise each frame's MSE
    is divided by a mean square (in units of ``std``) plus ``rel_floor``: the frame's own, or,
    given ``traj_ms (B, C)`` (the per-channel mean square of each frame's whole trajectory),
    its trajectory's. The trajectory form is the square of the evaluation metric (relative
    L2 over a whole trajectory) averaged over its frames; the per-frame form weighs weak and
    strong frames alike. The floor bounds the weight of near-empty frames or trajectories.
    """
    target = (fields - mean) / std  # (B, N, C) normalized
    count = mask.sum(1).clamp_min(1) * target.shape[-1]  # (B,)
    err = (((y - target) ** 2).sum(-1) * mask).sum(1) / count  # (B,) per-frame MSE
    if rel_floor is None:
        return (err * count).sum() / count.sum()
    if traj_ms is not None:
        energy = (traj_ms / std**2).mean(-1)  # (B,) trajectory mean square in std units
    else:
        energy = (((fields / std) ** 2).sum(-1) * mask).sum(1) / count  # (B,) mean square
    return (err / (energy + rel_floor)).mean()


def split_sizes(task: AutoencoderTask) -> dict[str, int]:
    """Trajectory counts of the train/val splits (for logs and tests)."""
    return {"train": len(task.train_trajs), "val": len(task.val_trajs),
            "frames": len(task.train_ds), "n_max": int(task.train_ds.n_max)}
