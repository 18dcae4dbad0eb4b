"""Step grids: ``get_sigmas(kind, n, ...)`` -> n+1 descending VE noise levels ending in 0.

The n steps go sigmas[i] -> sigmas[i+1]; the last one, sigma_min -> 0, is taken by every
sampler as "return the denoised estimate" (a first-order step in lambda; its local error is
O(sigma_min^2) for a smooth denoiser, so a small sigma_min makes it negligible). Multistep
samplers therefore make their last model call at sigma_min, never at a large noise level.

Kinds:
- ``karras``: sigma_i^(1/rho) uniform (Karras et al. 2022, eq. 5), option ``rho`` (7).
- ``loguniform``: uniform in log sigma, i.e. uniform in log-SNR (Lu et al. 2022's
  "logSNR" grid).
- ``uniform_t``: uniform in a schedule's native time (``schedule=`` a Schedule).
- ``flow_shift``: uniform in shifted flow time t' = s t / (1 + (s - 1) t) with
  t = sigma/(1+sigma) (Esser et al. 2024, SD3), option ``shift`` (3.0).
- ``linear``: uniform in sigma.

Recommended defaults (measured on three exact Gaussian mixtures of shape (8, 2, 16, 32),
unit-scale travelling-wave means, component std 0.15-0.3, x_T at sigma = 80; median
relative error to the exact ODE solution): ``deis`` (order 3) on a ``karras`` grid with
rho = 7 and sigma_min = 0.02 was the most robust at NFE 10 (2.1e-3 to 3.7e-3) and NFE 20
(1.4e-4 to 7.0e-4); ``unipc`` order 3 on ``loguniform`` with sigma_min 0.002-0.01 reached
2.0e-4 to 5.4e-4 at NFE 20 but 1.2e-2 to 3.3e-2 at NFE 10. The data-prediction multistep
methods (dpmpp_2m/3m, unipc) do better on ``loguniform`` than on ``karras`` grids: with few
Karras steps the large step-size ratios make their extrapolation unstable. sigma_min
trades the final jump's O(sigma_min^2) error against steps spent at tiny sigma; scale it
with the data (about 0.1 x the smallest data scale that matters).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .schedules import Schedule

__all__ = ["get_sigmas", "SIGMA_KINDS", "DEFAULT_SIGMA_MIN", "DEFAULT_SIGMA_MAX"]

DEFAULT_SIGMA_MIN = 0.02  # measured best for NFE 10-20 on unit-scale data (see above)
DEFAULT_SIGMA_MAX = 80.0
SIGMA_KINDS = ("karras", "loguniform", "uniform_t", "flow_shift", "linear")


def _karras(n: int, lo: float, hi: float, rho: float = 7.0) -> Tensor:
    """Karras et al. (2022) eq. 5 grid of n points from hi down to lo."""
    ramp = torch.linspace(0, 1, n, dtype=torch.float64)
    return (hi ** (1 / rho) + ramp * (lo ** (1 / rho) - hi ** (1 / rho))) ** rho


def _loguniform(n: int, lo: float, hi: float) -> Tensor:
    """n points uniform in log sigma (uniform half log-SNR)."""
    return torch.exp(torch.linspace(math.log(hi), math.log(lo), n, dtype=torch.float64))


def _uniform_t(n: int, lo: float, hi: float, schedule: Schedule | None = None) -> Tensor:
    """n points uniform in ``schedule``'s native time between the times of hi and lo."""
    if not isinstance(schedule, Schedule):
        raise ValueError(f"kind='uniform_t' needs schedule= a samplers Schedule, got {schedule!r}.")
    ends = schedule.t_of_sigma(torch.tensor([hi, lo], dtype=torch.float64))
    t = torch.linspace(float(ends[0]), float(ends[1]), n, dtype=torch.float64)
    s = schedule.sigma_ve(t)
    s[0], s[-1] = hi, lo  # exact ends despite interpolation round-off
    return s


def _flow_shift(n: int, lo: float, hi: float, shift: float = 3.0) -> Tensor:
    """n points uniform in unshifted flow time, then shifted as in SD3 (Esser et al. 2024)."""
    if shift <= 0:
        raise ValueError(f"shift={shift!r} must be positive.")

    def unshift(t: float) -> float:
        return t / (shift - (shift - 1) * t)

    u_hi, u_lo = unshift(hi / (1 + hi)), unshift(lo / (1 + lo))
    u = torch.linspace(u_hi, u_lo, n, dtype=torch.float64)
    t = shift * u / (1 + (shift - 1) * u)
    return t / (1 - t)


def _linear(n: int, lo: float, hi: float) -> Tensor:
    """n points uniform in sigma."""
    return torch.linspace(hi, lo, n, dtype=torch.float64)


_BUILDERS = {
    "karras": _karras, "loguniform": _loguniform, "uniform_t": _uniform_t,
    "flow_shift": _flow_shift, "linear": _linear,
}


def get_sigmas(
    kind: str,
    n: int,
    *,
    sigma_min: float = DEFAULT_SIGMA_MIN,
    sigma_max: float = DEFAULT_SIGMA_MAX,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float64,
    **opts,
) -> Tensor:
    """Grid of n steps: n+1 descending sigmas from sigma_max to sigma_min, then 0.

    ``opts`` are the kind's options (``rho`` for karras, ``schedule`` for uniform_t,
    ``shift`` for flow_shift). ``n = 1`` gives ``[sigma_max, 0]``.
    """
    if kind not in _BUILDERS:
        raise ValueError(f"sigma kind {kind!r} is unknown; allowed: {', '.join(SIGMA_KINDS)}.")
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n={n!r} steps is invalid; allowed: an integer >= 1.")
    if not (0 < sigma_min < sigma_max < math.inf):
        raise ValueError(
            f"sigma_min={sigma_min!r}, sigma_max={sigma_max!r} are invalid; "
            "allowed: 0 < sigma_min < sigma_max < inf."
        )
    if n == 1:
        body = torch.tensor([float(sigma_max)], dtype=torch.float64)
    else:
        try:
            body = _BUILDERS[kind](n, float(sigma_min), float(sigma_max), **opts)
        except TypeError as err:
            raise ValueError(f"bad option for sigma kind {kind!r}: {err}.") from None
    sigmas = torch.cat([body, body.new_zeros(1)])
    return sigmas.to(device=device, dtype=dtype)
