"""Feynman-Kac correctors: exact targets on Gaussian mixtures, resampling, reproducibility."""

import math

import pytest
import torch

from samplers import get_sigmas, seeded_noise
from samplers.fkc import FKCTarget, effective_sample_size, sample_fkc, systematic_resample
from samplers.testing import GaussianMixture

N_STEPS, SIGMA_MAX = 200, 80.0


def mixture(weights, means, stds) -> GaussianMixture:
    """Isotropic mixture; ``means`` is (K, D)."""
    return GaussianMixture(torch.tensor(means, dtype=torch.float64),
                           torch.tensor(stds, dtype=torch.float64), torch.tensor(weights))


def log_pdf(p: GaussianMixture, x: torch.Tensor) -> torch.Tensor:
    """Exact log density of a mixture at points x (N, D)."""
    d2 = ((x[:, None] - p.means) ** 2 / p.var).sum(-1)  # (N, K)
    logdet = torch.log(2 * math.pi * p.var).sum(-1)  # (K,)
    return torch.logsumexp(p.log_w - 0.5 * (d2 + logdet), dim=-1)


def quadrature_stats(log_q, lo=-14.0, hi=14.0, n=100001) -> torch.Tensor:
    """Exact (to ~1e-10) mean, variance and mass of {x < 0} of a 1-D unnormalized density."""
    x = torch.linspace(lo, hi, n, dtype=torch.float64)
    lq = log_q(x[:, None])
    q = torch.exp(lq - lq.max())
    q = q / torch.trapezoid(q, x)
    m = torch.trapezoid(q * x, x)
    return torch.stack([m, torch.trapezoid(q * (x - m) ** 2, x), torch.trapezoid(q * (x < 0), x)])


def weighted_stats(x: torch.Tensor, w: torch.Tensor | None = None) -> torch.Tensor:
    """Mean, variance and mass of {x_0 < 0} of (weighted) samples of the first coordinate."""
    x = x.reshape(-1, x.shape[-1])[:, 0].double()
    w = torch.full_like(x, 1.0 / len(x)) if w is None else w.reshape(-1).double() / w.sum()
    m = (w * x).sum()
    return torch.stack([m, (w * (x - m) ** 2).sum(), (w * (x < 0)).sum()])


def run(target, dim=1, outputs=4, particles=2000, seed=0, corrected=True):
    """FKC particles (outputs * K, dim) and weights; uncorrected = no resampling, equal weights."""
    g = torch.Generator().manual_seed(seed)
    sigmas = get_sigmas("loguniform", N_STEPS, sigma_min=0.01, sigma_max=SIGMA_MAX)
    x = SIGMA_MAX * torch.randn(outputs, dim, generator=g, dtype=torch.float64)
    info = {}
    parts = sample_fkc(None, x, sigmas, noise=g, target=target, num_particles=particles,
                       ess_threshold=0.5 if corrected else 0.0, return_particles=True, info=info)
    w = info["weights"] if corrected else None
    return parts.reshape(-1, dim), w


def errors(est: torch.Tensor, exact: torch.Tensor) -> torch.Tensor:
    """|mean error|, relative variance error, |mode-mass error|."""
    d = (est - exact).abs()
    return torch.stack([d[0], d[1] / exact[1], d[2]])


def check(target, exact, tol, dim=1):
    """FKC statistics within ``tol``; the uncorrected sampler misses ``tol`` by more than 2x.

    Tolerances are about twice the largest error measured over seeds 0-2 (Monte Carlo error
    of 4 x 2000 weighted particles plus the 200-step discretization).
    """
    fkc = errors(weighted_stats(*run(target, dim)), exact)
    plain = errors(weighted_stats(*run(target, dim, particles=500, corrected=False)), exact)
    assert (fkc <= torch.tensor(tol).double()).all(), (fkc, plain, exact)
    assert (plain / torch.tensor(tol).double()).max() > 2.0, (fkc, plain, exact)
    return fkc, plain


P_U = mixture([0.5, 0.5], [[-2.0], [2.0]], [0.6, 0.6])
P_C = mixture([0.8, 0.2], [[-2.0], [2.5]], [0.6, 0.5])


def test_cfg_target_mixture_1d():
    w = 3.0
    exact = quadrature_stats(lambda x: w * log_pdf(P_C, x) + (1 - w) * log_pdf(P_U, x))
    check(FKCTarget.cfg(P_C.denoise, P_U.denoise, w), exact, tol=[0.1, 0.2, 0.02])


def test_anneal_target_mixture_1d():
    p = mixture([0.7, 0.3], [[-2.0], [2.0]], [0.7, 0.7])
    beta = 0.5
    exact = quadrature_stats(lambda x: beta * log_pdf(p, x), lo=-30, hi=30)
    check(FKCTarget.anneal(p.denoise, beta), exact, tol=[0.06, 0.03, 0.012])


def product_exact(p1: GaussianMixture, p2: GaussianMixture) -> torch.Tensor:
    """Mean and variance of x_0 and mass of {x_0 < 0} of p1 p2 (isotropic components), closed form.

    N(a, A) N(b, B) = N(a; b, A + B) N((a B + b A)/(A + B), A B/(A + B)) per coordinate.
    """
    a, b = p1.means[:, None], p2.means[None]  # (K1, 1, D), (1, K2, D)
    va, vb = p1.var[:, None], p2.var[None]
    s = va + vb
    log_z = (-0.5 * ((a - b) ** 2 / s + torch.log(2 * math.pi * s))).sum(-1)
    log_z = log_z + p1.log_w[:, None] + p2.log_w[None]  # (K1, K2) component masses
    w = torch.softmax(log_z.flatten(), 0)
    mu = ((a * vb + b * va) / s)[..., 0].flatten()
    var = (va * vb / s)[..., 0].flatten()
    m = (w * mu).sum()
    neg = (w * 0.5 * (1 + torch.erf(-mu / torch.sqrt(2 * var)))).sum()
    return torch.stack([m, (w * (var + (mu - m) ** 2)).sum(), neg])


def test_product_closed_form_matches_quadrature_2d():
    p1 = mixture([0.5, 0.5], [[-1.5, 1.0], [1.5, -0.5]], [0.8, 0.8])
    p2 = mixture([0.3, 0.7], [[-1.0, 0.5], [2.0, 0.0]], [1.0, 0.6])
    grid = torch.linspace(-12, 12, 1201, dtype=torch.float64)
    xy = torch.cartesian_prod(grid, grid)  # (N, 2)
    q = torch.exp(log_pdf(p1, xy) + log_pdf(p2, xy))
    q = q / q.sum()
    m = (q * xy[:, 0]).sum()
    quad = torch.stack([m, (q * (xy[:, 0] - m) ** 2).sum(), (q * (xy[:, 0] < 0)).sum()])
    torch.testing.assert_close(quad, product_exact(p1, p2), atol=2e-3, rtol=0)


def test_product_target_mixture_1d():
    p1 = mixture([0.5, 0.5], [[-2.0], [2.0]], [0.6, 0.6])
    p2 = mixture([1.0], [[1.5]], [2.0])
    exact = product_exact(p1, p2)
    check(FKCTarget.product(p1.denoise, p2.denoise), exact, tol=[0.08, 0.06, 0.02])


def test_anneal_target_mixture_2d():
    p = mixture([0.7, 0.3], [[-2.0, 1.0], [2.0, 0.0]], [0.7, 0.7])
    grid = torch.linspace(-25, 25, 1001, dtype=torch.float64)
    xy = torch.cartesian_prod(grid, grid)  # (N, 2) quadrature of p^0.5
    q = torch.exp(0.5 * log_pdf(p, xy))
    q = q / q.sum()
    m = (q * xy[:, 0]).sum()
    exact = torch.stack([m, (q * (xy[:, 0] - m) ** 2).sum(), (q * (xy[:, 0] < 0)).sum()])
    check(FKCTarget.anneal(p.denoise, 0.5), exact, tol=[0.1, 0.03, 0.03], dim=2)


def test_reward_tilt_gaussian_is_shifted_gaussian():
    # N(mu, v) exp(lam x) = N(mu + lam v, v): mean shifts by lam v, variance unchanged.
    p, lam = mixture([1.0], [[0.5]], [1.0]), 0.8
    target = FKCTarget.reward(p.denoise, lambda x0: x0.flatten(1).sum(1), lam)
    exact = torch.tensor([0.5 + lam, 1.0, 0.5 * (1 + math.erf(-1.3 / math.sqrt(2)))])
    check(target, exact.double(), tol=[0.05, 0.12, 0.01])


def test_reward_tilt_mixture_reweights_modes():
    # sum_j pi_j N(mu_j, v) exp(lam x) = sum_j pi_j e^(lam mu_j + lam^2 v / 2) N(mu_j + lam v, v)
    p, lam = mixture([0.8, 0.2], [[-2.0], [2.0]], [0.5, 0.5]), 0.6
    exact = quadrature_stats(lambda x: log_pdf(p, x) + lam * x[:, 0])
    mu = torch.tensor([-2.0, 2.0], dtype=torch.float64)
    pi = torch.tensor([0.8, 0.2], dtype=torch.float64) * torch.exp(lam * mu)
    assert abs(exact[0] - float((pi / pi.sum() * mu).sum() + lam * 0.25)) < 1e-8
    check(FKCTarget.reward(p.denoise, lambda x0: x0[:, 0], lam), exact, tol=[0.04, 0.04, 0.012])


def test_systematic_resampling_is_unbiased():
    g = torch.Generator().manual_seed(1)
    log_w = torch.randn(3, 7, generator=g, dtype=torch.float64) * 2
    w, k = torch.softmax(log_w, -1), 7
    u = (torch.arange(4000, dtype=torch.float64) + 0.5) / 4000  # a fine uniform grid of offsets
    counts = torch.zeros(3, k, dtype=torch.float64)
    for ui in u:
        idx = systematic_resample(log_w, ui.expand(3))
        c = torch.zeros(3, k, dtype=torch.float64).scatter_add_(1, idx, torch.ones(3, k).double())
        assert ((c == torch.floor(k * w)) | (c == torch.ceil(k * w))).all()  # low variance
        counts += c
    torch.testing.assert_close(counts / len(u), k * w, atol=1e-3, rtol=0)  # E[count] = K w


def test_resampling_fires_only_below_threshold():
    p = mixture([0.5, 0.5], [[-2.0], [2.0]], [0.5, 0.5])
    target = FKCTarget.anneal(p.denoise, 2.0)
    sigmas = get_sigmas("loguniform", 40, sigma_min=0.01, sigma_max=SIGMA_MAX)
    x = torch.randn(3, 1, generator=torch.Generator().manual_seed(0)).double() * SIGMA_MAX
    for thr in (0.0, 0.5, 0.9):
        log = []
        info = {}
        sample_fkc(None, x, sigmas, noise=torch.Generator().manual_seed(0), target=target,
                   num_particles=64, ess_threshold=thr, callback=log.append, info=info)
        before = torch.stack([d["ess_before"] for d in log])  # (steps, B)
        after = torch.stack([d["ess"] for d in log])
        fired = before < thr * 64
        assert info["resampled"] == fired.sum(1).tolist()
        torch.testing.assert_close(after[fired], torch.full_like(after[fired], 64.0))
        torch.testing.assert_close(after[~fired], before[~fired])
        assert (fired.sum() > 0) == (thr > 0)
    # Without weights (the plain target) the ESS stays K and nothing is ever resampled.
    info = {}
    sample_fkc(p.denoise, x, sigmas, noise=torch.Generator().manual_seed(0), info=info,
               num_particles=16, ess_threshold=0.99)
    assert sum(info["resampled"]) == 0
    torch.testing.assert_close(info["ess"], torch.full((3,), 16.0, dtype=torch.float64))
    torch.testing.assert_close(effective_sample_size(torch.zeros(2, 5)), torch.full((2,), 5.0))


@pytest.mark.parametrize("shape", [(3, 4), (2, 2, 5), (2, 1, 3, 4), (2, 1, 2, 2, 3)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_shapes_dtypes_and_seeded_batch_independence(shape, dtype):
    p = GaussianMixture(torch.stack([torch.ones(shape[1:]), -torch.ones(shape[1:])]),
                        torch.tensor([0.5, 0.5]))
    target = FKCTarget.cfg(p.denoise, lambda x, s: torch.zeros_like(x), 2.0)
    sigmas = get_sigmas("karras", 8, sigma_max=10.0)
    x = torch.randn(shape, generator=torch.Generator().manual_seed(3), dtype=dtype) * 10
    seeds = list(range(10, 10 + shape[0]))
    out = sample_fkc(None, x, sigmas, target=target, num_particles=4, noise=seeded_noise(seeds))
    assert out.shape == x.shape and out.dtype == dtype and torch.isfinite(out).all()
    again = sample_fkc(None, x, sigmas, target=target, num_particles=4, noise=seeded_noise(seeds))
    assert torch.equal(out, again)
    alone = sample_fkc(None, x[1:2], sigmas, target=target, num_particles=4,
                       noise=seeded_noise(seeds[1:2]))
    torch.testing.assert_close(alone[0], out[1])
    info = {}
    parts = sample_fkc(None, x, sigmas, target=target, num_particles=4, return_particles=True,
                       noise=seeded_noise(seeds), info=info)
    assert parts.shape == (shape[0], 4, *shape[1:])
    torch.testing.assert_close(info["weights"].sum(-1), torch.ones(shape[0], dtype=torch.float64))


def test_default_target_calls_denoise_once_per_step():
    p = mixture([1.0], [[0.0, 1.0]], [1.0])
    calls = []
    sigmas = get_sigmas("karras", 6)

    def counted(x, sigma):
        calls.append(x.shape[0])
        return p.denoise(x, sigma)

    sample_fkc(counted, torch.randn(2, 2).double() * 80, sigmas, num_particles=3)
    assert calls == [6] * 6  # n model calls on the (B * K) particle batch, none at sigma = 0


def test_bad_inputs_are_rejected():
    p = mixture([1.0], [[0.0]], [1.0])
    with pytest.raises(ValueError, match="exponent"):
        FKCTarget.geometric((p.denoise,), (1.0, 2.0))
    with pytest.raises(ValueError, match="positive sum"):
        FKCTarget.anneal(p.denoise, -1.0)
    with pytest.raises(ValueError, match="num_particles"):
        sample_fkc(p.denoise, torch.zeros(1, 1), get_sigmas("karras", 3), num_particles=0)
    bad = FKCTarget.reward(p.denoise, lambda x0: x0, 1.0)  # returns (N, 1), not (N,)
    with pytest.raises(ValueError, match="reward"):
        sample_fkc(None, torch.zeros(2, 1), get_sigmas("karras", 3), target=bad)


def test_noise_forms_agree():
    p = mixture([0.5, 0.5], [[-1.0, 0.0], [1.0, 1.0]], [0.3, 0.3])
    target = FKCTarget.anneal(p.denoise, 2.0)
    sigmas = get_sigmas("loguniform", 6, sigma_min=0.05, sigma_max=20.0)
    x = 20 * torch.randn(2, 2, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    draws = torch.randn(7, 2, 5, 2, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    run_fn = lambda noise: sample_fkc(None, x, sigmas, target=target, num_particles=4,  # noqa: E731
                                      noise=noise, ess_threshold=0.9)
    a, b = run_fn(draws), run_fn(lambda i, shape: draws[i])
    assert torch.equal(a, b)
    g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    assert torch.equal(run_fn(g1), run_fn(g2))
    with pytest.raises(ValueError, match="noise"):
        run_fn(draws[:3])
