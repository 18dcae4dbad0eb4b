"""DPM-Solver++ (Lu et al. 2022b): data-prediction exponential integrators in lambda = -log sigma.

In VE coordinates a first-order step is x_t = (sigma_t/sigma_s) x_s + (1 - e^{-h}) D_s
with h = lambda_t - lambda_s. Multistep methods start with lower orders (warm-up) and the
step to sigma = 0 (h = inf) returns the current denoised estimate, so nothing is
extrapolated to lambda = +inf. NFE on an n-step grid ending in 0: n for the multistep
methods, 2n - 1 for the singlestep 2S.
"""

from __future__ import annotations

import math

from torch import Tensor

from ._common import (
    Callback,
    Denoiser,
    Noise,
    combine,
    denoise_at,
    exp_weights,
    expm1_neg,
    grid,
    lam,
    noise_source,
    register,
    report,
)

__all__ = ["sample_dpmpp_2s", "sample_dpmpp_2m", "sample_dpmpp_3m", "sample_dpmpp_2m_sde"]


def _first_order(x: Tensor, s: float, t: float, denoised: Tensor) -> Tensor:
    """DPM-Solver++(1) = DDIM: x_t = (t/s) x + (1 - t/s) D; exactly D at t = 0."""
    return denoised + (t / s) * (x - denoised)


@register("dpmpp_2s", nfe=lambda n, **o: 2 * n - 1)
def sample_dpmpp_2s(denoise: Denoiser, x: Tensor, sigmas: Tensor, *,
                    noise: Noise = None, callback: Callback = None, r: float = 0.5) -> Tensor:
    """DPM-Solver++(2S) (Lu et al. 2022b, Algorithm 1), singlestep with midpoint ratio r."""
    s = grid(x, sigmas)
    for i in range(len(s) - 1):
        denoised = denoise_at(denoise, x, s[i])
        report(callback, i, x, s[i], denoised)
        if s[i + 1] == 0:
            x = denoised
            continue
        h = lam(s[i + 1]) - lam(s[i])
        s_mid = s[i] * math.exp(-r * h)
        u = _first_order(x, s[i], s_mid, denoised)
        d_mid = denoise_at(denoise, u, s_mid)
        d = (1 - 1 / (2 * r)) * denoised + 1 / (2 * r) * d_mid
        x = (s[i + 1] / s[i]) * x + expm1_neg(h) * d
    return x


@register("dpmpp_2m", nfe=lambda n, **o: n)
def sample_dpmpp_2m(denoise: Denoiser, x: Tensor, sigmas: Tensor, *,
                    noise: Noise = None, callback: Callback = None) -> Tensor:
    """DPM-Solver++(2M) (Lu et al. 2022b, Algorithm 2); first step first order."""
    s = grid(x, sigmas)
    old, h_old = None, None
    for i in range(len(s) - 1):
        denoised = denoise_at(denoise, x, s[i])
        report(callback, i, x, s[i], denoised)
        h = lam(s[i + 1]) - lam(s[i])
        d = denoised
        if old is not None and s[i + 1] > 0:
            r = h_old / h
            d = (1 + 1 / (2 * r)) * denoised - 1 / (2 * r) * old
        x = _first_order(x, s[i], s[i + 1], d) if s[i + 1] > 0 else denoised
        old, h_old = denoised, h
    return x


@register("dpmpp_3m", nfe=lambda n, **o: n)
def sample_dpmpp_3m(denoise: Denoiser, x: Tensor, sigmas: Tensor, *,
                    noise: Noise = None, callback: Callback = None) -> Tensor:
    """DPM-Solver++(3M) (Lu et al. 2022b): 3-step exponential Adams-Bashforth in lambda.

    The data prediction is interpolated by the Lagrange polynomial through the last three
    (lambda, D) pairs and integrated exactly against e^{lambda - lambda_t} (orders 1, 2
    during warm-up).
    """
    s = grid(x, sigmas)
    hist: list[tuple[float, Tensor]] = []  # (lambda_j, D_j), newest first
    for i in range(len(s) - 1):
        denoised = denoise_at(denoise, x, s[i])
        report(callback, i, x, s[i], denoised)
        hist = [(lam(s[i]), denoised)] + hist[:2]
        if s[i + 1] == 0:
            x = denoised
            continue
        h = lam(s[i + 1]) - lam(s[i])
        w = exp_weights(h, [lj - hist[0][0] for lj, _ in hist])
        x = combine((s[i + 1] / s[i]) * x, w, [dj for _, dj in hist])
    return x


@register("dpmpp_2m_sde", nfe=lambda n, **o: n, stochastic=True)
def sample_dpmpp_2m_sde(denoise: Denoiser, x: Tensor, sigmas: Tensor, *,
                        noise: Noise = None, callback: Callback = None,
                        eta: float = 1.0, s_noise: float = 1.0) -> Tensor:
    """DPM-Solver++(2M) SDE (Lu et al. 2022b, sec. 4; midpoint variant), eta=0 gives the ODE.

    Step: x_t = (sigma_t/sigma_s) e^{-eta h} x + (1 - e^{-(1+eta) h}) D
    (+ the 2M correction) + sigma_t sqrt(1 - e^{-2 eta h}) z.
    """
    s, draw = grid(x, sigmas), noise_source(noise, x)
    old, h_old = None, None
    for i in range(len(s) - 1):
        denoised = denoise_at(denoise, x, s[i])
        report(callback, i, x, s[i], denoised)
        if s[i + 1] == 0:
            x = denoised
            continue
        h = lam(s[i + 1]) - lam(s[i])
        c = expm1_neg((1 + eta) * h)
        x = (s[i + 1] / s[i]) * math.exp(-eta * h) * x + c * denoised
        if old is not None:
            x = x + (0.5 * c * h / h_old) * (denoised - old)
        if eta > 0:
            x = x + draw(i) * (s[i + 1] * math.sqrt(expm1_neg(2 * eta * h)) * s_noise)
        old, h_old = denoised, h
    return x
