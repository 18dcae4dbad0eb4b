"""Singlestep DPM-Solver-1/2/3 (Lu et al. 2022, Algorithms 1-2), noise-prediction form in lambda.

In VE coordinates (alpha = 1, sigma = sigma_ve, lambda = -log sigma) the DPM-Solver updates
read x_t = x_s - sigma_t (e^h - 1) eps_s - ..., with h = lambda_t - lambda_s. The step
functions take per-sample sigmas ``s``, ``t`` shaped (B, 1, ..., 1) so that the adaptive
solver can reuse them. A step to sigma = 0 returns the denoised estimate (lambda = +inf).
NFE on an n-step grid ending in 0: order * (n - 1) + 1.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from ._common import Callback, Denoiser, Noise, denoise_at, grid, register, report

__all__ = ["sample_dpm_solver_1", "sample_dpm_solver_2", "sample_dpm_solver_3",
           "eps_model", "dpm_solver_2_step", "dpm_solver_3_step"]

EpsFn = Callable[[Tensor, Tensor], Tensor]


def eps_model(denoise: Denoiser) -> EpsFn:
    """eps(x, sigma) = (x - D(x, sigma))/sigma for sigma shaped (B, 1, ..., 1)."""
    return lambda x, sigma: (x - denoise(x, sigma.flatten())) / sigma


def dpm_solver_2_step(eps: EpsFn, x: Tensor, s: Tensor, t: Tensor, eps_s: Tensor,
                      r1: float = 0.5) -> tuple[Tensor, Tensor]:
    """DPM-Solver-2 (Lu et al. 2022, Alg. 1) from s to t; returns (x_t, first-order x_t)."""
    h = torch.log(s / t)
    s1 = s * torch.exp(-r1 * h)  # sigma at lambda_s + r1 h
    u = x - s1 * torch.expm1(r1 * h) * eps_s
    x1 = x - t * torch.expm1(h) * eps_s  # DPM-Solver-1 = DDIM
    return x1 - t / (2 * r1) * torch.expm1(h) * (eps(u, s1) - eps_s), x1


def dpm_solver_3_step(eps: EpsFn, x: Tensor, s: Tensor, t: Tensor, eps_s: Tensor,
                      r1: float = 1 / 3, r2: float = 2 / 3) -> tuple[Tensor, Tensor]:
    """DPM-Solver-3 (Lu et al. 2022, Alg. 2) from s to t; returns (x_t, DPM-Solver-2 x_t at r1)."""
    h = torch.log(s / t)
    s1, s2 = s * torch.exp(-r1 * h), s * torch.exp(-r2 * h)
    u1 = x - s1 * torch.expm1(r1 * h) * eps_s
    d1 = eps(u1, s1) - eps_s
    phi2 = torch.expm1(r2 * h) / (r2 * h) - 1.0
    u2 = x - s2 * torch.expm1(r2 * h) * eps_s - s2 * (r2 / r1) * phi2 * d1
    d2 = eps(u2, s2) - eps_s
    x1 = x - t * torch.expm1(h) * eps_s
    x_low = x1 - t / (2 * r1) * torch.expm1(h) * d1
    return x1 - t / r2 * (torch.expm1(h) / h - 1.0) * d2, x_low


def _singlestep(order: int, denoise: Denoiser, x: Tensor, sigmas: Tensor, callback) -> Tensor:
    """Run DPM-Solver-``order`` on every step; the step to sigma = 0 returns the denoised x0."""
    s, eps = grid(x, sigmas), eps_model(denoise)
    for i in range(len(s) - 1):
        denoised = denoise_at(denoise, x, s[i])
        report(callback, i, x, s[i], denoised)
        if s[i + 1] == 0 or order == 1:
            x = denoised + s[i + 1] / s[i] * (x - denoised)  # DDIM step, = x0_hat at 0
            continue
        sig = x.new_full((x.shape[0],) + (1,) * (x.ndim - 1), s[i])  # (B, 1, ..., 1)
        t = torch.full_like(sig, s[i + 1])
        step = dpm_solver_2_step if order == 2 else dpm_solver_3_step
        x = step(eps, x, sig, t, (x - denoised) / s[i])[0]
    return x


@register("dpm_solver_1", nfe=lambda n, **o: n)
def sample_dpm_solver_1(denoise: Denoiser, x: Tensor, sigmas: Tensor, *,
                        noise: Noise = None, callback: Callback = None) -> Tensor:
    """DPM-Solver-1 (Lu et al. 2022), identical to DDIM and to Euler in sigma."""
    return _singlestep(1, denoise, x, sigmas, callback)


@register("dpm_solver_2", nfe=lambda n, **o: 2 * n - 1)
def sample_dpm_solver_2(denoise: Denoiser, x: Tensor, sigmas: Tensor, *,
                        noise: Noise = None, callback: Callback = None) -> Tensor:
    """Singlestep DPM-Solver-2 (Lu et al. 2022, Algorithm 1, r1 = 1/2)."""
    return _singlestep(2, denoise, x, sigmas, callback)


@register("dpm_solver_3", nfe=lambda n, **o: 3 * n - 2)
def sample_dpm_solver_3(denoise: Denoiser, x: Tensor, sigmas: Tensor, *,
                        noise: Noise = None, callback: Callback = None) -> Tensor:
    """Singlestep DPM-Solver-3 (Lu et al. 2022, Algorithm 2, r1 = 1/3, r2 = 2/3)."""
    return _singlestep(3, denoise, x, sigmas, callback)
