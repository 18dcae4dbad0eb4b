"""Fast diffusion samplers behind one contract: ``denoise(x, sigma) -> x0_hat`` (VE coordinates).

Contract. A model is seen only as ``denoise(x, sigma)`` with ``x = x0 + sigma * eps`` and
``sigma`` a (B,) tensor of x's dtype and device (:func:`to_denoiser` and
:func:`from_diffusers` build it from eps/x0/v/flow/score networks of any schedule).
A sampler is ``sample_<name>(denoise, x, sigmas, *, noise=None, callback=None, **opts)``:
``sigmas`` is 1-D and descending (normally from :func:`get_sigmas`, ending in 0), ``x`` is
the state at ``sigmas[0]``; the result is the state at ``sigmas[-1]``. ``x`` may have any
rank >= 2, fp32 or fp64, on any device. ``SAMPLERS`` maps names to functions, ``sample``
dispatches by name, ``nfe(name, n, **opts)`` gives the denoiser calls on an n-step grid
ending in 0 and ``steps_for_nfe`` inverts it.

Final step. A step to sigma = 0 never calls the model at 0 (lambda = +inf there): it
returns the latest denoised estimate (first order in lambda, local error O(sigma_min^2)),
except rho-AB DEIS (``time="sigma"``) which takes a regular Adams-Bashforth step.

NFE on an n-step grid ending in 0: n for euler, euler_ancestral, dpm_solver_1, dpmpp_2m,
dpmpp_3m, dpmpp_2m_sde, deis, unipc, rf_euler; 2n - 1 for heun, dpm_solver_2, dpmpp_2s,
rf_heun, rf_midpoint; 3n - 2 for dpm_solver_3; dpm_adaptive reports its count through the
callback (``nfe`` key).

Callback. ``callback(dict(i=..., x=..., sigma=..., denoised=...))`` once per step, with the
state before the step, its noise level and the denoised estimate there.

Noise. SDE samplers (euler_ancestral, heun with churn, dpmpp_2m_sde) draw only through
``noise``: None, a torch.Generator, a tensor (n_steps, *x.shape) or a callable
``noise(i, shape)``; :func:`seeded_noise` gives per-sample seeds, so a sample does not
depend on the batch it is drawn in.

This package imports torch only and never genphys.
"""

from ._common import SAMPLERS, get_sampler, nfe, sample, seeded_noise, steps_for_nfe
from .adaptive import sample_dpm_adaptive
from .deis import sample_deis
from .diffusers_adapter import from_diffusers
from .dpm_solver import sample_dpm_solver_1, sample_dpm_solver_2, sample_dpm_solver_3
from .dpmpp import sample_dpmpp_2m, sample_dpmpp_2m_sde, sample_dpmpp_2s, sample_dpmpp_3m
from .euler import sample_euler, sample_euler_ancestral, sample_heun
from .fkc import FKCTarget, effective_sample_size, sample_fkc, systematic_resample
from .flow import sample_rf_euler, sample_rf_heun, sample_rf_midpoint
from .guidance import (
    cfg,
    cfg_batched,
    multi_cfg,
    multi_cfg_batched,
    project_mean,
    project_values,
    with_x0_correction,
)
from .parameterizations import PREDICTIONS, target, to_denoiser, to_x0
from .schedules import (
    EDM,
    SCHEDULES,
    VE,
    RectifiedFlow,
    Schedule,
    VPCosine,
    VPDiscrete,
    VPLinear,
)
from .sigmas import DEFAULT_SIGMA_MAX, DEFAULT_SIGMA_MIN, SIGMA_KINDS, get_sigmas
from .unipc import sample_unipc

__all__ = [
    "SAMPLERS", "sample", "nfe", "steps_for_nfe", "get_sampler", "seeded_noise",
    "get_sigmas", "SIGMA_KINDS", "DEFAULT_SIGMA_MIN", "DEFAULT_SIGMA_MAX",
    "to_denoiser", "target", "to_x0", "PREDICTIONS", "from_diffusers",
    "Schedule", "VPLinear", "VPCosine", "VPDiscrete", "VE", "EDM", "RectifiedFlow", "SCHEDULES",
    "sample_euler", "sample_euler_ancestral", "sample_heun",
    "sample_dpm_solver_1", "sample_dpm_solver_2", "sample_dpm_solver_3",
    "sample_dpmpp_2s", "sample_dpmpp_2m", "sample_dpmpp_3m", "sample_dpmpp_2m_sde",
    "sample_deis", "sample_unipc", "sample_rf_euler", "sample_rf_heun", "sample_rf_midpoint",
    "sample_dpm_adaptive", "sample_fkc", "FKCTarget", "systematic_resample",
    "effective_sample_size",
    "cfg", "cfg_batched", "multi_cfg", "multi_cfg_batched", "with_x0_correction",
    "project_mean", "project_values",
]
