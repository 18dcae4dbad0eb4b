"""Tests of genphys.diffusion: objectives vs exact Gaussian problems, EDM table, weightings,
conditioning dropout, determinism, gradients, sampling plumbing and the wavelet model space."""

from __future__ import annotations

import json
import math
import pickle

import pytest
import pywt
import torch

import samplers
from genphys.backbone import SpaceTimeDiT, SpaceTimeUNet
from genphys.diffusion import (
    ObjectiveConfig,
    WaveletRepresentation,
    build_objective,
    drop_conditions,
    edm_coefficients,
    null_conditions,
    target_weight,
)
from genphys.errors import UserInputError
from samplers import VPCosine, target, to_x0
from samplers.testing import GaussianProblem

F64 = torch.float64

# (kind/schedule, prediction, preconditioning, weighting, noise_sampling)
CASES = [
    ("edm", "x0", "edm", "edm", "lognormal"),
    ("edm", "x0", "none", "uniform", "lognormal"),
    ("edm", "eps", "none", "min_snr", "lognormal"),
    ("ve", "eps", "none", "snr", "uniform"),
    ("vp_linear", "v", "none", "snr_plus_one", "uniform"),
    ("vp_cosine", "eps", "none", "uniform", "uniform"),
    ("vp_cosine", "x0", "none", "truncated_snr", "lognormal"),
    ("vp_cosine", "v", "none", "uniform", "uniform"),
    ("vp_cosine", "score", "none", "sigma_sq", "uniform"),
    ("vp_discrete", "eps", "none", "uniform", "uniform"),
    ("flow", "flow", "none", "uniform", "logit_normal"),
    ("flow", "x0", "none", "edm", "logit_normal"),
    ("flow", "eps", "none", "min_snr", "uniform"),
]
IDS = ["-".join(c[:3]) for c in CASES]


def make_cfg(case, **kw) -> ObjectiveConfig:
    schedule, prediction, precond, weighting, sampling = case
    return ObjectiveConfig(kind="flow" if schedule == "flow" else "diffusion", schedule=schedule,
                           prediction=prediction, preconditioning=precond, weighting=weighting,
                           noise_sampling=sampling, **kw)


def oracle(obj, problem: GaussianProblem):
    """The exact network for ``obj``: E[target | x_t] written from the paper's formulas."""
    cfg, sched = obj.cfg, obj.schedule

    def b(c, x):
        return c.reshape(-1, *[1] * (x.ndim - 1))

    def model(x_in, noise, **cond):
        if cfg.preconditioning == "edm":  # Karras et al. (2022), Table 1, typed out here
            sigma, sd = noise, cfg.sigma_data
            x = x_in * b(torch.sqrt(sigma**2 + sd**2), x_in)
            c_skip = sd**2 / (sigma**2 + sd**2)
            c_out = sigma * sd / torch.sqrt(sigma**2 + sd**2)
            return (problem.denoise(x, sigma) - b(c_skip, x) * x) / b(c_out, x)
        t = sched.t_of_sigma(noise) if cfg.noise_input == "sigma" else noise
        x = x_in / b(sched.alpha(t), x_in)
        sigma = sched.sigma_ve(t)
        d = problem.denoise(x, sigma)
        return target(cfg.prediction, d, (x - d) / b(sigma, x), sched, t)  # affine in (x0, eps)

    return model


@pytest.fixture(scope="module")
def gaussian():
    mu = torch.linspace(-1, 1, 8, dtype=F64).reshape(1, 2, 4)  # one sample is (C, T, X)
    return GaussianProblem(mu, std=0.7)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_denoiser_of_exact_network_is_exact(case, gaussian):
    obj = build_objective(make_cfg(case))
    denoise = obj.denoiser(oracle(obj, gaussian))
    g = torch.Generator().manual_seed(0)
    sigma = torch.exp(torch.linspace(math.log(obj.sigma_min), math.log(obj.sigma_max), 16,
                                     dtype=F64))
    x = gaussian.mu + torch.randn(16, 1, 2, 4, generator=g, dtype=F64) * (0.7 + sigma[:, None,
                                                                                      None, None])
    err = (denoise(x, sigma) - gaussian.denoise(x, sigma)).abs().max()
    assert float(err) < 1e-5


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_exact_network_minimizes_the_loss(case, gaussian):
    obj = build_objective(make_cfg(case))
    best = oracle(obj, gaussian)
    x0 = gaussian.mu + 0.7 * torch.randn(4096, 1, 2, 4, generator=torch.Generator().manual_seed(1),
                                         dtype=F64)

    def loss(model):
        return float(obj.loss(model, x0, generator=torch.Generator().manual_seed(2))[0])

    l0 = loss(best)
    for delta in (0.05, -0.05):
        shifted = lambda x, s, d=delta: best(x, s) + d  # noqa: E731
        scaled = lambda x, s, d=delta: best(x, s) * (1 + d)  # noqa: E731
        assert loss(shifted) > l0 and loss(scaled) > l0


def test_loss_weight_equals_paper_forms():
    """Target-space weights reproduce the published loss weights."""
    vp, t = VPCosine(), torch.linspace(0.05, 0.95, 7, dtype=F64)
    a, s = vp.alpha(t), vp.sigma(t)
    snr = a**2 / s**2
    w = lambda name, pred: target_weight(name, pred, vp, t, gamma=5.0)  # noqa: E731
    torch.testing.assert_close(w("snr", "eps"), torch.ones_like(t))  # Ho et al. L_simple
    torch.testing.assert_close(w("snr", "x0"), snr)
    torch.testing.assert_close(w("min_snr", "eps"), torch.clamp(snr, max=5) / snr)  # Hang et al.
    torch.testing.assert_close(w("min_snr", "v"), torch.clamp(snr, max=5) / (snr + 1))
    torch.testing.assert_close(w("snr_plus_one", "v"), torch.ones_like(t))  # Salimans & Ho
    torch.testing.assert_close(w("sigma_sq", "score"), s**2)  # Song & Ermon sigma^2
    rf = samplers.RectifiedFlow()
    torch.testing.assert_close(target_weight("snr", "flow", rf, t), (1 - t) ** 2)


def test_edm_coefficients_match_table_and_vp_v_prediction():
    sigma = torch.tensor([0.002, 0.1, 0.5, 1.0, 3.0, 80.0], dtype=F64)
    for sd in (0.5, 1.0):
        c_skip, c_out, c_in, c_noise = edm_coefficients(sigma, sd)
        torch.testing.assert_close(c_skip, sd**2 / (sigma**2 + sd**2))
        torch.testing.assert_close(c_out, sigma * sd / (sigma**2 + sd**2) ** 0.5)
        torch.testing.assert_close(c_in, 1 / (sd**2 + sigma**2) ** 0.5)
        torch.testing.assert_close(c_noise, 0.25 * torch.log(sigma))
        w = target_weight("edm", "x0", samplers.EDM(), sigma, sigma_data=sd)
        torch.testing.assert_close(w * c_out**2, torch.ones_like(sigma))  # F-space weight 1
    # sigma_data = 1: EDM's D = c_skip x + c_out F is VP v-prediction with F = -v, x_t = c_in x
    vp = VPCosine()
    t = vp.t_of_sigma(sigma[:-1])
    x, out = torch.randn(5, 3, dtype=F64), torch.randn(5, 3, dtype=F64)
    c_skip, c_out, c_in, _ = (c[:-1, None] for c in edm_coefficients(sigma, 1.0))
    torch.testing.assert_close(to_x0("v", -out, c_in * x, vp, t), c_skip * x + c_out * out)


def test_config_validation_and_round_trip():
    cfg = ObjectiveConfig(cond_dropout={"params": 0.1, "tokens": 0.2})
    again = ObjectiveConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg and build_objective(cfg.to_dict()).cfg == cfg
    bad = [dict(kind="score"), dict(schedule="cosine"), dict(prediction="noise"),
           dict(preconditioning="edm", prediction="eps"), dict(weighting="p2"),
           dict(cond_dropout={"text": 0.1}), dict(cond_dropout={"params": 1.5}),
           dict(kind="flow", schedule="edm"), dict(sigma_min=1.0, sigma_max=0.5),
           dict(p_std=0.0), dict(schedule="ve", schedule_options={"beta": 1})]
    for kw in bad:
        with pytest.raises(UserInputError):
            ObjectiveConfig(**kw)
    with pytest.raises(UserInputError, match="allowed"):
        ObjectiveConfig.from_dict({"kindd": "flow"})
    flow = ObjectiveConfig.flow()
    assert (flow.schedule, flow.prediction, flow.noise_sampling) == ("flow", "flow",
                                                                     "logit_normal")
    assert build_objective(flow).sigma_max == pytest.approx(80.0)


def test_training_noise_levels_follow_their_distribution():
    obj = build_objective(ObjectiveConfig())
    t = obj.sample_t(20000, torch.Generator().manual_seed(0))
    log_sigma = torch.log(t)  # EDM: t is sigma
    assert abs(float(log_sigma.mean()) + 1.2) < 0.03 and abs(float(log_sigma.std()) - 1.2) < 0.03
    flow = build_objective(ObjectiveConfig.flow())
    t = flow.sample_t(20000, torch.Generator().manual_seed(0))
    t_lo, t_hi = 0.002 / 1.002, 80 / 81
    assert float(t.min()) >= t_lo and float(t.max()) <= t_hi
    assert abs(float(t.median()) - (t_lo + t_hi) / 2) < 0.01  # logit-normal(0, 1) median 1/2


def small_dit(**kw) -> SpaceTimeDiT:
    base = dict(in_channels=2, patch_size=(2, 2), hidden_dim=32, depth=2, num_heads=2,
                param_dim=2, pooled_dim=3, token_dim=4, cond_channels=1)
    return SpaceTimeDiT(**{**base, **kw})


def full_cond(b: int, g: torch.Generator) -> dict:
    return {"params": torch.randn(b, 2, generator=g), "pooled": torch.randn(b, 3, generator=g),
            "tokens": torch.randn(b, 5, 4, generator=g),
            "token_mask": torch.ones(b, 5, dtype=torch.bool),
            "cond": torch.randn(b, 1, 4, 8, generator=g),
            "cond_mask": torch.ones(b, 1, 4, 8)}


def test_dropout_rates_are_honoured_and_independent():
    rates = {"params": 0.1, "pooled": 0.3, "tokens": 0.5, "cond": 0.2}
    n = 20000
    cond = full_cond(n, torch.Generator().manual_seed(0))
    out, keeps = drop_conditions(cond, rates, n, torch.Generator().manual_seed(1))
    for key, p in rates.items():
        frac = float((~keeps[key]).float().mean())
        assert abs(frac - p) < 4 * math.sqrt(p * (1 - p) / n), (key, frac)
    both = float(((~keeps["pooled"]) & (~keeps["tokens"])).float().mean())
    assert abs(both - 0.15) < 4 * math.sqrt(0.15 * 0.85 / n)  # independent across keys
    drop = ~keeps["tokens"]
    pairs = float((drop[1:] & drop[:-1]).float().mean())
    assert abs(pairs - 0.25) < 4 * math.sqrt(0.25 * 0.75 / n)  # independent across samples
    assert torch.equal(torch.isnan(out["params"]).all(1), ~keeps["params"])
    assert torch.equal(out["token_mask"].any(1), keeps["tokens"])
    assert torch.equal(out["cond_mask"].flatten(1).amax(1) > 0, keeps["cond"])
    again, _ = drop_conditions(cond, rates, n, torch.Generator().manual_seed(1))
    assert torch.equal(again["token_mask"], out["token_mask"])


def test_dropped_rows_equal_absent_conditions():
    torch.manual_seed(0)
    model = small_dit().double()
    with torch.no_grad():  # make the zero-initialised output layers non-trivial
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    g = torch.Generator().manual_seed(3)
    x, sigma = torch.randn(6, 2, 4, 8, dtype=F64, generator=g), torch.rand(6, dtype=F64) + 0.1
    cond = full_cond(6, g)
    for key in ("params", "pooled", "tokens", "cond"):
        dropped, keeps = drop_conditions(cond, {key: 0.5}, 6, torch.Generator().manual_seed(7))
        assert 0 < int(keeps[key].sum()) < 6
        absent = null_conditions(cond, [key])
        assert set(cond) - set(absent) == {key, {"params": "params", "pooled": "pooled",
                                                 "tokens": "token_mask", "cond": "cond_mask"}[key]}
        y = model(x, sigma, **dropped)
        y_full, y_null = model(x, sigma, **cond), model(x, sigma, **absent)
        k = keeps[key]
        torch.testing.assert_close(y[k], y_full[k], atol=1e-10, rtol=0)
        torch.testing.assert_close(y[~k], y_null[~k], atol=1e-10, rtol=0)


def test_loss_is_deterministic_and_logs_buckets():
    torch.manual_seed(0)
    model = small_dit()
    obj = build_objective(ObjectiveConfig(cond_dropout={"params": 0.5, "tokens": 0.5}))
    x0 = torch.randn(16, 2, 4, 8)
    cond = full_cond(16, torch.Generator().manual_seed(0))
    run = lambda s: obj.loss(model, x0, cond, torch.Generator().manual_seed(s))  # noqa: E731
    (l1, logs1), (l2, logs2), (l3, _) = run(5), run(5), run(6)
    assert torch.equal(l1, l2) and logs1 == logs2 and not torch.equal(l1, l3)
    assert "dropped_params" in logs1 and any(k.startswith("loss_sigma_") for k in logs1)


@pytest.mark.parametrize("arch", ["dit", "unet"])
def test_gradients_reach_every_parameter(arch):
    torch.manual_seed(0)
    if arch == "dit":
        model = small_dit()
    else:
        model = SpaceTimeUNet(in_channels=2, spatial_dims=1, base_channels=8, channel_mult=(1, 2),
                              groups=4, num_heads=2, param_dim=2, pooled_dim=3, token_dim=4,
                              cond_channels=1)
    obj = build_objective(ObjectiveConfig(cond_dropout=dict.fromkeys(
        ("params", "pooled", "tokens", "cond"), 0.5)))
    cond = full_cond(8, torch.Generator().manual_seed(0))
    # zero-initialised output/adaLN layers pass gradients on after two optimizer steps
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x0 = torch.randn(8, 2, 4, 8, generator=torch.Generator().manual_seed(9))
    for seed in (0, 1, 2):
        opt.zero_grad()
        loss, _ = obj.loss(model, x0, cond, torch.Generator().manual_seed(seed))
        loss.backward()
        if seed < 2:
            opt.step()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum()]
    assert not missing, missing


def test_model_noise_embedding_must_match_objective():
    obj = build_objective(ObjectiveConfig())
    with pytest.raises(UserInputError, match="noise_embedding"):
        obj.loss(small_dit(noise_embedding="t"), torch.randn(2, 2, 4, 8))


def test_sample_is_per_sample_seeded_and_follows_the_exact_ode(gaussian):
    obj = build_objective(ObjectiveConfig())
    model = oracle(obj, gaussian)
    both = obj.sample(model, (2, 1, 2, 4), generator=[3, 5])
    one = obj.sample(model, (1, 1, 2, 4), generator=[5])
    torch.testing.assert_close(both[1:], one)
    # the same x_T through samplers.sample with the exact denoiser
    x_t = 80.0 * torch.randn((1, 2, 4), generator=torch.Generator().manual_seed(5), dtype=F64)
    ref = samplers.sample("dpmpp_2m", gaussian.denoise, x_t[None].float(), obj.sigmas(20))
    torch.testing.assert_close(one, ref, atol=1e-5, rtol=1e-5)
    exact = gaussian.ode_solution(x_t[None], 80.0, 0.0)
    err = {n: float(samplers.testing.relative_error(
        obj.sample(model, (1, 1, 2, 4), generator=[5], steps=n).double(), exact))
        for n in (20, 40)}
    assert err[20] < 0.02 and err[40] < err[20] / 3  # second order (measured 1.2e-2, 3.2e-3)
    karras = obj.sample(model, (1, 1, 2, 4), generator=[5], sigmas=obj.sigmas(20, "karras"))
    assert float(samplers.testing.relative_error(karras.double(), exact)) > err[20]


def test_guidance_combines_conditional_and_unconditional_predictions():
    obj = build_objective(ObjectiveConfig())

    def model(x, sigma, params=None, pooled=None):  # F depends only on the present conditions
        f = torch.zeros_like(x)
        for v in (params, pooled):
            if v is not None:
                f = f + torch.nan_to_num(v, nan=0.0).sum(1).reshape(-1, 1, 1, 1)
        return f

    x, sigma = torch.randn(2, 1, 2, 4), torch.tensor([0.5, 2.0])
    cond = {"params": torch.tensor([[1.0], [2.0]]), "pooled": torch.tensor([[0.5], [-1.0]])}
    c_skip, c_out, _, _ = (c.reshape(-1, 1, 1, 1) for c in edm_coefficients(sigma, 1.0))
    f_p, f_q = cond["params"].reshape(-1, 1, 1, 1), cond["pooled"].reshape(-1, 1, 1, 1)
    d = obj.guided_denoiser(model, cond, 3.0)(x, sigma)
    torch.testing.assert_close(d, c_skip * x + c_out * 3.0 * (f_p + f_q))
    d = obj.guided_denoiser(model, cond, {"params": 2.0, "pooled": 0.5})(x, sigma)
    torch.testing.assert_close(d, c_skip * x + c_out * (2.0 * f_p + 0.5 * f_q))
    with pytest.raises(UserInputError):
        obj.guided_denoiser(model, cond, {"tokens": 2.0})


def test_per_key_guidance_extrapolates_one_condition_given_the_others():
    """Nested CFG with the scale-1 keys first: {params: g, pooled: 1} is
    D(pooled) + g (D(params, pooled) - D(pooled)); all scales 1 are the conditional model."""
    obj = build_objective(ObjectiveConfig())

    def model(x, sigma, params=None, pooled=None):  # not additive: the conditions interact
        p = torch.zeros(x.shape[0]) if params is None else torch.nan_to_num(params).sum(1)
        q = torch.ones(x.shape[0]) if pooled is None else torch.nan_to_num(pooled).sum(1)
        return (p * q + q).reshape(-1, 1, 1, 1) * torch.ones_like(x)

    x, sigma = torch.randn(2, 1, 2, 4), torch.tensor([0.5, 2.0])
    cond = {"params": torch.tensor([[1.0], [2.0]]), "pooled": torch.tensor([[0.5], [-1.0]])}
    both = obj.denoiser(model, cond)(x, sigma)
    only_pooled = obj.denoiser(model, {"params": None, "pooled": cond["pooled"]})(x, sigma)
    d = obj.guided_denoiser(model, cond, {"params": 3.0, "pooled": 1.0})(x, sigma)
    torch.testing.assert_close(d, only_pooled + 3.0 * (both - only_pooled))
    ones = obj.guided_denoiser(model, cond, {"params": 1.0, "pooled": 1.0})(x, sigma)
    torch.testing.assert_close(ones, both)


@pytest.mark.parametrize("shape,axes,level", [((2, 3, 8, 16), (-2, -1), 1),
                                              ((2, 3, 8, 16), (-2, -1), 2),
                                              ((2, 2, 4, 8, 8), (-3, -2, -1), 1),
                                              ((2, 1, 8, 16), (-1,), 2)])
def test_wavelet_representation_round_trip_and_shapes(shape, axes, level):
    rep = WaveletRepresentation("db2", level=level, axes=axes)
    x = torch.randn(shape, dtype=F64, generator=torch.Generator().manual_seed(0))
    y = rep.encode(x)
    assert tuple(y.shape) == rep.shape(shape) and y.shape[1] == rep.channels(shape[1])
    assert rep.inverse_shape(y.shape) == tuple(shape)
    torch.testing.assert_close(rep.decode(y), x, atol=1e-12, rtol=0)
    torch.testing.assert_close(y.norm(), x.norm(), atol=1e-12, rtol=0)  # orthogonal map
    again = WaveletRepresentation.from_dict(json.loads(json.dumps(rep.to_dict())))
    assert again == rep and torch.equal(pickle.loads(pickle.dumps(rep)).encode(x), y)


def test_wavelet_representation_keeps_white_noise_white():
    rep = WaveletRepresentation("db2", level=1)
    n = 20000
    z = torch.randn(n, 1, 4, 8, dtype=F64, generator=torch.Generator().manual_seed(0))
    y = rep.encode(z).reshape(n, -1)  # (n, 32)
    cov = y.T @ y / n
    assert float((cov - torch.eye(32, dtype=F64)).abs().max()) < 5 / math.sqrt(n)
    # a biorthogonal wavelet is not orthogonal: norms change, and it is flagged
    bior = WaveletRepresentation("bior2.4", level=1)
    assert rep.orthogonal and not bior.orthogonal and pywt.Wavelet("bior2.4").orthogonal is False
    x = z[:4]
    assert not torch.allclose(bior.encode(x).norm(), x.norm(), rtol=1e-3)
    torch.testing.assert_close(bior.decode(bior.encode(x)), x, atol=1e-10, rtol=0)


def test_wavelet_representation_level_zero_and_errors():
    x = torch.randn(2, 1, 6, 10)
    assert torch.equal(WaveletRepresentation(level=0).encode(x), x)
    for kw in (dict(wavelet="db99"), dict(level=-1), dict(axes=(2, 3)), dict(level=True)):
        with pytest.raises(UserInputError):
            WaveletRepresentation(**kw)
    with pytest.raises(UserInputError, match="divisible"):
        WaveletRepresentation(level=2).shape((2, 1, 6, 10))
    with pytest.raises(UserInputError):
        WaveletRepresentation(level=1).encode(torch.randn(2, 1, 6, 9))
    with pytest.raises(UserInputError, match="allowed"):
        WaveletRepresentation.from_dict({"wavelets": "db2"})
