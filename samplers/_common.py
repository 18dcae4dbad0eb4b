"""Shared pieces of every sampler: the registry, NFE counts, denoiser calls, noise, checks.

Noise (SDE samplers only). ``noise`` may be
- ``None``: ``torch.randn`` with the global generator (not reproducible per sample);
- a ``torch.Generator``: draws the whole batch from it (reproducible, batch dependent);
- a tensor of shape ``(n_steps, *x.shape)``: ``noise[i]`` is the draw of step ``i``;
- a callable ``noise(i, shape) -> Tensor`` returning the standard normal draw of step ``i``;
  :func:`seeded_noise` builds one from per-sample seeds, so sample ``b`` depends only on
  its own seed and never on the batch it is in.
Each step of an SDE sampler draws at most once, with its step index ``i``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

Denoiser = Callable[[Tensor, Tensor], Tensor]
# the ``noise`` argument of SDE samplers (see the module docstring) and the per-step callback
Noise = torch.Generator | Tensor | Callable[[int, Sequence[int]], Tensor] | None
Callback = Callable[[dict], None] | None
SAMPLERS: dict[str, Callable[..., Tensor]] = {}

_MIX_A, _MIX_B = 0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9  # odd 64-bit constants (splitmix)


def register(name: str, nfe: Callable[..., int | None], stochastic: bool = False):
    """Decorator: add a sampler to ``SAMPLERS`` with its NFE rule ``nfe(n, **opts)``."""

    def wrap(fn):
        fn.sampler_name, fn.nfe, fn.stochastic = name, nfe, stochastic
        SAMPLERS[name] = fn
        return fn

    return wrap


def nfe(name: str, n: int, **opts) -> int | None:
    """Denoiser calls of sampler ``name`` on an n-step grid ending in 0 (None: adaptive).

    A grid ending at sigma_min > 0 costs the same, except unipc (+1, the final corrector's
    call) and the 2-stage methods (heun, dpm_solver_2/3, dpmpp_2s, rf_heun, rf_midpoint),
    whose last step is then a full step too.
    """
    return get_sampler(name).nfe(n, **opts)


def steps_for_nfe(name: str, target_nfe: int, **opts) -> int:
    """Largest step count n whose NFE (grid ending in 0) is at most ``target_nfe``."""
    if nfe(name, 1, **opts) is None:
        raise ValueError(f"sampler {name!r} is adaptive; its NFE is not set by the step count.")
    n = 1
    while nfe(name, n + 1, **opts) <= target_nfe:
        n += 1
    return n


def get_sampler(name: str) -> Callable[..., Tensor]:
    """The sampler function called ``name``; ValueError listing the valid names otherwise."""
    if name not in SAMPLERS:
        raise ValueError(f"sampler {name!r} is unknown; allowed: {', '.join(sorted(SAMPLERS))}.")
    return SAMPLERS[name]


def sample(name: str, denoise: Denoiser, x: Tensor, sigmas: Tensor, **kw) -> Tensor:
    """Run the sampler called ``name`` (see ``SAMPLERS``) with the common contract."""
    return get_sampler(name)(denoise, x, sigmas, **kw)


def grid(x: Tensor, sigmas: Tensor) -> list[float]:
    """Check x (rank >= 2) and sigmas (1-D, descending, >= 0) and return sigmas as floats."""
    if not isinstance(x, Tensor) or x.ndim < 2:
        raise ValueError(f"x must be a tensor of rank >= 2 (B, ...), got shape "
                         f"{getattr(x, 'shape', None)}.")
    s = torch.as_tensor(sigmas).detach().flatten().tolist()
    if torch.as_tensor(sigmas).ndim != 1 or len(s) < 2:
        raise ValueError("sigmas must be a 1-D tensor with at least 2 entries.")
    if any(b >= a for a, b in zip(s, s[1:])) or s[-1] < 0 or not math.isfinite(s[0]):
        raise ValueError(f"sigmas must be finite, strictly descending and >= 0, got {s}.")
    return s


def denoise_at(denoise: Denoiser, x: Tensor, sigma: float) -> Tensor:
    """Call the denoiser with sigma as a (B,) tensor of x's dtype and device."""
    return denoise(x, x.new_full((x.shape[0],), sigma))


def to_d(x: Tensor, sigma: float, denoised: Tensor) -> Tensor:
    """ODE derivative dx/dsigma = (x - x0_hat)/sigma = eps_hat (Karras et al. 2022, eq. 4)."""
    return (x - denoised) / sigma


def lam(sigma: float) -> float:
    """Half log-SNR lambda = -log(sigma_ve) (+inf at sigma = 0)."""
    return -math.log(sigma) if sigma > 0 else math.inf


def expm1_neg(h: float) -> float:
    """1 - exp(-h), exact for small h (coefficient of x0 in a first-order step)."""
    return -math.expm1(-h)


def report(callback, i: int, x: Tensor, sigma: float, denoised: Tensor, **extra) -> None:
    """Send the per-step dict(i, x, sigma, denoised, ...) to the callback, if any."""
    if callback is not None:
        callback(dict(i=i, x=x, sigma=sigma, denoised=denoised, **extra))


def seeded_noise(seeds: Sequence[int]) -> Callable[[int, Sequence[int]], Tensor]:
    """Per-sample seeded noise: draw ``b`` of step ``i`` depends only on (seeds[b], i).

    Draws are float64 on the CPU (identical on every device), cast by the sampler.
    """
    seeds = [int(s) for s in seeds]

    def draw(i: int, shape: Sequence[int]) -> Tensor:
        if shape[0] != len(seeds):
            raise ValueError(f"batch size {shape[0]} does not match {len(seeds)} seeds.")
        out = []
        for s in seeds:
            g = torch.Generator().manual_seed((s * _MIX_A + (i + 1) * _MIX_B) % (2**63))
            out.append(torch.randn(tuple(shape[1:]), generator=g, dtype=torch.float64))
        return torch.stack(out)  # (B, ...)

    return draw


def noise_source(noise, x: Tensor) -> Callable[[int], Tensor]:
    """Turn the ``noise`` argument (see module docstring) into ``draw(i) -> Tensor like x``."""
    if noise is None:
        return lambda i: torch.randn_like(x)
    if isinstance(noise, torch.Generator):
        return lambda i: torch.randn(x.shape, generator=noise, device=noise.device,
                                     dtype=x.dtype).to(x.device)
    if isinstance(noise, Tensor):
        if noise.shape[1:] != x.shape:
            raise ValueError(f"noise tensor shape {tuple(noise.shape)} must be "
                             f"(n_steps, *{tuple(x.shape)}).")
        return lambda i: noise[i].to(x)
    if callable(noise):
        return lambda i: torch.as_tensor(noise(i, tuple(x.shape))).to(x)
    raise ValueError(f"noise={noise!r} is not supported; allowed: None, a torch.Generator, "
                     "a tensor (n_steps, *x.shape) or a callable noise(i, shape).")


def bcast(c: Tensor, x: Tensor) -> Tensor:
    """Reshape a per-sample (B,) tensor to (B, 1, ..., 1) to broadcast against x."""
    return c.reshape(c.shape + (1,) * (x.ndim - c.ndim))  # (B, 1, ..., 1)


def psi(k: int, h: float) -> float:
    """phi-type integral exp(-h) * int_0^h exp(tau) tau^k / k! dtau (Hochbruck & Ostermann 2010)."""
    if h == math.inf:
        return math.inf if k > 0 else 1.0
    if h < 1.0:  # alternating series sum_m (-1)^m h^(k+1+m)/(k+1+m)!, no cancellation
        term = h ** (k + 1) / math.factorial(k + 1)
        out, m = term, 0
        while abs(term) > 1e-18 * abs(out):
            term *= -h / (k + 2 + m)
            out, m = out + term, m + 1
        return out
    out = -math.expm1(-h)  # k = 0
    for j in range(1, k + 1):
        out = h**j / math.factorial(j) - out
    return out


def lagrange_coeffs(nodes: Sequence[float]) -> list[list[float]]:
    """Monomial coefficients [c0, c1, ...] of each Lagrange basis polynomial on ``nodes``."""
    basis = []
    for j, tj in enumerate(nodes):
        poly = [1.0]
        for m, tm in enumerate(nodes):
            if m != j:  # multiply poly by (tau - tm)/(tj - tm)
                shifted = [0.0] + poly
                poly = [(a - tm * b) / (tj - tm) for a, b in zip(shifted, poly + [0.0])]
        basis.append(poly)
    return basis


def exp_weights(h: float, nodes: Sequence[float]) -> list[float]:
    """Weights w_j = int_0^h exp(tau - h) l_j(tau) dtau of the Lagrange basis on ``nodes``.

    The exponential Adams-Bashforth rule in lambda for the data prediction (Lu et al. 2022b;
    Hochbruck & Ostermann 2010): x_t = (sigma_t/sigma_s) x_s + sum_j w_j D_j, with node
    offsets tau_j = lambda_j - lambda_s.
    """
    moments = [math.factorial(k) * psi(k, h) for k in range(len(nodes))]
    return [sum(c * mk for c, mk in zip(poly, moments)) for poly in lagrange_coeffs(nodes)]


def poly_weights(a: float, b: float, nodes: Sequence[float]) -> list[float]:
    """Weights w_j = int_a^b l_j(s) ds of the Lagrange basis on ``nodes`` (Adams-Bashforth)."""
    return [sum(c * (b ** (k + 1) - a ** (k + 1)) / (k + 1) for k, c in enumerate(poly))
            for poly in lagrange_coeffs(nodes)]


def solve_small(a: list[list[float]], b: list[float]) -> list[float]:
    """Solve a tiny dense system a x = b by Gaussian elimination with partial pivoting."""
    n = len(b)
    m = [row[:] + [bi] for row, bi in zip(a, b)]  # augmented (n, n+1)
    for c in range(n):
        p = max(range(c, n), key=lambda r: abs(m[r][c]))
        m[c], m[p] = m[p], m[c]
        for r in range(c + 1, n):
            f = m[r][c] / m[c][c]
            m[r] = [v - f * w for v, w in zip(m[r], m[c])]
    x = [0.0] * n
    for r in reversed(range(n)):
        x[r] = (m[r][n] - sum(m[r][k] * x[k] for k in range(r + 1, n))) / m[r][r]
    return x


def combine(x: Tensor, weights: Sequence[float], terms: Sequence[Tensor]) -> Tensor:
    """x + sum_j weights[j] * terms[j], one fused add per term (low per-step overhead)."""
    for w, t in zip(weights, terms):
        x = torch.add(x, t, alpha=w)
    return x
