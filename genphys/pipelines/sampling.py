"""Run a genphys sampler (by name) or a diffusers scheduler instance on our VE denoiser.

A diffusers scheduler is driven by its own standard loop (``set_timesteps``,
``scale_model_input``, ``step``) with an adapter that turns ``denoise(x, sigma) -> x0`` into
the output its config asks for (eps, x0 or v) in its discrete VP coordinates
x_vp = x / sqrt(1 + sigma^2), sigma = sqrt((1 - alphā_t) / alphā_t) (Ho et al. 2020;
Karras et al. 2022, Table 1), as in ``benchmarks/samplers_vs_diffusers.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

import samplers
from genphys.errors import UserInputError

Denoiser = Callable[[Tensor, Tensor], Tensor]


def check_sampler(sampler: Any) -> Any:
    """Return a valid sampler name or diffusers scheduler, else raise one clear sentence."""
    if isinstance(sampler, str):
        if sampler not in samplers.SAMPLERS:
            raise UserInputError(f"sampler={sampler!r} is unknown; valid names: "
                                 f"{', '.join(sorted(samplers.SAMPLERS))}, or a diffusers "
                                 "scheduler instance.")
        return sampler
    if hasattr(sampler, "set_timesteps") and hasattr(sampler, "step"):
        if getattr(sampler, "alphas_cumprod", None) is None:
            raise UserInputError(f"diffusers scheduler {type(sampler).__name__} has no "
                                 "alphas_cumprod table; use a discrete-time scheduler such as "
                                 "DPMSolverMultistepScheduler, DDIMScheduler, UniPC, DEIS or "
                                 "EulerDiscreteScheduler.")
        return sampler
    raise UserInputError(f"sampler={sampler!r} is neither a name in samplers.SAMPLERS nor a "
                         "diffusers scheduler instance.")


def check_steps(steps: Any) -> int:
    """``num_inference_steps`` as an int >= 1."""
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
        raise UserInputError(f"num_inference_steps={steps!r} is invalid; allowed: an integer "
                             ">= 1.")
    return steps


def seeded_normal(seeds: Sequence[int], shape: Sequence[int]) -> Tensor:
    """float64 standard normal ``(B, *shape)``; row b depends only on ``seeds[b]``."""
    rows = [torch.randn(tuple(shape), generator=torch.Generator().manual_seed(int(s)),
                        dtype=torch.float64) for s in seeds]
    return torch.stack(rows)  # (B, *shape)


def _sigma_table(scheduler: Any) -> Tensor:
    ac = torch.as_tensor(scheduler.alphas_cumprod, dtype=torch.float64)
    return ((1 - ac) / ac).sqrt()  # (N,) VE sigma of each trained timestep


def step_sigmas(scheduler: Any) -> Tensor:
    """VE sigma of each of ``scheduler.timesteps``: the scheduler's own ``sigmas`` if it keeps
    them (Euler, DPM-Solver, UniPC, DEIS), else log-sigma interpolation of the trained table."""
    n = len(scheduler.timesteps)
    own = getattr(scheduler, "sigmas", None)
    if own is not None and len(own) >= n:
        return torch.as_tensor(own, dtype=torch.float64)[:n]
    log_table = _sigma_table(scheduler).log()
    t = torch.as_tensor(scheduler.timesteps, dtype=torch.float64).clamp(0, len(log_table) - 1)
    lo = t.floor().long().clamp(max=len(log_table) - 2)
    w = t - lo
    return ((1 - w) * log_table[lo] + w * log_table[lo + 1]).exp()


def diffusers_model(denoise: Denoiser, prediction_type: str) -> Callable[[Tensor, Tensor], Tensor]:
    """``model(x_vp, sigma)`` returning the eps, x0 (``sample``) or v a scheduler expects."""
    if prediction_type not in ("epsilon", "sample", "v_prediction"):
        raise UserInputError(f"scheduler prediction_type={prediction_type!r} is not supported; "
                             "allowed: epsilon, sample, v_prediction.")

    def model(x_vp: Tensor, sigma: Tensor) -> Tensor:
        sigma = sigma.expand(x_vp.shape[0]).to(x_vp)  # (B,)
        s = sigma.reshape(-1, *([1] * (x_vp.ndim - 1)))  # (B, 1, ..., 1)
        x = x_vp * torch.sqrt(1 + s**2)  # VE state x = x0 + sigma eps
        x0 = denoise(x, sigma)
        eps = (x - x0) / s
        if prediction_type == "epsilon":
            return eps
        if prediction_type == "sample":
            return x0
        a, b = 1 / torch.sqrt(1 + s**2), s / torch.sqrt(1 + s**2)  # VP alpha, sigma
        return a * eps - b * x0  # Salimans & Ho (2022) v

    return model


def run_scheduler(scheduler: Any, denoise: Denoiser, z: Tensor, steps: int) -> Tensor:
    """diffusers' standard sampling loop from unit noise ``z`` (scaled by init_noise_sigma)."""
    model = diffusers_model(denoise, scheduler.config.prediction_type)
    scheduler.set_timesteps(steps)
    sigmas = step_sigmas(scheduler)
    x = z * float(scheduler.init_noise_sigma)
    for i, t in enumerate(scheduler.timesteps):
        out = model(scheduler.scale_model_input(x, t), sigmas[i:i + 1])
        x = scheduler.step(out, t, x).prev_sample
    return x


def run_sampler(sampler: Any, denoise: Denoiser, z: Tensor, sigmas: Tensor, steps: int,
                noise: Any = None, **opts: Any) -> Tensor:
    """Sample from unit noise ``z``: ``samplers.sample`` by name, or a diffusers scheduler."""
    with torch.no_grad():
        if isinstance(sampler, str):
            x = float(sigmas[0]) * z
            return samplers.sample(sampler, denoise, x, sigmas.to(z.device), noise=noise, **opts)
        return run_scheduler(sampler, denoise, z, steps)
