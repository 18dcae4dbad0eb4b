"""Noise schedules: ``x_t = alpha(t) x0 + sigma(t) eps`` in a model's native time ``t``.

Every schedule converts to the one coordinate system the samplers use, variance exploding
``x = x_t / alpha = x0 + sigma_ve eps`` with ``sigma_ve = sigma(t) / alpha(t)``, and to the
half log-SNR ``lambda = log(alpha / sigma) = -log(sigma_ve)`` (Lu et al. 2022).
All methods take and return tensors (any shape, dtype and device of ``t``).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import torch
from torch import Tensor

__all__ = [
    "Schedule", "VPLinear", "VPCosine", "VPDiscrete", "VE", "EDM", "RectifiedFlow",
    "SCHEDULES", "discrete_betas",
]


def _derivative(f, t: Tensor) -> Tensor:
    """Elementwise derivative df/dt by autograd (f acts elementwise)."""
    with torch.enable_grad():
        t_ = t.detach().clone().requires_grad_(True)
        y = f(t_)
        if not y.requires_grad:  # constant in t (e.g. alpha = 1)
            return torch.zeros_like(t)
        (g,) = torch.autograd.grad(y.sum(), t_)
    return g


class Schedule(ABC):
    """Base class: subclasses define ``alpha``, ``sigma`` and ``t_of_sigma`` (VE sigma -> t)."""

    t_min: float = 0.0  # smallest native time the schedule is defined for
    t_max: float = 1.0  # largest native time (pure noise end)

    @abstractmethod
    def alpha(self, t: Tensor) -> Tensor:
        """Signal scale alpha(t)."""

    @abstractmethod
    def sigma(self, t: Tensor) -> Tensor:
        """Noise scale sigma(t) in native coordinates."""

    @abstractmethod
    def t_of_sigma(self, sigma_ve: Tensor) -> Tensor:
        """Native time at which sigma(t)/alpha(t) equals ``sigma_ve``."""

    def sigma_ve(self, t: Tensor) -> Tensor:
        """Variance-exploding noise level sigma(t)/alpha(t)."""
        return self.sigma(t) / self.alpha(t)

    def alpha_of_sigma(self, sigma_ve: Tensor) -> Tensor:
        """Signal scale alpha at VE noise level ``sigma_ve``."""
        return self.alpha(self.t_of_sigma(sigma_ve))

    def lambda_(self, t: Tensor) -> Tensor:
        """Half log-SNR lambda(t) = log(alpha/sigma) (Lu et al. 2022)."""
        return -torch.log(self.sigma_ve(t))

    def t_of_lambda(self, lam: Tensor) -> Tensor:
        """Native time with half log-SNR ``lam``."""
        return self.t_of_sigma(torch.exp(-lam))

    def d_alpha(self, t: Tensor) -> Tensor:
        """d alpha / dt (autograd unless overridden)."""
        return _derivative(self.alpha, t)

    def d_sigma(self, t: Tensor) -> Tensor:
        """d sigma / dt (autograd unless overridden)."""
        return _derivative(self.sigma, t)

    @property
    def sigma_min(self) -> float:
        """VE noise level at ``t_min``."""
        return float(self.sigma_ve(torch.tensor(self.t_min, dtype=torch.float64)))

    @property
    def sigma_max(self) -> float:
        """VE noise level at ``t_max``."""
        return float(self.sigma_ve(torch.tensor(self.t_max, dtype=torch.float64)))


class _VP(Schedule):
    """Variance preserving: sigma = sqrt(1 - alpha^2); subclasses give log alpha and its inverse."""

    @abstractmethod
    def log_alpha(self, t: Tensor) -> Tensor:
        """log alpha(t)."""

    @abstractmethod
    def t_of_log_alpha(self, log_alpha: Tensor) -> Tensor:
        """Inverse of ``log_alpha``."""

    def alpha(self, t: Tensor) -> Tensor:
        return torch.exp(self.log_alpha(t))

    def sigma(self, t: Tensor) -> Tensor:
        return torch.sqrt(-torch.expm1(2.0 * self.log_alpha(t)))

    def t_of_sigma(self, sigma_ve: Tensor) -> Tensor:
        # alpha = 1/sqrt(1 + sigma_ve^2) for a VP path
        return self.t_of_log_alpha(-0.5 * torch.log1p(sigma_ve**2))


@dataclass(frozen=True)
class VPLinear(_VP):
    """VP SDE with linear beta(t) (Song et al. 2021; Ho et al. 2020 in the continuous limit)."""

    beta_min: float = 0.1  # beta(0)
    beta_max: float = 20.0  # beta(1)
    t_min: float = 1e-3  # smallest time used for sampling (Song et al.)
    t_max: float = 1.0

    def log_alpha(self, t: Tensor) -> Tensor:
        """log alpha = -(beta_max - beta_min) t^2 / 4 - beta_min t / 2."""
        return -0.25 * t**2 * (self.beta_max - self.beta_min) - 0.5 * t * self.beta_min

    def t_of_log_alpha(self, log_alpha: Tensor) -> Tensor:
        """Positive root of the quadratic log alpha(t) = log_alpha."""
        a, b = 0.25 * (self.beta_max - self.beta_min), 0.5 * self.beta_min
        # root of a t^2 + b t + log_alpha = 0 (log_alpha <= 0), written without cancellation
        return -2.0 * log_alpha / (b + torch.sqrt(b * b - 4.0 * a * log_alpha))


@dataclass(frozen=True)
class VPCosine(_VP):
    """VP with the cosine alpha-bar of Nichol & Dhariwal (2021), continuous time in [0, 1]."""

    s: float = 0.008  # offset that keeps beta small near t = 0
    t_min: float = 0.0
    t_max: float = 0.9946  # Lu et al. (2022) stop here: alpha(1) = 0 gives sigma_ve = inf

    def _scale(self) -> float:
        return math.cos(self.s / (1.0 + self.s) * math.pi / 2)

    def log_alpha(self, t: Tensor) -> Tensor:
        """log alpha = log(cos((t + s)/(1 + s) pi/2) / cos(s/(1 + s) pi/2))."""
        return torch.log(torch.cos((t + self.s) / (1.0 + self.s) * math.pi / 2) / self._scale())

    def t_of_log_alpha(self, log_alpha: Tensor) -> Tensor:
        """Inverse of the cosine log alpha."""
        angle = torch.acos(torch.exp(log_alpha) * self._scale())
        return angle * (2.0 / math.pi) * (1.0 + self.s) - self.s


def discrete_betas(beta_schedule: str, beta_start: float, beta_end: float, n: int) -> Tensor:
    """diffusers' beta tables (``linear``, ``scaled_linear``, ``squaredcos_cap_v2``) in float64."""
    if beta_schedule == "linear":
        return torch.linspace(beta_start, beta_end, n, dtype=torch.float64)
    if beta_schedule == "scaled_linear":
        return torch.linspace(beta_start**0.5, beta_end**0.5, n, dtype=torch.float64) ** 2
    if beta_schedule == "squaredcos_cap_v2":
        # Nichol & Dhariwal (2021) eq. 17 with beta clipped at 0.999
        i = torch.arange(n + 1, dtype=torch.float64) / n
        abar = torch.cos((i + 0.008) / 1.008 * math.pi / 2) ** 2
        return torch.clamp(1.0 - abar[1:] / abar[:-1], max=0.999)
    raise ValueError(
        f"beta_schedule={beta_schedule!r} is not supported; "
        "allowed: 'linear', 'scaled_linear', 'squaredcos_cap_v2'."
    )


@dataclass(frozen=True)
class VPDiscrete(Schedule):
    """Discrete DDPM schedule (Ho et al. 2020) with continuous time t in [0, N-1].

    Between integer timesteps, log sigma_ve is interpolated linearly (k-diffusion style), so
    ``t_of_sigma`` returns fractional timesteps; at integers it is exact.
    """

    beta_schedule: str = "scaled_linear"  # diffusers' name of the beta table
    beta_start: float = 0.00085
    beta_end: float = 0.012
    num_train_timesteps: int = 1000
    log_sigmas: Tensor = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        betas = discrete_betas(self.beta_schedule, self.beta_start, self.beta_end,
                               self.num_train_timesteps)
        abar = torch.cumprod(1.0 - betas, dim=0)
        object.__setattr__(self, "log_sigmas", 0.5 * torch.log((1.0 - abar) / abar))

    @property
    def t_min(self) -> float:  # type: ignore[override]
        return 0.0

    @property
    def t_max(self) -> float:  # type: ignore[override]
        return float(self.num_train_timesteps - 1)

    @property
    def alphas_cumprod(self) -> Tensor:
        """alpha-bar_k for k = 0..N-1, as implied by the VE sigmas (float64)."""
        return 1.0 / (1.0 + torch.exp(2.0 * self.log_sigmas))

    def sigma_ve(self, t: Tensor) -> Tensor:
        """sigma_ve by linear interpolation of log sigma between integer timesteps."""
        ls = self.log_sigmas.to(t.device, t.dtype)
        t = t.clamp(0, self.num_train_timesteps - 1)
        lo = t.floor().long().clamp(max=self.num_train_timesteps - 2)
        w = t - lo
        return torch.exp((1 - w) * ls[lo] + w * ls[lo + 1])

    def t_of_sigma(self, sigma_ve: Tensor) -> Tensor:
        """Fractional timestep of ``sigma_ve`` (clamped to [0, N-1])."""
        ls = self.log_sigmas.to(sigma_ve.device, sigma_ve.dtype)
        logs = torch.log(sigma_ve).clamp(ls[0], ls[-1])
        hi = torch.searchsorted(ls, logs.contiguous()).clamp(1, len(ls) - 1)
        lo = hi - 1
        w = (logs - ls[lo]) / (ls[hi] - ls[lo])
        return lo.to(sigma_ve.dtype) + w

    def alpha(self, t: Tensor) -> Tensor:
        return torch.rsqrt(1.0 + self.sigma_ve(t) ** 2)

    def alpha_of_sigma(self, sigma_ve: Tensor) -> Tensor:
        """Exact VP scale 1/sqrt(1 + sigma^2), also beyond the trained sigma range."""
        return torch.rsqrt(1.0 + sigma_ve**2)

    def sigma(self, t: Tensor) -> Tensor:
        s = self.sigma_ve(t)
        return s * torch.rsqrt(1.0 + s**2)


@dataclass(frozen=True)
class VE(Schedule):
    """Variance exploding SDE (Song et al. 2021): alpha = 1, sigma = s_min (s_max/s_min)^t."""

    s_min: float = 0.01  # sigma at t = 0
    s_max: float = 50.0  # sigma at t = 1
    t_min: float = 0.0
    t_max: float = 1.0

    def alpha(self, t: Tensor) -> Tensor:
        return torch.ones_like(t)

    def sigma(self, t: Tensor) -> Tensor:
        return self.s_min * (self.s_max / self.s_min) ** t

    def t_of_sigma(self, sigma_ve: Tensor) -> Tensor:
        return torch.log(sigma_ve / self.s_min) / math.log(self.s_max / self.s_min)


@dataclass(frozen=True)
class EDM(Schedule):
    """EDM (Karras et al. 2022): alpha = 1, sigma = t, so native time is the VE sigma."""

    t_min: float = 0.002
    t_max: float = 80.0

    def alpha(self, t: Tensor) -> Tensor:
        return torch.ones_like(t)

    def sigma(self, t: Tensor) -> Tensor:
        return t

    def t_of_sigma(self, sigma_ve: Tensor) -> Tensor:
        return sigma_ve


@dataclass(frozen=True)
class RectifiedFlow(Schedule):
    """Rectified flow / linear flow matching (Liu et al. 2023): x_t = (1-t) x0 + t eps."""

    t_min: float = 0.0
    t_max: float = 1.0 - 1e-3  # sigma_ve = t/(1-t) is infinite at t = 1

    def alpha(self, t: Tensor) -> Tensor:
        return 1.0 - t

    def sigma(self, t: Tensor) -> Tensor:
        return t

    def t_of_sigma(self, sigma_ve: Tensor) -> Tensor:
        return sigma_ve / (1.0 + sigma_ve)

    def d_alpha(self, t: Tensor) -> Tensor:
        return -torch.ones_like(t)

    def d_sigma(self, t: Tensor) -> Tensor:
        return torch.ones_like(t)


SCHEDULES = {
    "vp_linear": VPLinear,
    "vp_cosine": VPCosine,
    "vp_discrete": VPDiscrete,
    "ve": VE,
    "edm": EDM,
    "flow": RectifiedFlow,
}
