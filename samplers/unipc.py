"""UniPC (Zhao et al. 2023): unified predictor-corrector, B(h) = e^h - 1 (bh2), data prediction.

Each step from sigma_s to sigma_t runs the predictor UniP-p, evaluates the model at the
predicted point (this evaluation is reused by the next step, so the corrector is free) and
then the corrector UniC-p, which raises the order by one (Zhao et al. 2023, Thm. 3.3).
p = min(order, steps so far + 1). The step to sigma = 0 returns the denoised estimate of the
last model call (lambda = +inf). NFE on an n-step grid ending in 0: n (a grid ending at
sigma_min > 0 costs one more call, the final corrector's).
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
    grid,
    lam,
    register,
    report,
    solve_small,
)

__all__ = ["sample_unipc", "unipc_coeffs"]


def unipc_coeffs(h: float, rks: list[float]) -> tuple[list[float], list[float], float]:
    """(rho_p, rho_c, B(h)) of UniP/UniC with bh2 for history ratios ``rks`` (Zhao et al. 2023).

    Solves sum_k rho_k r_k^(i-1) = i! h phi_{i+1}(h) / B(h), i = 1..p, in the data-prediction
    sign convention (hh = -h); the predictor uses the history ratios, the corrector adds r = 1.
    """
    hh = -h
    b_h = math.expm1(hh)
    r_all = rks + [1.0]
    p = len(r_all)
    rows, rhs = [], []
    h_phi_k, fact = math.expm1(hh) / hh - 1.0, 1
    for i in range(1, p + 1):
        rows.append([r ** (i - 1) for r in r_all])
        rhs.append(h_phi_k * fact / b_h)
        fact *= i + 1
        h_phi_k = h_phi_k / hh - 1.0 / fact
    rho_c = solve_small(rows, rhs)
    rho_p = solve_small([r[:-1] for r in rows[:-1]], rhs[:-1]) if p > 1 else []
    return rho_p, rho_c, b_h


def _check_order(order: int) -> int:
    """Validate a UniPC order (1, 2 or 3)."""
    if order not in (1, 2, 3):
        raise ValueError(f"order={order!r} is not supported; allowed: 1, 2, 3.")
    return order


@register("unipc", nfe=lambda n, **o: n)
def sample_unipc(denoise: Denoiser, x: Tensor, sigmas: Tensor, *,
                 noise: Noise = None, callback: Callback = None,
                 order: int = 2) -> Tensor:
    """UniPC-p with bh2 (Zhao et al. 2023, Algorithms 2-3 in data prediction), p = ``order``."""
    s, order = grid(x, sigmas), _check_order(order)
    m0 = denoise_at(denoise, x, s[0])
    hist: list[tuple[float, Tensor]] = [(lam(s[0]), m0)]  # (lambda_j, D_j), newest first
    for i in range(len(s) - 1):
        report(callback, i, x, s[i], hist[0][1])
        if s[i + 1] == 0:
            return hist[0][1]
        (l0, m0), h = hist[0], lam(s[i + 1]) - hist[0][0]
        rks = [(lj - l0) / h for lj, _ in hist[1:]]
        rho_p, rho_c, b_h = unipc_coeffs(h, rks)
        # sum_k w_k (D_k - D_0)/r_k expanded into weights on the D_k themselves, so a step is
        # a handful of fused axpys (no difference tensors): low per-step overhead
        c_p = [-b_h * w / r for w, r in zip(rho_p, rks)]
        c_c = [-b_h * w / r for w, r in zip(rho_c, rks)]
        c_t = -b_h * rho_c[-1]  # weight of D_t - D_0 (r = 1)
        a, e = s[i + 1] / s[i], math.expm1(-h)  # x_lin = a x - e D_0 (DPM-Solver++(1))
        past = [mj for _, mj in hist[1:]]
        x_pred = combine(a * x, [-e - sum(c_p)] + c_p, [m0] + past)
        m_t = denoise_at(denoise, x_pred, s[i + 1])
        x = combine(a * x, [-e - sum(c_c) - c_t] + c_c + [c_t], [m0] + past + [m_t])
        hist = [(lam(s[i + 1]), m_t)] + hist[: order - 1]
    return x
