"""Training objective: denoising / flow-matching loss, the sampler denoiser, and sampling.

One source of truth with the samplers: the loss target is ``samplers.target`` and the
trained network becomes ``denoise(x, sigma)`` through ``samplers.to_denoiser``; both see the
network through :meth:`Objective.network`, a function ``net(x_t, t)`` in the schedule's
native coordinates ``x_t = alpha(t) x0 + sigma(t) eps``.

What the backbone receives as its ``sigma`` argument (``ObjectiveConfig.noise_input``):
``"sigma"`` (default) — the VE noise level ``sigma_ve = sigma(t)/alpha(t)``, which backbones
built with ``noise_embedding="log_sigma"`` embed as ``ln(sigma)/4`` (EDM's c_noise; for
rectified flow this is logit(t)/4); ``"t"`` — the native time, for ``noise_embedding="t"``.
With ``preconditioning="edm"`` the backbone gets ``c_in x`` and returns EDM's F, and
``D = c_skip x + c_out F`` (Karras et al. 2022, eq. 7 and Table 1) is the x0 prediction.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

import samplers
from genphys.diffusion.config import DROPPABLE, ObjectiveConfig
from genphys.diffusion.dropout import check_cond, drop_conditions, null_conditions
from genphys.diffusion.weighting import edm_coefficients, sample_t, target_weight
from genphys.errors import UserInputError
from samplers import seeded_noise, target, to_denoiser
from samplers.guidance import cfg as cfg_guidance
from samplers.guidance import multi_cfg

Net = Callable[[Tensor, Tensor], Tensor]
Denoiser = Callable[[Tensor, Tensor], Tensor]
BUCKETS = (0.0, 0.1, 1.0, 10.0, math.inf)  # VE sigma edges of the logged loss buckets
_EMBEDDING = {"sigma": "log_sigma", "t": "t"}  # noise_input -> backbone noise_embedding


def _bcast(c: Tensor, x: Tensor) -> Tensor:
    return c.reshape(-1, *([1] * (x.ndim - 1)))  # (B, 1, ..., 1)


def _draw(shape: Sequence[int], generator: torch.Generator | None, kind: str,
          device: torch.device | str = "cpu") -> Tensor:
    """float64 uniform or normal draws on the generator's device (``device`` without one)."""
    dev = generator.device if generator is not None else torch.device(device)
    fn = torch.rand if kind == "uniform" else torch.randn
    return fn(tuple(shape), generator=generator, device=dev, dtype=torch.float64)


class Objective:
    """A configured objective (see :class:`ObjectiveConfig`): ``loss``, ``denoiser``, ``sample``."""

    def __init__(self, cfg: ObjectiveConfig):
        self.cfg = cfg
        self.schedule = cfg.build_schedule()
        self.sigma_min, self.sigma_max = cfg.sigma_range()

    def __repr__(self) -> str:
        return f"Objective({self.cfg!r})"

    # ----------------------------------------------------------------- the network
    def _check_model(self, model: Any) -> None:
        emb = getattr(getattr(model, "config", None), "noise_embedding", None)
        want = _EMBEDDING[self.cfg.noise_input]
        if emb is not None and emb != want:
            raise UserInputError(f"the backbone has noise_embedding={emb!r} but the objective "
                                 f"feeds noise_input={self.cfg.noise_input!r}; build the "
                                 f"backbone with noise_embedding={want!r}.")

    def network(self, model: nn.Module | Callable, cond: Mapping[str, Any] | None = None) -> Net:
        """``net(x_t, t)`` in native coordinates: the backbone, preconditioned if configured."""
        self._check_model(model)
        cond, sched, cfg = check_cond(cond), self.schedule, self.cfg

        def plain(x_t: Tensor, t: Tensor) -> Tensor:
            noise = sched.sigma_ve(t) if cfg.noise_input == "sigma" else t
            return model(x_t, noise, **cond)

        def edm(x_t: Tensor, t: Tensor) -> Tensor:
            sigma = sched.sigma_ve(t)
            x = x_t / _bcast(sched.alpha(t), x_t)  # VE coordinates x = x0 + sigma eps
            c_skip, c_out, c_in, _ = edm_coefficients(_bcast(sigma, x), cfg.sigma_data)
            return c_skip * x + c_out * model(c_in * x, sigma, **cond)  # c_noise: backbone

        return edm if cfg.preconditioning == "edm" else plain

    def denoiser(self, model: nn.Module | Callable,
                 cond: Mapping[str, Any] | None = None) -> Denoiser:
        """The sampler contract ``denoise(x, sigma) -> x0_hat`` (VE), via ``to_denoiser``."""
        return to_denoiser(self.network(model, cond), self.schedule, self.cfg.prediction)

    # ----------------------------------------------------------------- training
    def sample_t(self, batch: int, generator: torch.Generator | None = None) -> Tensor:
        """Training times t (B,) float64 from the configured noise-level distribution."""
        c = self.cfg
        return sample_t(_draw((batch,), generator, "uniform"), self.schedule, c.noise_sampling,
                        self.sigma_min, self.sigma_max, p_mean=c.p_mean, p_std=c.p_std,
                        logit_mean=c.logit_mean, logit_std=c.logit_std)

    def weight(self, t: Tensor) -> Tensor:
        """Per-sample loss weight (B,) on ||out - target||^2 (see :mod:`.weighting`)."""
        c = self.cfg
        return target_weight(c.weighting, c.prediction, self.schedule, t,
                             sigma_data=c.sigma_data, gamma=c.min_snr_gamma)

    def loss(self, model: nn.Module | Callable, x0: Tensor, cond: Mapping[str, Any] | None = None,
             generator: torch.Generator | None = None, sample_weight: Tensor | None = None,
             ) -> tuple[Tensor, dict[str, float]]:
        """Weighted denoising loss of a clean batch ``x0 (B, C, T, *space)`` and its logs.

        Draws, in order, t (B,), eps like x0 and the dropout masks from ``generator``.
        ``sample_weight (B,)``: an extra per-sample factor (e.g. relative weighting).
        """
        if not torch.is_tensor(x0) or x0.ndim < 2 or not x0.is_floating_point():
            raise UserInputError(f"x0 must be a floating tensor (B, C, ...), got "
                                 f"{getattr(x0, 'shape', type(x0).__name__)}.")
        b = x0.shape[0]
        t = self.sample_t(b, generator).to(x0)  # (B,)
        eps = _draw(x0.shape, generator, "normal", x0.device).to(x0)
        cond, keeps = drop_conditions(cond, self.cfg.cond_dropout, b, generator)
        sched = self.schedule
        x_t = _bcast(sched.alpha(t), x0) * x0 + _bcast(sched.sigma(t), x0) * eps
        out = self.network(model, cond)(x_t, t)
        err = (out - target(self.cfg.prediction, x0, eps, sched, t)) ** 2
        per_sample = self.weight(t).detach() * err.flatten(1).mean(dim=1)  # (B,)
        if sample_weight is not None:
            per_sample = per_sample * sample_weight.to(per_sample).detach()
        loss = per_sample.mean()
        return loss, self._logs(loss, per_sample, sched.sigma_ve(t), keeps)

    @staticmethod
    def _logs(loss: Tensor, per_sample: Tensor, sigma: Tensor,
              keeps: dict[str, Tensor]) -> dict[str, float]:
        """Loss, mean loss per VE-sigma bucket and dropped fraction per condition key."""
        logs = {"loss": float(loss.detach())}
        per, sigma = per_sample.detach(), sigma.detach()
        for lo, hi in zip(BUCKETS[:-1], BUCKETS[1:]):
            sel = (sigma >= lo) & (sigma < hi)
            if bool(sel.any()):
                logs[f"loss_sigma_{lo:g}_{hi:g}"] = float(per[sel].mean())
        for key, keep in keeps.items():
            logs[f"dropped_{key}"] = float((~keep).float().mean())
        return logs

    # ----------------------------------------------------------------- sampling
    def sigmas(self, steps: int = 20, kind: str = "loguniform", **opts: Any) -> Tensor:
        """Sampling grid ``samplers.get_sigmas(kind, steps)`` over [sigma_min, sigma_max].

        Default: uniform in log-SNR (Lu et al. 2022), measured 2.6x more accurate than Karras'
        rho = 7 grid for DPM-Solver++(2M) at 20 steps on the exact Gaussian problem (tests).
        """
        opts = {"sigma_min": self.sigma_min, "sigma_max": self.sigma_max, **opts}
        return samplers.get_sigmas(kind, steps, **opts)  # opts may override the range

    def guided_denoiser(self, model: nn.Module | Callable, cond: Mapping[str, Any] | None,
                        guidance: float | Mapping[str, float] | None) -> Denoiser:
        """Denoiser with classifier-free guidance: one scale for all conditions, or per key.

        Per-key scales use nested guidance with the scale-1 keys first, so a key's scale
        extrapolates only along that condition, given all the others.
        """
        cond = check_cond(cond)
        if guidance is None:
            return self.denoiser(model, cond)
        if not isinstance(guidance, Mapping):
            null = null_conditions(cond)
            return cfg_guidance(self.denoiser(model, cond), self.denoiser(model, null),
                                float(guidance))
        bad = [k for k in guidance if k not in DROPPABLE or cond.get(k) is None]
        if bad:
            raise UserInputError(f"guidance keys {bad} are not conditions present in cond; "
                                 f"allowed: {[k for k in DROPPABLE if cond.get(k) is not None]}.")
        present = [k for k in DROPPABLE if cond.get(k) is not None]

        def by_set(x: Tensor, sigma: Tensor, active: frozenset[str]) -> Tensor:
            dropped = [k for k in present if k not in active]
            return self.denoiser(model, null_conditions(cond, dropped))(x, sigma)

        # nested CFG (Brooks et al. 2023) with the unguided (scale-1) conditions first: they
        # telescope into the base, so {"tokens": g} with the others at 1 is
        # D(others) + g (D(all) - D(others)), and all scales 1 give the conditional model
        order = sorted(guidance, key=lambda k: (float(guidance[k]) != 1.0, DROPPABLE.index(k)))
        return multi_cfg(by_set, {k: float(guidance[k]) for k in order}, mode="nested")

    def sample(self, model: nn.Module | Callable, shape: Sequence[int],
               cond: Mapping[str, Any] | None = None, *, sampler: str = "dpmpp_2m",
               steps: int = 20, sigmas: Tensor | None = None,
               generator: torch.Generator | Sequence[int] | None = None, noise: Any = None,
               guidance: float | Mapping[str, float] | None = None) -> Tensor:
        """Draw x_T = sigma_max eps and run ``samplers.sample``; returns x0 ``(B, *shape[1:])``.

        ``generator``: a torch.Generator (whole batch) or a list of per-sample seeds (sample b
        depends only on seeds[b], also for SDE samplers unless ``noise`` is given).
        """
        sigmas = self.sigmas(steps) if sigmas is None else torch.as_tensor(sigmas)
        dtype, device = _model_dtype_device(model)
        shape = tuple(int(s) for s in shape)
        if generator is not None and not isinstance(generator, torch.Generator):
            seeds = [int(s) for s in generator]
            if len(seeds) != shape[0]:
                raise UserInputError(f"{len(seeds)} seeds given for a batch of {shape[0]}.")
            z = torch.stack([torch.randn(shape[1:], generator=torch.Generator().manual_seed(s),
                                         dtype=torch.float64) for s in seeds])  # (B, ...)
            noise = seeded_noise([s + 1 for s in seeds]) if noise is None else noise
        else:
            z = _draw(shape, generator, "normal")
        x = float(sigmas[0]) * z.to(device=device, dtype=dtype)
        denoise = self.guided_denoiser(model, cond, guidance)
        with torch.no_grad():
            return samplers.sample(sampler, denoise, x, sigmas.to(device), noise=noise)


def _model_dtype_device(model: Any) -> tuple[torch.dtype, torch.device]:
    """dtype and device of a module's first parameter (float32 on the CPU otherwise)."""
    if isinstance(model, nn.Module):
        p = next(iter(model.parameters()), None)
        if p is not None:
            return p.dtype, p.device
    return torch.float32, torch.device("cpu")


def build_objective(cfg: ObjectiveConfig | Mapping[str, Any]) -> Objective:
    """The :class:`Objective` of a config (or of its ``to_dict`` form)."""
    if isinstance(cfg, Mapping):
        cfg = ObjectiveConfig.from_dict(dict(cfg))
    if not isinstance(cfg, ObjectiveConfig):
        raise UserInputError(f"build_objective needs an ObjectiveConfig or dict, got "
                             f"{type(cfg).__name__}.")
    return Objective(cfg)
