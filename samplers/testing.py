"""Exact test problems for samplers: Gaussian data and Gaussian mixtures in VE coordinates.

For data x0 ~ p, the noisy x = x0 + sigma eps has an exact denoiser E[x0 | x] and an exact
probability-flow ODE dx/dsigma = (x - D(x, sigma))/sigma (Song et al. 2021; Karras et al.
2022, eq. 4).

- :class:`GaussianProblem`: x0 ~ N(mu, s^2 I); D and the ODE solution are closed form:
  x(sigma) = mu + (x_T - mu) sqrt(s^2 + sigma^2) / sqrt(s^2 + sigma_T^2).
- :class:`GaussianMixture`: K components with isotropic or diagonal covariances; D is the
  posterior-weighted mean of the component posteriors (log-sum-exp weights). Its reference
  ODE solution integrates dx/du = x - D(x, e^u) in u = log sigma with scipy's DOP853
  (rtol = atol = 1e-10, float64) down to sigma = 1e-7, then applies D (error O(1e-14)).
  scipy is imported inside that method only, so ``import samplers`` stays torch-only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = ["GaussianProblem", "GaussianMixture", "travelling_wave_mixture", "relative_error"]


def relative_error(x: Tensor, ref: Tensor) -> Tensor:
    """Per-sample relative L2 error ||x - ref|| / ||ref||, shape (B,)."""
    d = (x - ref).flatten(1).double().norm(dim=1)
    return d / ref.flatten(1).double().norm(dim=1)


class GaussianProblem:
    """Data N(mu, std^2 I) with ``mu`` shaped like one sample; exact denoiser and ODE flow."""

    def __init__(self, mu: Tensor, std: float = 1.0):
        self.mu, self.std = mu, float(std)

    def _b(self, sigma: Tensor, x: Tensor) -> Tensor:
        return torch.as_tensor(sigma, dtype=x.dtype, device=x.device).reshape(
            -1, *([1] * (x.ndim - 1)))  # (B, 1, ..., 1)

    def denoise(self, x: Tensor, sigma: Tensor) -> Tensor:
        """E[x0 | x] = mu + s^2/(s^2 + sigma^2) (x - mu)."""
        mu, var = self.mu.to(x), self.std**2
        return mu + var / (var + self._b(sigma, x) ** 2) * (x - mu)

    def ode_solution(self, x_T: Tensor, sigma_T: float, sigma: float) -> Tensor:
        """Exact probability-flow ODE solution at ``sigma`` from x_T at ``sigma_T``."""
        mu, var = self.mu.to(x_T), self.std**2
        return mu + (x_T - mu) * math.sqrt((var + sigma**2) / (var + sigma_T**2))

    def prior(self, batch: int, sigma_T: float, generator: torch.Generator | None = None,
              dtype: torch.dtype = torch.float64) -> Tensor:
        """Draw x_T ~ N(mu, (s^2 + sigma_T^2) I), shape (batch, *mu.shape)."""
        z = torch.randn((batch, *self.mu.shape), generator=generator, dtype=dtype)
        return self.mu.to(dtype) + math.sqrt(self.std**2 + sigma_T**2) * z


class GaussianMixture:
    """Mixture of K Gaussians N(means[k], diag(stds[k]^2)); ``stds`` is (K,) or like ``means``."""

    def __init__(self, means: Tensor, stds: Tensor, weights: Tensor | None = None):
        k = means.shape[0]
        self.shape = tuple(means.shape[1:])
        self.means = means.reshape(k, -1).double()  # (K, D)
        stds = torch.as_tensor(stds, dtype=torch.float64)
        self.var = (stds.reshape(k, -1) ** 2).expand_as(self.means)  # (K, D)
        w = torch.ones(k, dtype=torch.float64) if weights is None else torch.as_tensor(weights)
        self.log_w = torch.log(w.double() / w.sum())

    def denoise(self, x: Tensor, sigma: Tensor) -> Tensor:
        """Exact E[x0 | x]: responsibilities by log-sum-exp, then component posterior means."""
        b = x.shape[0]
        xf = x.reshape(b, 1, -1)  # (B, 1, D)
        m, v = self.means.to(x), self.var.to(x)
        s2 = torch.as_tensor(sigma, dtype=x.dtype, device=x.device).reshape(-1, 1, 1) ** 2
        tot = v + s2  # (B, K, D) covariance of x under each component
        logp = -0.5 * (((xf - m) ** 2) / tot + torch.log(tot)).sum(-1) + self.log_w.to(x)
        r = torch.softmax(logp, dim=1).unsqueeze(-1)  # (B, K, 1)
        post = m + v / tot * (xf - m)  # (B, K, D)
        return (r * post).sum(1).reshape(x.shape)

    def sample_data(self, batch: int, generator: torch.Generator | None = None) -> Tensor:
        """Draw x0 from the mixture, shape (batch, *shape), float64."""
        k = torch.multinomial(self.log_w.exp(), batch, replacement=True, generator=generator)
        z = torch.randn((batch, self.means.shape[1]), generator=generator, dtype=torch.float64)
        return (self.means[k] + self.var[k].sqrt() * z).reshape(batch, *self.shape)

    def prior(self, batch: int, sigma_T: float, generator: torch.Generator | None = None,
              dtype: torch.dtype = torch.float64) -> Tensor:
        """Draw x_T = x0 + sigma_T eps (the exact noisy marginal), shape (batch, *shape)."""
        x0 = self.sample_data(batch, generator)
        eps = torch.randn(x0.shape, generator=generator, dtype=torch.float64)
        return (x0 + sigma_T * eps).to(dtype)

    def ode_solution(self, x_T: Tensor, sigma_T: float, sigma: float = 0.0,
                     rtol: float = 1e-10, atol: float = 1e-10) -> Tensor:
        """Reference probability-flow ODE solution at ``sigma`` (scipy DOP853 in log sigma)."""
        from scipy.integrate import solve_ivp  # lazy: keeps the package torch-only

        b = x_T.shape[0]
        sigma_end = max(sigma, 1e-7)

        def rhs(u, y):
            x = torch.from_numpy(y).reshape(b, -1)  # (B, D)
            d = self.denoise(x, torch.full((b,), math.exp(u), dtype=torch.float64))
            return (x - d).reshape(-1).numpy()

        y0 = x_T.detach().double().cpu().reshape(-1).numpy()
        sol = solve_ivp(rhs, (math.log(sigma_T), math.log(sigma_end)), y0, method="DOP853",
                        rtol=rtol, atol=atol)
        if not sol.success:
            raise RuntimeError(f"reference ODE solve failed: {sol.message}")
        x = torch.from_numpy(sol.y[:, -1]).reshape(b, -1)  # (B, D)
        if sigma == 0:
            x = self.denoise(x, torch.full((b,), sigma_end, dtype=torch.float64))
        return x.reshape(x_T.shape).to(x_T)


def travelling_wave_mixture(shape: Sequence[int] = (2, 16, 32), k: int = 4,
                            std: float = 0.2, seed: int = 0) -> GaussianMixture:
    """PDE-like mixture: component means are smooth travelling waves u(c, t, x), shape ``shape``.

    Mean k, channel c: a_k sin(2 pi (f_k x - v_k t) + phi_k + c pi/2) on (t, x) in [0,1)^2
    (remaining axes, if any, broadcast); isotropic std ``std``; equal weights.
    """
    g = torch.Generator().manual_seed(seed)
    c_ax = torch.arange(shape[0], dtype=torch.float64).reshape(-1, *[1] * (len(shape) - 1))
    t = torch.linspace(0, 1, shape[1] + 1, dtype=torch.float64)[:-1] if len(shape) > 2 else 0.0
    x = torch.linspace(0, 1, shape[-1] + 1, dtype=torch.float64)[:-1]
    t = t.reshape(-1, *[1] * (len(shape) - 2)) if len(shape) > 2 else t  # (T, 1, ..)
    means = []
    for _ in range(k):
        a, f, v, phi = (torch.rand(4, generator=g, dtype=torch.float64) * torch.tensor(
            [1.0, 2.0, 1.0, 2 * math.pi], dtype=torch.float64)).tolist()
        wave = (0.5 + a) * torch.sin(2 * math.pi * ((1 + round(f)) * x - v * t) + phi
                                     + c_ax * math.pi / 2)
        means.append(wave.expand(*shape))
    return GaussianMixture(torch.stack(means), torch.full((k,), std, dtype=torch.float64))
