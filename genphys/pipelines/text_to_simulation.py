"""Text (and optional initial field / parameters) -> space-time trajectories in physical units."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from diffusers.utils import BaseOutput
from torch import Tensor

from genphys.errors import UserInputError
from genphys.pipelines.base import SimulationPipeline


@dataclass
class SimulationOutput(BaseOutput):
    """Generated trajectories and what they were conditioned on."""

    trajectories: Tensor  # (B, C, T, *space) float64, physical units
    params: dict[str, np.ndarray]  # parameter name -> (B,) values asked for (NaN = not stated)
    prompts: list[str] | None  # (B,) prompt of each sample
    seeds: list[int]  # (B,) per-sample seeds
    field_names: tuple[str, ...]  # names of the C channels


def resolve_seeds(generator: Any, n: int) -> list[int]:
    """Per-sample seeds from an int (seed, seed+1, ...), a list, a torch.Generator or None."""
    if generator is None:
        return torch.randint(0, 2**31 - 1, (n,)).tolist()
    if isinstance(generator, torch.Generator):
        return torch.randint(0, 2**31 - 1, (n,), generator=generator).tolist()
    if isinstance(generator, (int, np.integer)) and not isinstance(generator, bool):
        return [int(generator) + i for i in range(n)]
    seeds = list(generator)
    if len(seeds) != n or not all(isinstance(s, (int, np.integer)) for s in seeds):
        raise UserInputError(f"generator={generator!r} is invalid; give an int seed, a "
                             f"torch.Generator or a list of {n} int seeds (one per sample).")
    return [int(s) for s in seeds]


class TextToSimulationPipeline(SimulationPipeline):
    """Prompt -> trajectories: encode -> sample -> from_wavelet -> denormalize.

    The prompt goes to the text encoder if the backbone has text slots; PDE parameters
    named in the prompt ("viscosity 0.003") or given in ``params`` go to the params slot.
    """

    @torch.no_grad()
    def __call__(self, prompt: str | Sequence[str] | None = None, *,
                 num_inference_steps: int = 10,  # grid steps (NFE depends on the sampler)
                 sampler: Any = "dpmpp_2m",  # samplers.SAMPLERS name or a diffusers scheduler
                 guidance_scale: float | Mapping[str, float] | None = None,  # CFG (None: off)
                 num_samples: int = 1,  # samples per prompt / condition
                 generator: Any = None,  # int seed, per-sample seeds, or torch.Generator
                 params: Mapping[str, Any] | Sequence[float] | None = None,  # PDE parameters
                 initial_state: Any = None,  # physical first frame(s) (C, *space)/(N, C, *space)
                 sigma_kind: str = "loguniform",  # samplers.get_sigmas grid kind
                 sigma_options: Mapping[str, Any] | None = None,  # grid options (e.g. rho)
                 sampler_options: Mapping[str, Any] | None = None,  # sampler keywords
                 impose_initial_state: bool = True,  # x0 correction: frame 0 = initial_state
                 conserve: bool | None = None,  # project onto the PDE's conserved mean
                 ) -> SimulationOutput:
        """Generate ``num_samples`` trajectories per prompt (or per initial state)."""
        prompts = self.check_prompts(prompt)
        if prompts is None and initial_state is None and params is None:
            raise UserInputError("give a prompt, an initial_state or params; an empty "
                                 "request has nothing to condition on.")
        if not isinstance(num_samples, int) or isinstance(num_samples, bool) or num_samples < 1:
            raise UserInputError(f"num_samples={num_samples!r} is invalid; allowed: an "
                                 "integer >= 1.")
        n_cond = len(prompts) if prompts else _count_states(initial_state, self.spec)
        batch = n_cond * num_samples
        seeds = resolve_seeds(generator, batch)
        frame0 = self.encode_initial_state(initial_state, batch, num_samples)  # (B, C, *space)
        cond, values = self.encode(prompts, params, frame0, batch, num_samples)
        impose = frame0 is not None and impose_initial_state
        known = (frame0[:, :, None], 1) if impose else None  # frame 0 set after every step
        coeffs = self.sample_coefficients(cond, seeds, num_inference_steps, sampler,
                                          guidance_scale, sigma_kind, sigma_options,
                                          sampler_options, known=known,
                                          conserve=self.conserved_channels(conserve))
        trajectories = self.decode(coeffs)  # from_wavelet + denormalize
        return SimulationOutput(
            trajectories=trajectories, params=values,
            prompts=[p for p in prompts for _ in range(num_samples)] if prompts else None,
            seeds=seeds, field_names=self.spec.field_names)

    def encode(self, prompts: list[str] | None, params: Any, frame0: Tensor | None, batch: int,
               repeat: int) -> tuple[dict[str, Tensor], dict[str, np.ndarray]]:
        """All conditions as backbone keywords, plus the parameter values asked for.

        ``frame0``: the normalized first frames ``(B, C, *space)`` (``encode_initial_state``).
        """
        cond = self.encode_text(prompts, repeat)
        pcond, values = self.encode_params(params, prompts, batch, repeat)
        return {**cond, **pcond, **self.field_condition(frame0)}, values


def _count_states(state: Any, spec: Any) -> int:
    """Number of initial states in ``(C, *space)`` (1) or ``(N, C, *space)`` (N); 1 if None."""
    if state is None:
        return 1
    nd = np.ndim(state)
    return 1 if nd == len(spec.field_shape) - 1 else int(np.shape(state)[0])
