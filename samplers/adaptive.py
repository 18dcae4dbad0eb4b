"""Error-controlled DPM-Solver-12/23 (Lu et al. 2022, sec. 4 and Algorithm 4 of App. C).

Each attempt takes an embedded pair of DPM-Solver steps in lambda (orders 1/2 or 2/3, the
lower one re-using the higher one's model calls), measures the scaled RMS difference
E = ||x_high - x_low|| / max(atol, rtol max(|x_low|, |x_prev|)) and accepts when E <= 1;
the next step is h <- min(h_max, h min(5, 0.9 E^(-1/order))). Steps are chosen **per sample**: the
denoiser receives a (B,) sigma with each sample's own noise level, so a sample's trajectory
does not depend on the batch it is in. Only sigmas[0] and the grid's last nonzero sigma are
used; if the grid ends in 0, the result is the denoised estimate there (one extra call).
The NFE is not fixed: the callback receives ``nfe`` (calls so far) at every attempt, with
``sigma`` the (B,) per-sample noise levels and ``accepted`` the (B,) acceptance mask.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ._common import Callback, Denoiser, Noise, bcast, grid, register, report
from .dpm_solver import dpm_solver_2_step, dpm_solver_3_step

__all__ = ["sample_dpm_adaptive"]


def _error(x_high: Tensor, x_low: Tensor, x_prev: Tensor, rtol: float, atol: float) -> Tensor:
    """Per-sample scaled RMS error of the embedded pair (Lu et al. 2022, eq. C.1), shape (B,)."""
    scale = torch.clamp(rtol * torch.maximum(x_low.abs(), x_prev.abs()), min=atol)
    return ((x_high - x_low) / scale).flatten(1).pow(2).mean(1).sqrt()  # (B,)


class _Counter:
    """Denoiser wrapper that counts calls and returns eps for per-sample sigmas (B, 1, ...)."""

    def __init__(self, denoise: Denoiser):
        self.denoise, self.calls = denoise, 0

    def __call__(self, x: Tensor, sigma: Tensor) -> Tensor:
        self.calls += 1
        return (x - self.denoise(x, sigma.flatten())) / sigma


@register("dpm_adaptive", nfe=lambda n, **o: None)
def sample_dpm_adaptive(denoise: Denoiser, x: Tensor, sigmas: Tensor, *,
                        noise: Noise = None, callback: Callback = None,
                        order: int = 3, rtol: float = 1e-3, atol: float = 1e-4,
                        h_init: float = 0.05, h_max: float = math.inf,
                        max_attempts: int = 10000) -> Tensor:
    """Adaptive DPM-Solver-12 (order=2) or -23 (order=3) of Lu et al. (2022), per-sample steps."""
    if order not in (2, 3):
        raise ValueError(f"order={order!r} is not supported; allowed: 2, 3.")
    s = grid(x, sigmas)
    s_end = s[-2] if s[-1] == 0 else s[-1]
    eps = _Counter(denoise)
    b = x.shape[0]
    lam = x.new_full((b,), -math.log(s[0]), dtype=torch.float64)  # per-sample lambda
    lam_end, h = -math.log(s_end), x.new_full((b,), h_init, dtype=torch.float64)
    done = lam >= lam_end
    step = dpm_solver_2_step if order == 2 else dpm_solver_3_step
    for attempt in range(max_attempts):
        if bool(done.all()):
            break
        lam_t = torch.where(done, lam + h_init, torch.minimum(lam + h, torch.full_like(
            lam, lam_end)))  # done samples take a dummy step that is discarded
        sig_s = bcast(torch.exp(-lam).to(x.dtype), x)  # (B, 1, ..., 1)
        sig_t = bcast(torch.exp(-lam_t).to(x.dtype), x)
        eps_s = eps(x, sig_s)
        x_high, x_low = step(eps, x, sig_s, sig_t, eps_s)
        err = _error(x_high, x_low, x, rtol, atol).double()
        h_try = lam_t - lam
        accept = (err <= 1) & ~done
        x = torch.where(bcast(accept, x), x_high, x)
        lam = torch.where(accept, lam_t, lam)
        done = done | (lam >= lam_end - 1e-12)
        # growth capped at 5x per step (Hairer, Norsett & Wanner, sec. II.4)
        factor = torch.clamp(0.9 * err.clamp(min=1e-10) ** (-1 / order), max=5.0)
        h = torch.clamp(h_try * factor, max=h_max)
        report(callback, attempt, x, torch.exp(-lam), x - sig_s * eps_s, nfe=eps.calls,
               accepted=accept)
    else:
        raise RuntimeError(f"dpm_adaptive did not finish in {max_attempts} attempts.")
    if s[-1] == 0:
        sig = bcast(x.new_full((b,), s_end), x)
        x = x - sig * eps(x, sig)
        report(callback, attempt + 1, x, 0.0, x, nfe=eps.calls)
    return x
