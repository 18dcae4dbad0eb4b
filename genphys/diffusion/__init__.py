"""Training objectives shared with the samplers, conditioning dropout, wavelet model space.

``build_objective(ObjectiveConfig(...))`` gives an :class:`Objective` with ``loss`` (eps, x0,
v, flow or score targets; EDM preconditioning; weightings; per-key conditioning dropout),
``denoiser`` (the sampler contract ``denoise(x, sigma)``) and ``sample``. See docs/diffusion.md.
"""

from genphys.diffusion.config import (
    DROPPABLE,
    KINDS,
    NOISE_SAMPLINGS,
    PRECONDITIONINGS,
    WEIGHTINGS,
    ObjectiveConfig,
)
from genphys.diffusion.dropout import drop_conditions, null_conditions
from genphys.diffusion.objective import Objective, build_objective
from genphys.diffusion.representation import WaveletRepresentation
from genphys.diffusion.weighting import edm_coefficients, target_weight, x0_weight

__all__ = [
    "ObjectiveConfig", "Objective", "build_objective", "WaveletRepresentation",
    "drop_conditions", "null_conditions", "edm_coefficients", "x0_weight", "target_weight",
    "KINDS", "PRECONDITIONINGS", "WEIGHTINGS", "NOISE_SAMPLINGS", "DROPPABLE",
]
