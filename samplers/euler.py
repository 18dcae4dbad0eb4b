"""First- and second-order samplers in sigma: Euler (= DDIM), ancestral Euler, EDM Heun.

Every step i goes sigmas[i] -> sigmas[i+1]; a step to sigma = 0 returns the denoised
estimate (the Euler step to 0 is exactly x0_hat), so it never evaluates the model at 0.
"""

from __future__ import annotations

import math

from torch import Tensor

from ._common import (
    Callback,
    Denoiser,
    Noise,
    denoise_at,
    grid,
    noise_source,
    register,
    report,
    to_d,
)

__all__ = ["sample_euler", "sample_euler_ancestral", "sample_heun", "ancestral_step"]


def ancestral_step(sigma: float, sigma_next: float, eta: float = 1.0) -> tuple[float, float]:
    """(sigma_down, sigma_up) of DDIM with parameter eta, in VE form (Song et al. 2021a)."""
    if sigma_next == 0 or eta == 0:
        return sigma_next, 0.0
    up = min(sigma_next, eta * math.sqrt(sigma_next**2 * (sigma**2 - sigma_next**2) / sigma**2))
    return math.sqrt(sigma_next**2 - up**2), up


@register("euler", nfe=lambda n, **o: n)
def sample_euler(denoise: Denoiser, x: Tensor, sigmas: Tensor, *,
                 noise: Noise = None, callback: Callback = None) -> Tensor:
    """Euler on dx/dsigma = (x - D)/sigma (Karras et al. 2022), identical to DDIM eta=0."""
    s = grid(x, sigmas)
    for i in range(len(s) - 1):
        denoised = denoise_at(denoise, x, s[i])
        report(callback, i, x, s[i], denoised)
        x = x + (s[i + 1] - s[i]) * to_d(x, s[i], denoised)
    return x


@register("euler_ancestral", nfe=lambda n, **o: n, stochastic=True)
def sample_euler_ancestral(denoise: Denoiser, x: Tensor, sigmas: Tensor, *,
                           noise: Noise = None, callback: Callback = None,
                           eta: float = 1.0, s_noise: float = 1.0) -> Tensor:
    """DDIM with eta > 0 (Song et al. 2021a; eta=1 is DDPM ancestral sampling, Ho et al. 2020)."""
    s, draw = grid(x, sigmas), noise_source(noise, x)
    for i in range(len(s) - 1):
        denoised = denoise_at(denoise, x, s[i])
        report(callback, i, x, s[i], denoised)
        down, up = ancestral_step(s[i], s[i + 1], eta)
        x = x + (down - s[i]) * to_d(x, s[i], denoised)
        if up > 0:
            x = x + draw(i) * (s_noise * up)
    return x


def _churn(sigma: float, n: int, s_churn: float, s_tmin: float, s_tmax: float) -> float:
    """EDM's gamma_i: min(S_churn/N, sqrt(2)-1) inside [S_tmin, S_tmax], else 0."""
    if s_churn <= 0 or not (s_tmin <= sigma <= s_tmax):
        return 0.0
    return min(s_churn / n, math.sqrt(2.0) - 1.0)


@register("heun", nfe=lambda n, **o: 2 * n - 1, stochastic=True)
def sample_heun(denoise: Denoiser, x: Tensor, sigmas: Tensor, *,
                noise: Noise = None, callback: Callback = None,
                s_churn: float = 0.0, s_tmin: float = 0.0, s_tmax: float = math.inf,
                s_noise: float = 1.0) -> Tensor:
    """Heun's 2nd-order method with optional churn (Karras et al. 2022, Algorithm 2).

    Deterministic when ``s_churn = 0`` (the default). The last step (to sigma = 0) is Euler.
    """
    s, draw = grid(x, sigmas), noise_source(noise, x)
    n = len(s) - 1
    for i in range(n):
        gamma = _churn(s[i], n, s_churn, s_tmin, s_tmax)
        sigma_hat = s[i] * (1 + gamma)
        if gamma > 0:
            x = x + draw(i) * (s_noise * math.sqrt(sigma_hat**2 - s[i] ** 2))
        denoised = denoise_at(denoise, x, sigma_hat)
        report(callback, i, x, sigma_hat, denoised)
        d = to_d(x, sigma_hat, denoised)
        x_next = x + (s[i + 1] - sigma_hat) * d
        if s[i + 1] > 0:
            d_next = to_d(x_next, s[i + 1], denoise_at(denoise, x_next, s[i + 1]))
            x_next = x + (s[i + 1] - sigma_hat) * 0.5 * (d + d_next)
        x = x_next
    return x
