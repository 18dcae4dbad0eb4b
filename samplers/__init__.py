"""Fast diffusion samplers behind one contract: ``denoise(x, sigma) -> x0_hat`` (VE coordinates).

A sampler is ``sample_<name>(denoise, x, sigmas, *, noise=None, callback=None, **opts)``;
``sigmas`` is 1-D, descending, usually ending in 0 (see :func:`get_sigmas`), and ``x`` is
the state at ``sigmas[0]``. ``SAMPLERS`` maps names to functions, ``sample(name, ...)``
dispatches and ``nfe(name, n, **opts)`` gives the number of denoiser calls for n steps.

This package imports torch only and never genphys.
"""

from ._common import SAMPLERS, get_sampler, nfe, sample, seeded_noise
from .adaptive import sample_dpm_adaptive
from .deis import sample_deis
from .diffusers_adapter import from_diffusers
from .dpm_solver import sample_dpm_solver_1, sample_dpm_solver_2, sample_dpm_solver_3
from .dpmpp import sample_dpmpp_2m, sample_dpmpp_2m_sde, sample_dpmpp_2s, sample_dpmpp_3m
from .euler import sample_euler, sample_euler_ancestral, sample_heun
from .flow import sample_rf_euler, sample_rf_heun, sample_rf_midpoint
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
from .sigmas import SIGMA_KINDS, get_sigmas
from .unipc import sample_unipc

__all__ = [
    "SAMPLERS", "sample", "nfe", "get_sampler", "seeded_noise", "get_sigmas", "SIGMA_KINDS",
    "to_denoiser", "target", "to_x0", "PREDICTIONS", "from_diffusers",
    "Schedule", "VPLinear", "VPCosine", "VPDiscrete", "VE", "EDM", "RectifiedFlow", "SCHEDULES",
    "sample_euler", "sample_euler_ancestral", "sample_heun",
    "sample_dpm_solver_1", "sample_dpm_solver_2", "sample_dpm_solver_3",
    "sample_dpmpp_2s", "sample_dpmpp_2m", "sample_dpmpp_3m", "sample_dpmpp_2m_sde",
    "sample_deis", "sample_unipc", "sample_rf_euler", "sample_rf_heun", "sample_rf_midpoint",
    "sample_dpm_adaptive",
]
