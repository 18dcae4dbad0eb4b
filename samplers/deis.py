"""DEIS (Zhang & Chen 2022): exponential-integrator Adams-Bashforth on the eps prediction.

In VE coordinates the probability-flow ODE is dx/dsigma = eps(x, sigma) (no linear part;
sigma is DEIS's rho). DEIS interpolates the last ``order`` eps values by a Lagrange
polynomial in a time variable and integrates it exactly over the step:

- ``time="log_sigma"`` (default; DEIS's log-rho variant, as in diffusers' DEIS): polynomial
  in lambda = -log sigma, x_t = x_s - sigma_s int_0^h e^{-tau} P(tau) dtau. The step to
  sigma = 0 returns the denoised estimate (lambda = +inf).
- ``time="sigma"`` (rho-AB-DEIS, Zhang & Chen eq. 15): polynomial in sigma, integrated in
  sigma; the step to 0 is a regular AB step.

Orders 1-3 (order 1 = DDIM); lower orders while the history fills. NFE on an n-step grid
ending in 0: n.
"""

from __future__ import annotations

from torch import Tensor

from ._common import (
    Callback,
    Denoiser,
    Noise,
    combine,
    denoise_at,
    exp_weights,
    grid,
    lam,
    poly_weights,
    register,
    report,
    to_d,
)

__all__ = ["sample_deis", "deis_weights"]


def deis_weights(s: float, t: float, nodes: list[float], time: str) -> list[float]:
    """Weights w_j with x_t = x_s + sum_j w_j eps_j for the DEIS rule over sigma nodes."""
    if time == "sigma":  # int_s^t l_j(sigma) dsigma, in time shifted by s
        return poly_weights(0.0, t - s, [sj - s for sj in nodes])
    h = lam(t) - lam(s)
    taus = [lam(sj) - lam(s) for sj in nodes]
    # int_0^h e^{-tau} l_j(tau) dtau = int_0^h e^{u-h} l_j(h-u) du (substitute u = h - tau)
    return [-s * w for w in exp_weights(h, [h - tau for tau in taus])]


def _check(order: int, time: str) -> None:
    """Validate the DEIS options."""
    if order not in (1, 2, 3):
        raise ValueError(f"order={order!r} is not supported; allowed: 1, 2, 3.")
    if time not in ("log_sigma", "sigma"):
        raise ValueError(f"time={time!r} is not supported; allowed: 'log_sigma', 'sigma'.")


@register("deis", nfe=lambda n, **o: n)
def sample_deis(denoise: Denoiser, x: Tensor, sigmas: Tensor, *,
                noise: Noise = None, callback: Callback = None,
                order: int = 3, time: str = "log_sigma") -> Tensor:
    """DEIS of order 1-3 (Zhang & Chen 2022): eps-based exponential Adams-Bashforth."""
    s = grid(x, sigmas)
    _check(order, time)
    hist: list[tuple[float, Tensor]] = []  # (sigma_j, eps_j), newest first
    for i in range(len(s) - 1):
        denoised = denoise_at(denoise, x, s[i])
        report(callback, i, x, s[i], denoised)
        hist = [(s[i], to_d(x, s[i], denoised))] + hist[: order - 1]
        if s[i + 1] == 0 and time == "log_sigma":
            x = denoised
            continue
        w = deis_weights(s[i], s[i + 1], [sj for sj, _ in hist], time)
        x = combine(x, w, [ej for _, ej in hist])
    return x
