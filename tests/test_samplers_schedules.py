"""Schedules, parameterizations, step grids and the diffusers adapter of ``samplers``."""

import math

import pytest
import torch

import samplers as S
from samplers.parameterizations import target, to_x0

SCHEDULES = {
    "vp_linear": S.VPLinear(),
    "vp_cosine": S.VPCosine(),
    "ddpm_linear": S.VPDiscrete(beta_schedule="linear", beta_start=1e-4, beta_end=0.02),
    "ddpm_scaled_linear": S.VPDiscrete(),
    "ddpm_cosine": S.VPDiscrete(beta_schedule="squaredcos_cap_v2"),
    "ve": S.VE(),
    "edm": S.EDM(),
    "flow": S.RectifiedFlow(),
}


def _times(schedule, n=17):
    """n native times strictly inside the schedule's range (float64)."""
    lo, hi = schedule.t_min, schedule.t_max
    return torch.linspace(lo + 0.01 * (hi - lo), hi - 0.01 * (hi - lo), n, dtype=torch.float64)


@pytest.mark.parametrize("name", list(SCHEDULES))
def test_time_sigma_round_trip_and_lambda(name):
    sch = SCHEDULES[name]
    t = _times(sch)
    sig = sch.sigma_ve(t)
    assert torch.all(sig[1:] > sig[:-1]), "sigma_ve must increase with t"
    torch.testing.assert_close(sch.t_of_sigma(sig), t, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(sch.sigma_ve(t), sch.sigma(t) / sch.alpha(t), rtol=1e-6, atol=0)
    torch.testing.assert_close(sch.lambda_(t), torch.log(sch.alpha(t) / sch.sigma(t)))
    torch.testing.assert_close(sch.t_of_lambda(sch.lambda_(t)), t, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", ["vp_linear", "vp_cosine", "ddpm_linear", "ddpm_cosine"])
def test_vp_schedules_preserve_variance(name):
    sch = SCHEDULES[name]
    t = _times(sch)
    torch.testing.assert_close(sch.alpha(t) ** 2 + sch.sigma(t) ** 2, torch.ones_like(t))


def test_closed_forms_of_flow_edm_and_vp_linear():
    t = torch.linspace(0.05, 0.95, 7, dtype=torch.float64)
    torch.testing.assert_close(S.RectifiedFlow().sigma_ve(t), t / (1 - t))
    torch.testing.assert_close(S.EDM().sigma_ve(t), t)
    vp = S.VPLinear(beta_min=0.1, beta_max=20.0)
    log_abar = -0.5 * t**2 * 19.9 - 0.1 * t  # Song et al. (2021), eq. 33 integrated
    torch.testing.assert_close(vp.alpha(t) ** 2, torch.exp(log_abar))


@pytest.mark.parametrize("name", list(SCHEDULES))
def test_derivatives_match_finite_differences(name):
    sch, eps = SCHEDULES[name], 1e-6
    t = _times(sch, 9)
    if isinstance(sch, S.VPDiscrete):
        t = t.floor() + 0.5  # inside an interpolation cell, away from the kinks
    for f, df in ((sch.alpha, sch.d_alpha), (sch.sigma, sch.d_sigma)):
        fd = (f(t + eps) - f(t - eps)) / (2 * eps)
        torch.testing.assert_close(df(t), fd, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("prediction", S.PREDICTIONS)
@pytest.mark.parametrize("name", list(SCHEDULES))
def test_parameterization_round_trip(name, prediction):
    sch, g = SCHEDULES[name], torch.Generator().manual_seed(0)
    t = _times(sch, 6)
    x0 = torch.randn(6, 2, 5, generator=g, dtype=torch.float64)
    eps = torch.randn(6, 2, 5, generator=g, dtype=torch.float64)
    a, s = sch.alpha(t).reshape(-1, 1, 1), sch.sigma(t).reshape(-1, 1, 1)
    x_t = a * x0 + s * eps
    out = target(prediction, x0, eps, sch, t)
    torch.testing.assert_close(to_x0(prediction, out, x_t, sch, t), x0, rtol=1e-6, atol=1e-6)

    def oracle(xt, tt):  # a perfect network: knows x0, recovers eps from xt
        e = (xt - sch.alpha(tt).reshape(-1, 1, 1) * x0) / sch.sigma(tt).reshape(-1, 1, 1)
        return target(prediction, x0, e, sch, tt)

    den = S.to_denoiser(oracle, sch, prediction)
    sigma = sch.sigma_ve(t)
    torch.testing.assert_close(den(x0 + sigma.reshape(-1, 1, 1) * eps, sigma), x0,
                               rtol=1e-6, atol=1e-6)


def test_known_targets():
    sch, t = S.RectifiedFlow(), torch.tensor([0.3, 0.6], dtype=torch.float64)
    x0, eps = torch.ones(2, 3, dtype=torch.float64), 2 * torch.ones(2, 3, dtype=torch.float64)
    torch.testing.assert_close(target("flow", x0, eps, sch, t), eps - x0)
    vp, t = S.VPCosine(), torch.tensor([0.4], dtype=torch.float64)
    a, s = vp.alpha(t), vp.sigma(t)
    torch.testing.assert_close(target("v", x0[:1], eps[:1], vp, t), a * eps[:1] - s * x0[:1])
    torch.testing.assert_close(target("score", x0[:1], eps[:1], vp, t), -eps[:1] / s)
    with pytest.raises(ValueError, match="allowed: eps, x0, v, flow, score"):
        S.to_denoiser(lambda x, t: x, vp, "noise")


@pytest.mark.parametrize("kind", S.SIGMA_KINDS)
@pytest.mark.parametrize("n", [1, 2, 10, 37])
def test_get_sigmas_shape_monotone_and_zero_end(kind, n):
    opts = {"schedule": S.VPLinear()} if kind == "uniform_t" else {}
    sig = S.get_sigmas(kind, n, sigma_min=0.01, sigma_max=50.0, **opts)
    assert sig.shape == (n + 1,) and sig.dtype == torch.float64
    assert torch.all(sig[1:] < sig[:-1]) and sig[-1] == 0
    assert math.isclose(sig[0].item(), 50.0, rel_tol=1e-9)
    if n > 1:
        assert math.isclose(sig[-2].item(), 0.01, rel_tol=1e-9)


def test_get_sigmas_formulas():
    sig = S.get_sigmas("karras", 4, sigma_min=0.1, sigma_max=10.0, rho=3.0)[:-1]
    ramp = torch.linspace(0, 1, 4, dtype=torch.float64)
    torch.testing.assert_close(sig, (10 ** (1 / 3) + ramp * (0.1 ** (1 / 3) - 10 ** (1 / 3))) ** 3)
    log_steps = torch.diff(torch.log(S.get_sigmas("loguniform", 6, sigma_min=0.1,
                                                  sigma_max=10.0)[:-1]))
    torch.testing.assert_close(log_steps, torch.full_like(log_steps, math.log(1e-2) / 5))
    vp = S.VPLinear()
    t = vp.t_of_sigma(S.get_sigmas("uniform_t", 5, sigma_min=0.1, sigma_max=10.0,
                                   schedule=vp)[:-1])
    torch.testing.assert_close(torch.diff(t), torch.full((4,), (t[-1] - t[0]).item() / 4,
                                                         dtype=torch.float64))
    # shift = 1 is uniform in flow time; shift > 1 spends more steps at high noise
    flow_t = S.RectifiedFlow().t_of_sigma(S.get_sigmas("flow_shift", 5, sigma_min=0.1,
                                                       sigma_max=10.0, shift=1.0)[:-1])
    torch.testing.assert_close(torch.diff(flow_t), torch.diff(flow_t)[:1].expand(4))
    s3 = S.get_sigmas("flow_shift", 5, sigma_min=0.1, sigma_max=10.0, shift=3.0)
    assert s3[2] > S.get_sigmas("flow_shift", 5, sigma_min=0.1, sigma_max=10.0, shift=1.0)[2]


def test_get_sigmas_errors():
    with pytest.raises(ValueError, match="allowed: karras, loguniform"):
        S.get_sigmas("cosine", 10)
    with pytest.raises(ValueError, match="n=0"):
        S.get_sigmas("karras", 0)
    with pytest.raises(ValueError, match="sigma_min"):
        S.get_sigmas("karras", 5, sigma_min=2.0, sigma_max=1.0)
    with pytest.raises(ValueError, match="schedule"):
        S.get_sigmas("uniform_t", 5)


@pytest.mark.parametrize("cfg", [
    dict(beta_schedule="linear", beta_start=1e-4, beta_end=0.02),
    dict(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012),
    dict(beta_schedule="squaredcos_cap_v2"),
])
def test_from_diffusers_matches_ddpm_alphas_cumprod(cfg):
    from diffusers import DDPMScheduler

    sched = DDPMScheduler(num_train_timesteps=1000, **cfg)
    ours = S.diffusers_adapter.schedule_from_config(sched.config)
    torch.testing.assert_close(ours.alphas_cumprod.float(), sched.alphas_cumprod,
                               rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("prediction", ["epsilon", "v_prediction"])
def test_from_diffusers_wraps_eps_and_v_models(prediction):
    from diffusers import DDPMScheduler

    sched = DDPMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012,
                          prediction_type=prediction)
    abar = sched.alphas_cumprod.double()
    g = torch.Generator().manual_seed(1)
    x0 = torch.randn(3, 2, 4, 4, generator=g, dtype=torch.float64)
    eps = torch.randn(3, 2, 4, 4, generator=g, dtype=torch.float64)
    steps = torch.tensor([10, 500, 999])
    seen = []

    class Out:  # a UNet-like output with .sample
        def __init__(self, sample):
            self.sample = sample

    def model(x_t, timestep):
        seen.append(timestep)
        a = abar[timestep.round().long()].sqrt().reshape(-1, 1, 1, 1)
        s = (1 - a**2).sqrt()
        return Out(eps if prediction == "epsilon" else a * eps - s * x0)

    den = S.from_diffusers(model, sched.config)  # prediction type from the config
    sigma = den.schedule.sigma_ve(steps.double())  # the trained timesteps' noise levels
    torch.testing.assert_close(sigma, ((1 - abar[steps]) / abar[steps]).sqrt(), rtol=1e-5, atol=0)
    # diffusers keeps alphas_cumprod in float32, hence the 1e-5 tolerance
    torch.testing.assert_close(den(x0 + sigma.reshape(-1, 1, 1, 1) * eps, sigma), x0,
                               rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(seen[-1], steps.double(), rtol=0, atol=1e-6)
    # between trained timesteps the adapter passes a fractional timestep (or rounds it)
    mid = (sigma[0] * sigma[1]).sqrt().reshape(1)
    den(x0[:1], mid)
    assert 10 < seen[-1].item() < 500 and seen[-1].item() != round(seen[-1].item())
    S.from_diffusers(model, sched.config, quantize=True)(x0[:1], mid)
    assert seen[-1].item() == round(seen[-1].item())
    with pytest.raises(ValueError, match="allowed: epsilon, v_prediction, sample"):
        S.from_diffusers(model, sched.config, "flow")


def test_discrete_denoiser_beyond_trained_sigma_max():
    """sigma above the table's max: t is clamped to N-1 but x keeps the exact VP scaling."""
    sch = S.VPDiscrete()  # sigma_max ~ 14.6
    g = torch.Generator().manual_seed(4)
    x0 = torch.randn(2, 3, generator=g, dtype=torch.float64)
    eps = torch.randn(2, 3, generator=g, dtype=torch.float64)
    sigma = torch.tensor([40.0, 80.0], dtype=torch.float64)
    seen = []

    def oracle(x_t, t):  # exact eps for the true noise level, wherever t was clamped to
        seen.append(t)
        a = torch.rsqrt(1 + sigma**2).reshape(-1, 1)
        return (x_t - a * x0) / (a * sigma.reshape(-1, 1))

    den = S.to_denoiser(oracle, sch, "eps")
    torch.testing.assert_close(den(x0 + sigma.reshape(-1, 1) * eps, sigma), x0)
    torch.testing.assert_close(seen[-1], torch.full((2,), 999.0, dtype=torch.float64))
