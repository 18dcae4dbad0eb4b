"""Reflow and k-step distillation of a rectified-flow model (Liu, Gong & Liu, ICLR 2023,
"Flow Straight and Fast", arXiv:2209.03003).

Reflow (their Algorithm 1, k-rectified flow): a trained flow model (the teacher) maps noise
z to samples x1 = ODE(z) with an accurate sampler; the student is trained with the flow
loss on the fixed coupling (z, x1) instead of independent pairs, which straightens the
paths so few Euler steps suffice. Distillation (their section 2.3, "k-step distillation"):
the same paired loss evaluated only at the k flow times of the student's Euler grid
t_i = t_max (1 - i/k); if the student predicts x1 exactly there, k Euler steps land on x1.

In VE coordinates (the samplers' contract) the flow state x_t = (1 - t) x1 + t z is
x = x1 + sigma z with sigma = t / (1 - t), and the velocity error of the denoiser D is
v_hat - v = (x1 - D) / t, so the loss is E ||(D(x, sigma) - x1) / t||^2.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import torch
from accelerate import PartialState
from safetensors.torch import load_file, save_file
from torch import nn

import samplers
from genphys.errors import DataFormatError, UserInputError
from genphys.train.config import ExperimentConfig
from genphys.train.data import model_inputs
from genphys.train.export import load_export
from genphys.train.tasks import DiffusionTask

PAIRS_FILE = "reflow_pairs.safetensors"


def euler_grid(objective: Any, k: int) -> torch.Tensor:
    """VE sigmas of k uniform flow-time steps t_max (1 - i/k), i = 0..k (ends in 0)."""
    t_max = objective.sigma_max / (1 + objective.sigma_max)
    t = t_max * (1 - torch.arange(k + 1, dtype=torch.float64) / k)  # (k+1,)
    return t / (1 - t)


class PairDataset(torch.utils.data.Dataset):
    """Stored (z, x1, conditions) tensors of the reflow coupling, one pair per item."""

    def __init__(self, tensors: dict[str, torch.Tensor]):
        self.tensors = tensors

    def __len__(self) -> int:
        return int(self.tensors["z"].shape[0])

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {k: v[i] for k, v in self.tensors.items()}


class ReflowTask(DiffusionTask):
    """Train a student on a teacher's (noise, sample) coupling; ``train.mode`` picks the loss."""

    def __init__(self, cfg: ExperimentConfig, device: torch.device | str = "cpu"):
        super().__init__(cfg, device)
        teacher = load_export(cfg.reflow.teacher, self.device)
        if tuple(teacher["representation"]["coeff_shape"]) != self.coeff_shape:
            raise UserInputError(f"reflow.teacher {cfg.reflow.teacher} works on model-space "
                                 f"shape {teacher['representation']['coeff_shape']}, this run on "
                                 f"{list(self.coeff_shape)}; use the teacher's data settings.")
        self.teacher = teacher["model"].requires_grad_(False)
        self.pairs = PairDataset(self._load_or_make_pairs())

    # ------------------------------------------------------------- the coupling
    def _load_or_make_pairs(self) -> dict[str, torch.Tensor]:
        path = Path(self.cfg.checkpoint.output_dir) / PAIRS_FILE
        with PartialState().main_process_first():  # rank 0 generates, the others read
            if not path.is_file():
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_name(f".tmp-{os.getpid()}-{PAIRS_FILE}")
                save_file(self.make_pairs(), str(tmp))
                os.replace(tmp, path)
            pairs = load_file(str(path))
        if pairs["z"].shape[0] != self.cfg.reflow.num_pairs or \
                tuple(pairs["z"].shape[1:]) != self.coeff_shape:
            raise DataFormatError(f"{path} holds pairs of shape {tuple(pairs['z'].shape)}, not "
                                  f"{self.cfg.reflow.num_pairs} of {self.coeff_shape}; delete it "
                                  "or use another checkpoint.output_dir.")
        return pairs

    @torch.no_grad()
    def make_pairs(self) -> dict[str, torch.Tensor]:
        """(z, x1 = teacher ODE(z), conditions) for ``reflow.num_pairs`` training conditions."""
        rc, n = self.cfg.reflow, self.cfg.reflow.num_pairs
        sigmas = self.objective.sigmas(rc.steps).to(self.device)
        bs, out = max(self.cfg.data.batch_size, 16), []
        for start in range(0, n, bs):
            idx = [i % len(self.train_ds) for i in range(start, min(start + bs, n))]
            batch = torch.utils.data.default_collate([self.train_ds[i] for i in idx])
            _, cond = model_inputs(batch, self.cfg.data, self.rep, self.device, self.text)
            z = torch.stack([torch.randn(self.coeff_shape, generator=torch.Generator()
                                         .manual_seed(self.cfg.train.seed * 100_003 + i))
                             for i in range(start, start + len(idx))]).to(self.device)
            denoise = self.objective.denoiser(self.teacher, cond or None)
            x1 = samplers.sample(rc.sampler, denoise, float(sigmas[0]) * z, sigmas)
            out.append({"z": z, "x": x1, **cond})
        cat = {k: torch.cat([o[k] for o in out]).cpu().contiguous() for k in out[0]}
        return {k: v.float() if v.is_floating_point() else v for k, v in cat.items()}

    # ------------------------------------------------------------- loop hooks
    @property
    def train_dataset(self) -> torch.utils.data.Dataset:
        """The stored coupling."""
        return self.pairs

    def build_model(self) -> nn.Module:
        """The student: a copy of the teacher (``reflow.init_from_teacher``) or a fresh net."""
        if not self.cfg.reflow.init_from_teacher:
            return super().build_model()
        student = copy.deepcopy(self.teacher).requires_grad_(True).train()
        self.check_model(student)
        return student

    def _times(self, b: int, generator: torch.Generator) -> torch.Tensor:
        """Flow times (B,): the objective's p(t) (reflow) or the student's Euler grid."""
        if self.cfg.train.mode == "distill":
            grid = euler_grid(self.objective, self.cfg.reflow.distill_steps)[:-1]
            t_grid = grid / (1 + grid)  # (k,)
            pick = torch.randint(len(t_grid), (b,), generator=generator, device=generator.device)
            return t_grid.to(generator.device)[pick]
        return self.objective.sample_t(b, generator)  # flow schedule: native t is flow time

    def loss(self, model: nn.Module, batch: dict[str, Any],
             generator: torch.Generator) -> tuple[torch.Tensor, dict[str, float]]:
        """Paired flow loss E ||(D(x1 + sigma z, sigma) - x1) / t||^2 (see module docstring)."""
        z, x1 = batch["z"].to(self.device), batch["x"].to(self.device)
        cond = {k: v.to(self.device) for k, v in batch.items() if k not in ("z", "x")}
        t = self._times(z.shape[0], generator).to(x1)  # (B,)
        sigma = t / (1 - t)
        bshape = (-1, *([1] * (x1.ndim - 1)))  # (B, 1, ..., 1)
        x = x1 + sigma.reshape(bshape) * z
        denoised = self.objective.denoiser(model, cond or None)(x, sigma)
        loss = (((denoised - x1) / t.reshape(bshape)) ** 2).flatten(1).mean(1).mean()
        return loss, {"loss": float(loss.detach())}

    @torch.no_grad()
    def val_loss(self, model: nn.Module) -> float:
        """Paired loss on the first stored pairs with fixed times (a coupling fit measure)."""
        n = min(len(self.pairs), self.cfg.validation.loss_batches * self.cfg.data.batch_size)
        batch = torch.utils.data.default_collate([self.pairs[i] for i in range(n)])
        g = torch.Generator(self.device).manual_seed(10_007)
        return float(self.loss(model, batch, g)[0])

    def sample_sigmas(self, steps: int) -> torch.Tensor | None:
        """Distillation validates on the student's own Euler grid."""
        if self.cfg.train.mode == "distill":
            return euler_grid(self.objective, self.cfg.reflow.distill_steps)
        return None
