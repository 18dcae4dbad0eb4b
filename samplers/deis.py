"""DEIS (Zhang & Chen 2022): exponential-integrator Adams-Bashforth, rho-AB variant, orders 1-3.

In VE coordinates rho = sigma is DEIS's rho time, and the probability-flow ODE has no linear
part: dx/dsigma = eps(x, sigma). rho-AB-DEIS interpolates the last ``order`` eps values by a
Lagrange polynomial in sigma and integrates it exactly over the step. The step to sigma = 0
is a regular AB step (eps is smooth at sigma = 0), so no model call is made at 0.
NFE on an n-step grid ending in 0: n.
"""

from __future__ import annotations

from torch import Tensor

from ._common import Denoiser, denoise_at, grid, poly_weights, register, report, to_d

__all__ = ["sample_deis"]


def _check_order(order: int) -> int:
    """Validate an AB order (1, 2 or 3)."""
    if order not in (1, 2, 3):
        raise ValueError(f"order={order!r} is not supported; allowed: 1, 2, 3.")
    return order


@register("deis", nfe=lambda n, **o: n)
def sample_deis(denoise: Denoiser, x: Tensor, sigmas: Tensor, *, noise=None, callback=None,
                order: int = 3) -> Tensor:
    """rho-AB-DEIS of order 1-3 (Zhang & Chen 2022, eq. 15 with rho = sigma_ve); order 1 = DDIM."""
    s, order = grid(x, sigmas), _check_order(order)
    hist: list[tuple[float, Tensor]] = []  # (sigma_j, eps_j), newest first
    for i in range(len(s) - 1):
        denoised = denoise_at(denoise, x, s[i])
        report(callback, i, x, s[i], denoised)
        hist = [(s[i], to_d(x, s[i], denoised))] + hist[: order - 1]
        # integrate the Lagrange basis over [0, sigma_{i+1} - sigma_i] in shifted time
        w = poly_weights(0.0, s[i + 1] - s[i], [sj - s[i] for sj, _ in hist])
        x = x + sum(wj * ej for wj, (_, ej) in zip(w, hist))
    return x
