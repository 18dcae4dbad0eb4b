"""Guidance wrappers: CFG limits, closed-form CFG on Gaussians, batching, multi-CFG, corrections."""

import pytest
import torch

from samplers.guidance import (
    cfg,
    cfg_batched,
    multi_cfg,
    multi_cfg_batched,
    project_mean,
    project_values,
    with_x0_correction,
)


def gaussian_denoiser(mu: torch.Tensor, var: float):
    """Exact denoiser of data N(mu, var I): E[x0 | x] = mu + var / (var + sigma^2) (x - mu)."""

    def denoise(x, sigma):
        s2 = sigma.reshape(-1, *([1] * (x.ndim - 1))) ** 2  # (B, 1, ..., 1)
        return mu + var / (var + s2) * (x - mu)

    return denoise


def cond_denoiser(var: float):
    """Exact Gaussian denoiser whose mean is the condition tensor c (batch-first)."""
    return lambda x, sigma, c: gaussian_denoiser(c, var)(x, sigma)


SHAPES = [(3, 4), (2, 3, 5), (2, 2, 3, 4)]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_cfg_scale_one_and_zero_are_exact(shape, dtype):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(shape, generator=g, dtype=dtype)
    sigma = torch.rand(shape[0], generator=g, dtype=dtype) * 5
    d_c = gaussian_denoiser(torch.full(shape[1:], 1.5, dtype=dtype), 0.7)
    d_u = gaussian_denoiser(torch.zeros(shape[1:], dtype=dtype), 0.7)
    assert torch.equal(cfg(d_c, d_u, 1.0)(x, sigma), d_c(x, sigma))
    assert torch.equal(cfg(d_c, d_u, 0.0)(x, sigma), d_u(x, sigma))
    out = cfg(d_c, d_u, 3.0)(x, sigma)
    assert out.dtype == dtype and out.shape == x.shape


@pytest.mark.parametrize("w", [0.5, 2.0, 4.0])
def test_cfg_equals_closed_form_on_gaussians(w):
    # p_c^w p_u^(1-w) of N(mu_c, v + s^2) and N(mu_u, v + s^2) is N(w mu_c + (1-w) mu_u, v + s^2)
    # at every noise level, so the guided denoiser is the exact denoiser of that Gaussian.
    mu_c, mu_u, var = torch.tensor([1.0, -2.0]), torch.tensor([0.5, 0.5]), 0.3
    x = torch.randn(6, 2, dtype=torch.float64)
    sigma = torch.logspace(-2, 1, 6, dtype=torch.float64)
    guided = cfg(gaussian_denoiser(mu_c.double(), var), gaussian_denoiser(mu_u.double(), var), w)
    exact = gaussian_denoiser((w * mu_c + (1 - w) * mu_u).double(), var)
    torch.testing.assert_close(guided(x, sigma), exact(x, sigma), rtol=1e-12, atol=1e-12)


def test_cfg_equals_eps_space_guidance():
    d_c = gaussian_denoiser(torch.tensor([2.0, 0.0]).double(), 0.5)
    d_u = gaussian_denoiser(torch.tensor([0.0, 1.0]).double(), 0.5)
    x, sigma, w = torch.randn(4, 2, dtype=torch.float64), torch.tensor([0.1, 1.0, 3.0, 9.0]), 2.5
    sigma = sigma.double()
    s = sigma[:, None]
    eps = lambda d: (x - d(x, sigma)) / s  # noqa: E731
    x0_from_eps = x - s * (eps(d_u) + w * (eps(d_c) - eps(d_u)))
    torch.testing.assert_close(cfg(d_c, d_u, w)(x, sigma), x0_from_eps, rtol=1e-12, atol=1e-12)


def test_guidance_interval_switches_per_sample():
    d_c = gaussian_denoiser(torch.ones(3).double(), 1.0)
    d_u = gaussian_denoiser(-torch.ones(3).double(), 1.0)
    x, sigma = torch.randn(4, 3).double(), torch.tensor([0.05, 0.5, 2.0, 20.0]).double()
    out = cfg(d_c, d_u, 3.0, interval=(0.1, 5.0))(x, sigma)
    full = cfg(d_c, d_u, 3.0)(x, sigma)
    plain = d_c(x, sigma)
    torch.testing.assert_close(out[[1, 2]], full[[1, 2]])
    torch.testing.assert_close(out[[0, 3]], plain[[0, 3]])
    with pytest.raises(ValueError, match="interval"):
        cfg(d_c, d_u, 3.0, interval=(5.0, 0.1))


def test_cfg_batched_matches_two_calls_and_counts_one_call():
    calls = []
    model = cond_denoiser(0.4)

    def counted(x, sigma, c):
        calls.append(x.shape[0])
        return model(x, sigma, c)

    x, sigma = torch.randn(3, 2, 5).double(), torch.tensor([0.3, 1.0, 4.0]).double()
    c = torch.randn(3, 2, 5).double()
    null = torch.zeros(1, 2, 5).double()  # one shared null condition, broadcast over the batch
    out = cfg_batched(counted, c, null, 2.0)(x, sigma)
    ref = cfg(lambda x, s: model(x, s, c), lambda x, s: model(x, s, null), 2.0)(x, sigma)
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
    assert calls == [6]
    assert torch.equal(cfg_batched(model, c, null, 1.0)(x, sigma), model(x, sigma, c))


def _two_condition_model():
    """Model whose prediction depends on which of {text, field} are active (nonlinearly)."""
    base = {"text": torch.tensor([1.0, 0.0]).double(), "field": torch.tensor([0.0, 2.0]).double()}

    def by_set(x, sigma, active):
        mu = sum((base[n] for n in active), torch.zeros(2).double())
        mu = mu + (0.5 if len(active) == 2 else 0.0)  # joint condition is not additive
        return gaussian_denoiser(mu, 0.5)(x, sigma)

    return by_set


def test_multi_cfg_forms():
    by_set = _two_condition_model()
    x, sigma = torch.randn(5, 2).double(), torch.logspace(-1, 1, 5).double()
    f = lambda *names: by_set(x, sigma, frozenset(names))  # noqa: E731
    st, sf = 2.0, 3.0
    comp = multi_cfg(by_set, {"text": st, "field": sf})(x, sigma)
    torch.testing.assert_close(comp, f() + st * (f("text") - f()) + sf * (f("field") - f()))
    nested = multi_cfg(by_set, {"text": st, "field": sf}, mode="nested")(x, sigma)
    expect = f() + st * (f("text") - f()) + sf * (f("text", "field") - f("text"))
    torch.testing.assert_close(nested, expect)
    ones = multi_cfg(by_set, {"text": 1.0, "field": 1.0}, mode="nested")(x, sigma)
    torch.testing.assert_close(ones, f("text", "field"))
    def fixed(names):
        return lambda x, sg: by_set(x, sg, frozenset(names))

    table = {frozenset(s): fixed(s) for s in [(), ("text",), ("field",), ("text", "field")]}
    torch.testing.assert_close(multi_cfg(table, {"text": st, "field": sf})(x, sigma), comp)
    with pytest.raises(ValueError, match="mode"):
        multi_cfg(by_set, {"text": 1.0}, mode="sideways")


@pytest.mark.parametrize("mode", ["compositional", "nested"])
def test_multi_cfg_batched_matches_unbatched(mode):
    by_set = _two_condition_model()
    cond = {"text": torch.ones(4, 1).double(), "field": torch.ones(4, 1).double()}
    null = {"text": torch.zeros(1, 1).double(), "field": torch.zeros(4, 1).double()}

    def with_cond(x, sigma, c):  # active = conditions whose value is not the null (zero) one
        outs = []
        for i in range(x.shape[0]):
            active = frozenset(n for n in c if bool(c[n][i].ne(0).any()))
            outs.append(by_set(x[i : i + 1], sigma[i : i + 1], active))
        return torch.cat(outs)

    x, sigma = torch.randn(4, 2).double(), torch.tensor([0.2, 0.7, 1.5, 6.0]).double()
    scales = {"text": 2.0, "field": 0.5}
    out = multi_cfg_batched(with_cond, cond, null, scales, mode=mode)(x, sigma)
    torch.testing.assert_close(out, multi_cfg(by_set, scales, mode=mode)(x, sigma))


@pytest.mark.parametrize("shape", SHAPES)
def test_project_mean_enforces_constraint_and_is_idempotent(shape):
    d = gaussian_denoiser(torch.randn(shape[1:]).double(), 0.5)
    x, sigma = torch.randn(shape).double(), torch.rand(shape[0]).double() + 0.1
    corrected = with_x0_correction(d, project_mean(0.25))
    x0 = corrected(x, sigma)
    torch.testing.assert_close(x0.mean(dim=tuple(range(1, x0.ndim))), torch.full((shape[0],), 0.25,
                               dtype=torch.float64))
    again = project_mean(0.25)(x0, sigma)
    torch.testing.assert_close(again, x0, rtol=0, atol=1e-14)
    # The projection is orthogonal: the removed part is constant along the averaged axes.
    diff = d(x, sigma) - x0
    torch.testing.assert_close(diff, diff.mean(dim=tuple(range(1, x0.ndim)), keepdim=True)
                               .expand_as(diff))


def test_project_mean_per_frame_and_values_compose():
    b, c, t, n = 2, 2, 3, 8
    d = gaussian_denoiser(torch.randn(c, t, n).double(), 0.5)
    target = torch.linspace(0, 1, t).double().reshape(1, 1, t, 1)  # (1, 1, T, 1)
    mask = torch.zeros(c, t, n, dtype=torch.bool)
    mask[..., 0] = True  # a boundary column
    corr = with_x0_correction(d, project_values(mask, 0.0), project_mean(target, dims=(-1,)))
    x0 = corr(torch.randn(b, c, t, n).double(), torch.ones(b).double())
    torch.testing.assert_close(x0.mean(-1, keepdim=True), target.expand(b, c, t, 1))
    fixed = project_values(mask, 0.0)(x0, None)
    assert torch.equal(project_values(mask, 0.0)(fixed, None), fixed)
    assert torch.equal(fixed[..., 0], torch.zeros(b, c, t).double())
    with pytest.raises(ValueError):
        with_x0_correction(d)
