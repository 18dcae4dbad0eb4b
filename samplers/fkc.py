"""Feynman-Kac correctors: SMC over K particles per output for guided, product and annealed targets.

After Skreta et al. 2025, "Feynman-Kac Correctors in Diffusion: Annealing, Guidance, and
Product of Experts". The target is a geometric combination of experts with an optional reward
tilt, ``q(x0) ∝ prod_k p_k(x0)^beta_k * exp(lam * r(x0))``; its noisy marginals are taken as
``q_u ∝ prod_k p_k,u^beta_k * exp(lam * r(x0_bar(x, u)))`` with ``u = sigma^2``.

Derivation (VE, variance-exploding, ``x = x0 + sigma eps``). Index sampling time so that
``u = sigma^2`` decreases at rate ``gamma = -du/dt = g^2``. Each ``p_k,u`` solves the heat
equation ``d_u p = (1/2) lap p``. Particles follow the reverse SDE of the target's score,
``dx = gamma b dt + sqrt(gamma) dW`` with ``b = sum_k beta_k s_k``, ``s_k = grad log p_k,u =
(x0_k - x) / sigma^2``. A weighted particle measure with ``d log w = G dt`` tracks ``q`` when
``G = d_t log q + (gamma/2)(lap log q + |grad log q|^2)`` (Fokker-Planck + Feynman-Kac). With
``d_t log p_k = -(gamma/2)(lap log p_k + |s_k|^2)`` the Laplacians cancel, leaving

    G = (gamma/2) (|sum_k beta_k s_k|^2 - sum_k beta_k |s_k|^2),

i.e. per step ``Delta log w = (Delta u / 2) R``. Special cases: CFG ``p_c^w p_u^(1-w)`` gives
``(gamma/2) w (w-1) |s_c - s_u|^2``; a product ``p1 p2`` gives ``gamma s1.s2``; annealing
``p^beta`` gives ``(gamma/2) beta (beta-1) |s|^2``. We evaluate ``R`` in the cancellation-free
form ``R = (B-1)|d_bar|^2 - sum_k beta_k |d_k - d_bar|^2`` over ``sigma^4`` with ``d_k = x0_k - x``,
``d_bar = sum_k beta_k d_k``, ``B = sum_k beta_k``. The reward tilt is a twisted-SMC potential
(Wu et al. 2023, "Practical and Asymptotically Exact Conditional Sampling in Diffusion Models"):
its increments ``lam (r(x0_bar_{i+1}) - r(x0_bar_i))`` telescope to ``lam r(x0)`` at the end.

Moves use SDE-DPM-Solver++(2M) (Lu et al. 2022) on the target's x0 ``x + sigma^2 b``: the
DDPM posterior step (mean ``x + Delta u b``) plus a multistep correction, which removes the
O(1/n) variance deficit of the first-order step (measured: N(0.5, 1) data, 50 steps, variance
0.83 first order vs 1.00); the last step to ``sigma = 0`` is deterministic. The start
``q_T ≈ N(0, sigma_0^2 / B)`` (every ``p_k,T`` is close to ``N(0, sigma_0^2)``; use a
``sigma_0`` far above the data scale, e.g. 80), so initial particles are scaled by ``1/sqrt(B)``.
Resampling is systematic (Kitagawa 1996), per output, when ESS/K < threshold.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import torch
from torch import Tensor

from ._common import Denoiser, grid, register, report

__all__ = ["FKCTarget", "sample_fkc", "systematic_resample", "effective_sample_size"]

Reward = Callable[[Tensor], Tensor]


@dataclass(frozen=True)
class FKCTarget:
    """Target ``prod_k p_k^beta_k * exp(reward_scale * reward_fn(x0))`` for :func:`sample_fkc`."""

    experts: tuple[Denoiser, ...]  # denoisers of the p_k
    exponents: tuple[float, ...]  # beta_k, one per expert; their sum must be > 0
    reward_fn: Reward | None = None  # r(x0) -> (N,), a log-potential per sample
    reward_scale: float = 0.0  # lam

    def __post_init__(self) -> None:
        if len(self.experts) == 0 or len(self.experts) != len(self.exponents):
            raise ValueError(f"FKCTarget needs one exponent per expert, got {len(self.experts)} "
                             f"experts and exponents {self.exponents}.")
        if sum(self.exponents) <= 0:
            raise ValueError(f"FKCTarget exponents {self.exponents} must have a positive sum.")

    @classmethod
    def geometric(cls, experts: Sequence[Denoiser], exponents: Sequence[float]) -> FKCTarget:
        """Geometric combination prod_k p_k^beta_k of denoisers' data distributions."""
        return cls(tuple(experts), tuple(float(b) for b in exponents))

    @classmethod
    def cfg(cls, denoise_cond: Denoiser, denoise_uncond: Denoiser, w: float) -> FKCTarget:
        """Classifier-free-guided target p_c^w p_u^(1-w)."""
        return cls.geometric((denoise_cond, denoise_uncond), (w, 1.0 - w))

    @classmethod
    def product(cls, *denoisers: Denoiser) -> FKCTarget:
        """Product of experts p_1 p_2 ... p_n."""
        return cls.geometric(denoisers, [1.0] * len(denoisers))

    @classmethod
    def anneal(cls, denoise: Denoiser, beta: float) -> FKCTarget:
        """Temperature-annealed target p^beta."""
        return cls.geometric((denoise,), (beta,))

    @classmethod
    def reward(cls, denoise: Denoiser, r: Reward, lam: float) -> FKCTarget:
        """Reward-tilted target p(x0) exp(lam r(x0))."""
        return cls((denoise,), (1.0,), r, float(lam))

    def tilted(self, r: Reward, lam: float) -> FKCTarget:
        """This target times exp(lam r(x0)) (e.g. CFG plus a PDE-residual reward)."""
        return replace(self, reward_fn=r, reward_scale=float(lam))

    @property
    def total_exponent(self) -> float:
        """B = sum_k beta_k (the start distribution is N(0, sigma_0^2 / B))."""
        return float(sum(self.exponents))

    def evaluate(self, x: Tensor, sigma: float) -> tuple[Tensor, Tensor, Tensor]:
        """(x0 of the target's score, x0_bar for the reward, weight rate R) at noise sigma."""
        sig = x.new_full((x.shape[0],), sigma)
        d = [f(x, sig) - x for f in self.experts]  # d_k = x0_k - x, each (N, ...)
        total = self.total_exponent
        d_bar = sum(b * dk for b, dk in zip(self.exponents, d))
        rate = x.new_zeros(x.shape[0])
        if len(d) > 1 or total != 1.0:
            sq = lambda t: t.flatten(1).square().sum(1)  # noqa: E731  (N, D) -> (N,)
            rate = (total - 1.0) * sq(d_bar) - sum(
                b * sq(dk - d_bar) for b, dk in zip(self.exponents, d)
            )
        return x + d_bar, x + d_bar / total, rate / sigma**4

    def log_potential(self, x0_bar: Tensor) -> Tensor:
        """lam r(x0_bar) per particle, (N,) in float64 (zero without a reward)."""
        if self.reward_fn is None or self.reward_scale == 0.0:
            return x0_bar.new_zeros(x0_bar.shape[0], dtype=torch.float64)
        r = torch.as_tensor(self.reward_fn(x0_bar))
        if r.shape != (x0_bar.shape[0],):
            raise ValueError(f"reward r(x0) must return shape ({x0_bar.shape[0]},), one value "
                             f"per sample, got {tuple(r.shape)}.")
        return self.reward_scale * r.to(torch.float64)


def effective_sample_size(log_w: Tensor) -> Tensor:
    """ESS = 1 / sum_k w_k^2 of normalized weights, per row of log-weights (B, K) -> (B,)."""
    return torch.exp(-torch.logsumexp(2 * torch.log_softmax(log_w, dim=-1), dim=-1))


def systematic_resample(log_w: Tensor, u: Tensor, m: int | None = None) -> Tensor:
    """Systematic resampling (Kitagawa 1996): m indices per row from positions (u + j)/m.

    ``log_w`` is (B, K), ``u`` (B,) uniforms in [0, 1); returns (B, m) indices into K. Each
    index k appears floor(m w_k) or ceil(m w_k) times, so expected counts are exactly m w_k.
    """
    m = log_w.shape[-1] if m is None else m
    cdf = torch.softmax(log_w.to(torch.float64), dim=-1).cumsum(-1)  # (B, K)
    cdf = cdf / cdf[:, -1:]
    pos = (u.to(cdf)[:, None] + torch.arange(m, dtype=cdf.dtype, device=cdf.device)) / m
    return torch.searchsorted(cdf, pos.contiguous()).clamp_(max=log_w.shape[-1] - 1)


class _Draws:
    """Per-output randomness: standard normals (B, K+1, ...) per draw index, from ``noise``."""

    def __init__(self, noise, shape: tuple[int, ...], like: Tensor, n_draws: int) -> None:
        self.noise, self.shape, self.like, self.n_draws = noise, shape, like, n_draws
        if isinstance(noise, Tensor) and tuple(noise.shape) != (n_draws, *shape):
            raise ValueError(f"fkc noise tensor must have shape {(n_draws, *shape)} "
                             f"(steps + 1, B, K + 1, ...), got {tuple(noise.shape)}.")
        if not (noise is None or callable(noise) or isinstance(noise, (Tensor, torch.Generator))):
            raise ValueError(f"noise={noise!r} is not supported; allowed: None, a torch.Generator,"
                             " a tensor (steps + 1, B, K + 1, ...) or a callable noise(i, shape).")

    def __call__(self, i: int) -> tuple[Tensor, Tensor]:
        """(normals (B, K, ...), uniforms (B,)) of draw i."""
        if self.noise is None:
            z = torch.randn(self.shape, dtype=torch.float64)
        elif isinstance(self.noise, torch.Generator):
            z = torch.randn(self.shape, generator=self.noise, device=self.noise.device,
                            dtype=torch.float64)
        elif isinstance(self.noise, Tensor):
            z = self.noise[i]
        else:
            z = torch.as_tensor(self.noise(i, self.shape))
        z = z.to(device=self.like.device, dtype=torch.float64)
        u = 0.5 * (1 + torch.erf(z[:, -1].flatten(1)[:, 0] / math.sqrt(2)))  # Phi(z) ~ U(0, 1)
        return z[:, :-1].to(self.like.dtype), u.clamp(0.0, 1.0 - 1e-12)


def _sde_move(x: Tensor, x0: Tensor, x0_prev: Tensor | None, sigmas: list[float], i: int,
              z: Tensor) -> Tensor:
    """Reverse-SDE step sigmas[i] -> sigmas[i+1]: SDE-DPM-Solver++(2M) (Lu et al. 2022) in VE.

    First order it is the DDPM posterior step x0 + r (x - x0) + sigma' sqrt(1 - r) z with
    r = sigma'^2 / sigma^2 (mean x + du b); with the previous x0 it adds the multistep
    correction (h / 2 h_prev)(x0 - x0_prev). The step to sigma = 0 returns x0.
    """
    sigma, sigma_next = sigmas[i], sigmas[i + 1]
    if sigma_next == 0:
        return x0
    if x0_prev is not None:
        h, h_prev = math.log(sigma / sigma_next), math.log(sigmas[i - 1] / sigma)
        x0 = x0 + (0.5 * h / h_prev) * (x0 - x0_prev)
    ratio = sigma_next**2 / sigma**2
    return x0 + ratio * (x - x0) + z * (sigma_next * math.sqrt(1.0 - ratio))


def _maybe_resample(
    log_w: Tensor, u: Tensor, threshold: float
) -> tuple[Tensor, Tensor | None, int]:
    """Resample outputs whose ESS/K < threshold: (log-weights, (B, K) indices or None, count)."""
    k = log_w.shape[-1]
    low = effective_sample_size(log_w) < threshold * k  # (B,)
    if not bool(low.any()):
        return log_w, None, 0
    keep = torch.arange(k, device=log_w.device).expand_as(log_w)
    idx = torch.where(low[:, None], systematic_resample(log_w, u), keep)
    return torch.where(low[:, None], torch.zeros_like(log_w), log_w), idx, int(low.sum())


def _gather(t: Tensor, idx: Tensor) -> Tensor:
    """Reorder particles (B*K, ...) within each output by indices (B, K)."""
    b, k = idx.shape
    flat = (idx + k * torch.arange(b, device=idx.device)[:, None]).flatten()  # (B*K,)
    return t[flat.to(t.device)]


def _finish(particles: Tensor, log_w: Tensor, u: Tensor, return_particles: bool,
            info: dict | None, resampled: list[int]) -> Tensor:
    """Pick one particle per output by its weight (or return all) and fill ``info``."""
    log_w = torch.log_softmax(log_w, dim=-1)
    if info is not None:
        info.update(log_weights=log_w, weights=log_w.exp(), ess=effective_sample_size(log_w),
                    particles=particles, resampled=resampled)
    if return_particles:
        return particles  # (B, K, ...)
    pick = systematic_resample(log_w, u, m=1)[:, 0]  # (B,)
    rows = torch.arange(particles.shape[0], device=particles.device)
    return particles[rows, pick.to(particles.device)]


@register("fkc", nfe=lambda n, **o: n, stochastic=True)
def sample_fkc(denoise: Denoiser, x: Tensor, sigmas: Tensor, *, noise=None, callback=None,
               target: FKCTarget | None = None, num_particles: int = 8,
               ess_threshold: float = 0.5, return_particles: bool = False,
               info: dict | None = None) -> Tensor:
    """Feynman-Kac corrector SMC sampler (Skreta et al. 2025) for an :class:`FKCTarget`.

    ``target`` defaults to the data distribution of ``denoise`` (then only the resampling of
    a reward-free target is a no-op); a given target's own denoisers are the model and
    ``denoise`` is not called. Output ``b`` starts its K particles from ``x[b]`` and K - 1
    fresh draws at ``sigmas[0]``. Returns one sample per output (B, ...), or all particles
    (B, K, ...) with ``return_particles``; ``info`` (a dict) receives normalized
    ``log_weights``/``weights`` (B, K), ``ess`` (B,), ``particles`` and per-step resample
    counts. Randomness: ``noise`` as for the other SDE samplers, drawn with shape
    (B, K + 1, ...) at indices 0..n (``seeded_noise`` keeps outputs batch independent).
    """
    s = grid(x, sigmas)
    if num_particles < 1 or not 0.0 <= ess_threshold <= 1.0:
        raise ValueError(f"num_particles={num_particles} must be >= 1 and ess_threshold="
                         f"{ess_threshold} in [0, 1].")
    target = target if target is not None else FKCTarget.geometric((denoise,), (1.0,))
    b, k, n = x.shape[0], num_particles, len(s) - 1
    draws = _Draws(noise, (b, k + 1, *x.shape[1:]), x, n + 1)
    z0, u_final = draws(n)
    start = torch.cat([x[:, None], s[0] * z0[:, 1:]], dim=1)  # (B, K, ...)
    xs = start.flatten(0, 1) / math.sqrt(target.total_exponent)  # (B*K, ...)
    x0_q, x0_bar, rate = target.evaluate(xs, s[0])
    pot = target.log_potential(x0_bar)
    log_w, resampled, x0_prev = pot.reshape(b, k), [], None
    for i in range(n):
        z, u = draws(i)
        ess_before = effective_sample_size(log_w)
        log_w, idx, count = _maybe_resample(log_w, u, ess_threshold)
        resampled.append(count)
        if idx is not None:
            xs, x0_q, pot, rate = (_gather(t, idx) for t in (xs, x0_q, pot, rate))
            x0_prev = None if x0_prev is None else _gather(x0_prev, idx)
        report(callback, i, xs, s[i], x0_q, log_weights=log_w, ess_before=ess_before,
               ess=effective_sample_size(log_w))
        xs, x0_prev = _sde_move(xs, x0_q, x0_prev, s, i, z.flatten(0, 1)), x0_q
        du, rate_old = s[i] ** 2 - s[i + 1] ** 2, rate
        if s[i + 1] > 0:  # trapezoidal rule for the time integral of the rate
            x0_q, x0_bar, rate = target.evaluate(xs, s[i + 1])
        step_rate = 0.5 * (rate_old + rate) if s[i + 1] > 0 else rate_old
        new_pot = target.log_potential(x0_bar if s[i + 1] > 0 else xs)
        inc = 0.5 * du * step_rate.to(torch.float64) + new_pot - pot
        log_w, pot = torch.log_softmax(log_w + inc.reshape(b, k), dim=-1), new_pot
    return _finish(xs.reshape(b, k, *x.shape[1:]), log_w, u_final, return_particles, info,
                   resampled)
