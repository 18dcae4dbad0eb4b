"""Training tasks: what the generic loop asks of an objective (``loss``, ``validate``, ``export``).

:class:`DiffusionTask` trains a backbone on trajectories with a ``genphys.diffusion``
objective (diffusion or rectified flow) in the configured representation. The reflow and
distillation tasks in :mod:`genphys.train.reflow` reuse it with a different dataset and loss;
an autoencoder task plugs in the same way.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from genphys.backbone import SpaceTimeDiT, SpaceTimeFNO, SpaceTimeUNet
from genphys.diffusion import build_objective
from genphys.errors import UserInputError
from genphys.train.config import ExperimentConfig, ModelConfig
from genphys.train.data import build_representation, crop, fixed_items, model_inputs, open_datasets
from genphys.weights import copy_matching_state

BACKBONES = {"unet": SpaceTimeUNet, "dit": SpaceTimeDiT, "fno": SpaceTimeFNO}


def build_backbone(cfg: ModelConfig, fixed: dict[str, Any]) -> nn.Module:
    """The backbone of ``cfg`` with the data-determined sizes ``fixed`` (in_channels, ...)."""
    for key, value in fixed.items():
        if key in cfg.kwargs and cfg.kwargs[key] != value:
            raise UserInputError(f"model.kwargs.{key}={cfg.kwargs[key]!r} does not match the data "
                                 f"({value!r}); remove it, the trainer sets it from the data.")
    try:
        return BACKBONES[cfg.kind](**{**cfg.kwargs, **fixed})
    except TypeError as e:
        raise UserInputError(f"model.kwargs do not fit model.kind={cfg.kind!r}: {e}.") from None


def relative_l2(pred: torch.Tensor, true: torch.Tensor) -> torch.Tensor:
    """Per-sample ||pred - true||_2 / ||true||_2 over all non-batch dims, shape ``(B,)``."""
    diff = (pred - true).flatten(1).norm(dim=1)
    return diff / true.flatten(1).norm(dim=1).clamp_min(1e-12)


def load_backbone_weights(model: nn.Module, folder: str | os.PathLike) -> None:
    """Copy the backbone weights of an export or pipeline folder into ``model`` (fine-tuning).

    The folder's ``backbone/*.safetensors`` must hold exactly the parameters of ``model``
    with the same shapes (any float dtype; fp16 pipeline weights are upcast).
    """
    from safetensors.torch import load_file

    files = sorted((Path(folder) / "backbone").glob("*.safetensors"))
    if not files:
        raise UserInputError(f"train.init_from={str(folder)!r} has no backbone/*.safetensors; "
                             f"give a genphys export or pipeline folder.")
    copy_matching_state(model, load_file(str(files[0])), folder, "model",
                        "use the same model section and data settings as the run that made it")


class DiffusionTask:
    """Denoising / flow-matching training of a backbone on trajectories of one HDF5 file."""

    def __init__(self, cfg: ExperimentConfig, device: torch.device | str = "cpu"):
        self.cfg, self.device = cfg, torch.device(device)
        self.train_ds, self.val_ds = open_datasets(cfg.data)
        self.stats = self.train_ds.stats
        if len(self.val_ds) == 0:
            warnings.warn(f"the validation split of {cfg.data.path} is empty, so validation "
                          "is skipped; add trajectories or change data.split_fractions.",
                          stacklevel=2)
        self.objective = build_objective(cfg.objective)
        self.text = None
        if cfg.data.text != "none":
            from genphys.train.text import CaptionConditioner

            self.text = CaptionConditioner(cfg.data, self.device)
        x = crop(self.train_ds[0]["x"][None], cfg.data)  # (1, C, T, *space)
        self.rep = build_representation(cfg.representation, x.ndim)
        self.field_shape = tuple(x.shape[1:])  # (C, T, *space)
        self.coeff_shape = tuple(self._encode(x).shape[1:])  # (C', T', *space')

    def _encode(self, x: torch.Tensor) -> torch.Tensor:
        try:
            return self.rep.encode(x)
        except (ValueError, RuntimeError) as e:
            raise UserInputError(f"the trajectories of shape {tuple(x.shape[1:])} do not fit "
                                 f"representation {self.cfg.representation}: {e}") from None

    # ------------------------------------------------------------- model
    def fixed_model_kwargs(self) -> dict[str, Any]:
        """Backbone sizes determined by the data and the conditioning choices."""
        c, n_axes = self.coeff_shape[0], len(self.coeff_shape) - 1
        emb = "t" if self.cfg.objective.noise_input == "t" else "log_sigma"
        fixed: dict[str, Any] = {"in_channels": c, "noise_embedding": emb}
        if self.cfg.model.kind in ("unet", "fno"):
            fixed["spatial_dims"] = n_axes - 1
        if self.cfg.model.kind == "fno":
            fixed["num_frames"] = self.coeff_shape[1]
        if self.cfg.data.condition == "first_frame":
            fixed["cond_channels"] = c
        if self.cfg.data.params:
            fixed["param_dim"] = len(self.train_ds.param_names)
        if self.text is not None:
            fixed.update(self.text.model_kwargs())
        return fixed

    def build_model(self) -> nn.Module:
        """A freshly initialised backbone (or ``train.init_from``'s weights) checked against one
        training batch."""
        model = build_backbone(self.cfg.model, self.fixed_model_kwargs())
        if self.cfg.train.init_from:
            load_backbone_weights(model, self.cfg.train.init_from)
        self.check_model(model)
        return model

    def check_model(self, model: nn.Module) -> None:
        """One no-grad forward on a real batch; a size mismatch becomes one clear sentence."""
        batch = torch.utils.data.default_collate([self.train_ds[0]])
        x0, cond = model_inputs(batch, self.cfg.data, self.rep, torch.device("cpu"),
                                self._text_on("cpu"))
        try:
            with torch.no_grad():
                model.to("cpu")(x0, torch.ones(1), **cond)
        except (UserInputError, RuntimeError) as e:
            raise UserInputError(f"the data (model-space shape {tuple(x0.shape[1:])}) does not "
                                 f"fit the model: {e}") from None

    def _text_on(self, device: str) -> Any:
        """The caption conditioner with its outputs on ``device`` (None without text)."""
        if self.text is None:
            return None
        return lambda caps: {k: v.to(device) for k, v in self.text(caps).items()}

    # ------------------------------------------------------------- loop hooks
    @property
    def train_dataset(self) -> torch.utils.data.Dataset:
        """What the loop's DataLoader iterates over."""
        return self.train_ds

    def loss(self, model: nn.Module, batch: dict[str, Any],
             generator: torch.Generator) -> tuple[torch.Tensor, dict[str, float]]:
        """The objective's loss on one batch; all noise comes from ``generator``."""
        x0, cond = model_inputs(batch, self.cfg.data, self.rep, self.device, self.text,
                                generator)
        return self.objective.loss(model, x0, cond=cond or None, generator=generator,
                                   sample_weight=self.relative_weight(x0))

    def relative_weight(self, x0: torch.Tensor) -> torch.Tensor | None:
        """``1 / (mean square + floor)`` per sample (``objective.relative_floor``), or None.

        The mean square is that of the physical trajectory in units of the per-channel std
        (normalized value + mean/std), so the weighted loss follows the relative-L2 metric.
        """
        floor = self.cfg.objective.relative_floor
        if floor is None:
            return None
        x = self.rep.decode(x0)  # (B, C, T, *space), normalized units
        if self.stats is not None:
            off = torch.as_tensor(np.asarray(self.stats.mean) / self.stats.scale(), dtype=x.dtype,
                                  device=x.device)
            x = x + off.reshape(1, -1, *([1] * (x.ndim - 2)))
        return 1.0 / (x.square().flatten(1).mean(1) + floor)

    @torch.no_grad()
    def val_loss(self, model: nn.Module) -> float:
        """Mean objective loss over the first ``loss_batches`` val batches, fixed noise."""
        vc, bs = self.cfg.validation, self.cfg.data.batch_size
        n = min(len(self.val_ds), vc.loss_batches * bs)
        losses = []
        for k, start in enumerate(range(0, n, bs)):
            items = [self.val_ds[i] for i in range(start, min(start + bs, n))]
            x0, cond = model_inputs(torch.utils.data.default_collate(items), self.cfg.data,
                                    self.rep, self.device, self.text)
            g = torch.Generator(self.device).manual_seed(10_007 + k)
            loss, _ = self.objective.loss(model, x0, cond=cond or None, generator=g,
                                          sample_weight=self.relative_weight(x0))
            losses.append(float(loss) * len(items))
        return sum(losses) / max(n, 1)

    def to_fields(self, c: torch.Tensor) -> torch.Tensor:
        """Model-space tensor -> denormalized physical fields ``(B, C, T, *space)``."""
        return self.train_ds.denormalize(self.rep.decode(c), channel_dim=1)

    def sample_sigmas(self, steps: int) -> torch.Tensor | None:
        """The validation sampler's grid (None: the objective's default grid)."""
        return None

    @torch.no_grad()
    def sample(self, model: nn.Module, cond: dict[str, torch.Tensor] | None, n: int,
               seed: int, sampler: str, steps: int) -> torch.Tensor:
        """``n`` samples in model space; sample i is seeded by ``seed + i`` alone."""
        return self.objective.sample(model, (n, *self.coeff_shape), cond=cond or None,
                                     sampler=sampler, steps=steps,
                                     sigmas=self.sample_sigmas(steps),
                                     generator=[seed + i for i in range(n)])

    @torch.no_grad()
    def validate(self, model: nn.Module) -> dict[str, float]:
        """Val loss and the relative L2 of sampled trajectories (EMA weights, physical units).

        With first-frame conditioning each sample is compared with the val trajectory whose
        first frame it was given; unconditional samples with their nearest training trajectory.
        """
        vc = self.cfg.validation
        if len(self.val_ds) == 0:
            return {}  # warned about at start-up
        out = {"val/loss": self.val_loss(model)}
        if vc.num_trajectories < 1:
            return out
        batch = fixed_items(self.val_ds, vc.num_trajectories)
        x0, cond = model_inputs(batch, self.cfg.data, self.rep, self.device, self.text)
        pred = self.to_fields(self.sample(model, cond, x0.shape[0], 1234, vc.sampler, vc.steps))
        if self.cfg.data.condition == "first_frame":
            out["val/rel_l2"] = float(relative_l2(pred, self.to_fields(x0)).mean())
        else:
            out["val/nn_rel_l2"] = float(self.nearest_train(pred).mean())
        return out

    def nearest_train(self, pred: torch.Tensor, limit: int = 64) -> torch.Tensor:
        """Relative L2 of each sample to its nearest trajectory among the first ``limit``."""
        batch = fixed_items(self.train_ds, limit)
        ref = self.train_ds.denormalize(crop(batch["x"], self.cfg.data), channel_dim=1)
        ref = ref.to(pred)  # (N, C, T, *space)
        dist = [relative_l2(p.expand_as(ref), ref).min() for p in pred]
        return torch.stack(dist)

    def export(self, model: nn.Module, out_dir: Path) -> None:
        """Write the EMA weights and everything a pipeline needs (see ``export.py``)."""
        from genphys.train.export import write_export

        write_export(model, out_dir, self.cfg, self.stats, self.coeff_shape, self.field_shape,
                     text_encoder=None if self.text is None else self.text.encoder_config)
