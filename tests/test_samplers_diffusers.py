"""Exactness against diffusers: the same eps model through ``from_diffusers`` and our samplers
reproduces diffusers' DDIM (eta 0 and 1) and DPM-Solver++(2M) schedulers step for step."""

import math

import pytest
import torch

import samplers as S

diffusers = pytest.importorskip("diffusers")

CFG = dict(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012,
           num_train_timesteps=1000)
DATA_STD = 0.5


def _eps_model(alphas_cumprod):
    """Exact E[eps | x_t] for data N(0, DATA_STD^2 I) at integer timesteps (VP coordinates)."""

    def model(x_t, t):
        a2 = alphas_cumprod[torch.as_tensor(t).round().long()].double()
        a2 = a2.reshape(-1, *[1] * (x_t.ndim - 1))  # (B, 1, ..., 1)
        s = (1 - a2).sqrt()
        return s * x_t / (a2 * DATA_STD**2 + s**2)

    return model


def _run_diffusers(sched, model, x, noises=None, **step_kw):
    for i, t in enumerate(sched.timesteps):
        kw = dict(step_kw, variance_noise=noises[i]) if noises is not None else step_kw
        x = sched.step(model(x, t.reshape(1).expand(x.shape[0])), t, x, **kw).prev_sample
    return x


def _our_sigmas(sched):
    abar = sched.alphas_cumprod.double()
    sig = [((1 - abar[t]) / abar[t]).sqrt().item() for t in sched.timesteps]
    return torch.tensor(sig + [0.0], dtype=torch.float64)


@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_euler_and_ancestral_match_diffusers_ddim(eta):
    sched = diffusers.DDIMScheduler(**CFG, clip_sample=False, set_alpha_to_one=True,
                                    steps_offset=1)
    sched.set_timesteps(10)
    model = _eps_model(sched.alphas_cumprod)
    g = torch.Generator().manual_seed(0)
    x_T = torch.randn(2, 3, 4, generator=g, dtype=torch.float64)
    noises = torch.randn(10, 2, 3, 4, generator=g, dtype=torch.float64)
    ref = _run_diffusers(sched, model, x_T, noises=noises, eta=eta)
    sigmas = _our_sigmas(sched)
    den = S.from_diffusers(model, sched.config)
    x = x_T * math.sqrt(1 + sigmas[0].item() ** 2)  # VP -> VE
    if eta == 0:
        ours = S.sample_euler(den, x, sigmas)
    else:
        ours = S.sample_euler_ancestral(den, x, sigmas, eta=eta, noise=noises)
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-6)


def test_dpmpp_2m_matches_diffusers_multistep():
    sched = diffusers.DPMSolverMultistepScheduler(**CFG, final_sigmas_type="zero")
    sched.set_timesteps(12)
    model = _eps_model(sched.alphas_cumprod)
    x_T = torch.randn(2, 2, 5, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    ref = _run_diffusers(sched, model, x_T)
    sigmas = _our_sigmas(sched)
    torch.testing.assert_close(sigmas.float(), sched.sigmas.float(), rtol=1e-5, atol=0)
    ours = S.sample_dpmpp_2m(S.from_diffusers(model, sched.config),
                             x_T * math.sqrt(1 + sigmas[0].item() ** 2), sigmas)
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-6)
