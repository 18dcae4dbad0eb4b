"""EDM preconditioning, loss weightings and training noise-level distributions.

Every weighting is a weight ``lambda(sigma)`` on the clean-data error ``||x0_hat - x0||^2``
in VE noise levels (SNR = alpha^2 / sigma^2 = 1 / sigma_ve^2 for every schedule), the form
used by Karras et al. (2022) and Kingma & Gao (2023, "Understanding Diffusion Objectives as
the ELBO with Simple Data Augmentation"). :func:`target_weight` converts it to the weight on
the error of whatever the network predicts, using the slope ``d x0_hat / d out`` taken from
``samplers.to_x0`` (so it cannot disagree with the sampler's conversion). ``uniform`` is the
exception: weight 1 on the prediction's own error (Ho et al. 2020's L_simple for eps; the
conditional flow matching loss of Lipman et al. 2023 for flow).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from samplers import Schedule, to_x0

__all__ = ["edm_coefficients", "x0_weight", "target_weight", "sample_t"]


def edm_coefficients(sigma: Tensor, sigma_data: float) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(c_skip, c_out, c_in, c_noise) of EDM's preconditioner (Karras et al. 2022, Table 1)."""
    sd2, s2 = sigma_data**2, sigma**2
    c_skip = sd2 / (s2 + sd2)
    c_out = sigma * sigma_data / torch.sqrt(s2 + sd2)
    c_in = 1.0 / torch.sqrt(s2 + sd2)
    c_noise = torch.log(sigma) / 4.0
    return c_skip, c_out, c_in, c_noise


def x0_weight(weighting: str, sigma: Tensor, *, sigma_data: float = 1.0,
              gamma: float = 5.0) -> Tensor:
    """Weight lambda(sigma) on ||x0_hat - x0||^2 (module docstring, docs/diffusion.md)."""
    snr = 1.0 / sigma**2
    if weighting in ("snr", "sigma_sq"):
        # eps-MSE (Ho et al. 2020); = Song & Ermon (2019)'s sigma^2-weighted score loss
        return snr
    if weighting == "min_snr":
        return torch.clamp(snr, max=gamma)  # Hang et al. (2023), Min-SNR-gamma
    if weighting == "snr_plus_one":
        return snr + 1.0  # Salimans & Ho (2022); the v-MSE of a VP model
    if weighting == "truncated_snr":
        return torch.clamp(snr, min=1.0)  # Salimans & Ho (2022), max(SNR, 1)
    if weighting == "edm":
        return (sigma**2 + sigma_data**2) / (sigma * sigma_data) ** 2  # Karras et al. (2022)
    if weighting == "uniform":
        return torch.ones_like(sigma)
    raise ValueError(f"weighting {weighting!r} is unknown.")


def output_slope(prediction: str, schedule: Schedule, t: Tensor) -> Tensor:
    """d x0_hat / d out per sample, shape (B,): ``samplers.to_x0`` is affine in the output."""
    ones = torch.ones(t.shape[0], 1, dtype=t.dtype, device=t.device)  # (B, 1)
    zero = torch.zeros_like(ones)
    slope = to_x0(prediction, ones, zero, schedule, t) - to_x0(prediction, zero, zero, schedule, t)
    return slope[:, 0]


def target_weight(weighting: str, prediction: str, schedule: Schedule, t: Tensor, *,
                  sigma_data: float = 1.0, gamma: float = 5.0) -> Tensor:
    """Per-sample weight (B,) on ||out - target||^2 that equals ``x0_weight`` on the x0 error."""
    if weighting == "uniform":
        return torch.ones_like(t)
    lam = x0_weight(weighting, schedule.sigma_ve(t), sigma_data=sigma_data, gamma=gamma)
    return lam * output_slope(prediction, schedule, t) ** 2


def _truncated_normal(u: Tensor, mean: float, std: float, lo: float, hi: float) -> Tensor:
    """Map uniforms u in (0, 1) to N(mean, std^2) truncated to [lo, hi] by the inverse CDF."""
    a = torch.special.ndtr(torch.tensor((lo - mean) / std, dtype=u.dtype))
    b = torch.special.ndtr(torch.tensor((hi - mean) / std, dtype=u.dtype))
    return (mean + std * torch.special.ndtri(a + (b - a) * u)).clamp(lo, hi)


def sample_t(u: Tensor, schedule: Schedule, kind: str, sigma_min: float, sigma_max: float, *,
             p_mean: float = -1.2, p_std: float = 1.2, logit_mean: float = 0.0,
             logit_std: float = 1.0) -> Tensor:
    """Native training times t (B,) from uniforms ``u`` (B,), float64, sigma_ve in the range.

    ``lognormal``: ln sigma ~ N(p_mean, p_std^2) (Karras et al. 2022), truncated to the range;
    ``uniform``: t uniform between the times of sigma_min and sigma_max (Ho et al. 2020);
    ``logit_normal``: t = t_lo + (t_hi - t_lo) sigmoid(N(logit_mean, logit_std^2))
    (Esser et al. 2024, SD3).
    """
    u = u.double()
    ends = torch.tensor([sigma_min, sigma_max], dtype=torch.float64, device=u.device)
    t_lo, t_hi = schedule.t_of_sigma(ends).tolist()
    if kind == "lognormal":
        log_sigma = _truncated_normal(u, p_mean, p_std, math.log(sigma_min), math.log(sigma_max))
        return schedule.t_of_sigma(torch.exp(log_sigma)).clamp(min(t_lo, t_hi), max(t_lo, t_hi))
    if kind == "uniform":
        return t_lo + (t_hi - t_lo) * u
    if kind == "logit_normal":
        z = torch.special.ndtri(u.clamp(1e-12, 1 - 1e-12))
        return t_lo + (t_hi - t_lo) * torch.sigmoid(logit_mean + logit_std * z)
    raise ValueError(f"noise sampling {kind!r} is unknown.")
