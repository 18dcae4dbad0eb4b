"""Long horizons by chained windows, each conditioned on the last frames of the previous one.

Window k+1 starts from the last ``overlap`` frames of window k: frame 0 of those goes to the
first-frame conditioning slot, and all ``overlap`` frames are imposed on every x0 estimate
of the sampler (decode -> overwrite frames -> encode: the x0-correction hook of DPM-Solver,
Lu et al. 2022, i.e. inpainting of known frames as in WDNO, Hu et al. ICLR 2025), so the
stitched trajectory is continuous. Ensemble members differ only in their seeds.
"""

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

SEED_STRIDE = 1_000_003  # seeds of window w, member m, state n: seed + w*STRIDE + n*E + m


@dataclass
class RolloutOutput(BaseOutput):
    """Stitched ensembles, their mean and spread, and the raw windows."""

    trajectories: Tensor  # (N, E, C, horizon, *space) physical units
    mean: Tensor  # (N, C, horizon, *space) ensemble mean
    std: Tensor  # (N, C, horizon, *space) ensemble std (population; 0 for E = 1)
    windows: list[Tensor]  # per window (N, E, C, T, *space), physical units
    starts: list[int]  # first frame index of each window in the stitched trajectory


def _check_int(value: Any, name: str, low: int, high: int | None = None) -> int:
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= low
    if not ok or (high is not None and value > high):
        rng = f"{low}..{high}" if high is not None else f">= {low}"
        raise UserInputError(f"{name}={value!r} is invalid; allowed: an integer {rng}.")
    return value


class RolloutPipeline(SimulationPipeline):
    """Initial state -> ``horizon`` frames by chained windows; ensembles with mean and std."""

    @torch.no_grad()
    def __call__(self, initial_state: Any, horizon: int, *,
                 overlap: int = 1,  # frames shared by consecutive windows (conditioned frames)
                 ensemble_size: int = 1,  # members per initial state
                 num_inference_steps: int = 10,  # grid steps per window
                 sampler: Any = "dpmpp_2m",  # samplers.SAMPLERS name or a diffusers scheduler
                 guidance_scale: float | Mapping[str, float] | None = None,
                 generator: int = 0,  # base seed (see SEED_STRIDE)
                 prompt: str | Sequence[str] | None = None,  # optional text, one per state
                 params: Mapping[str, Any] | Sequence[float] | None = None,
                 sigma_kind: str = "loguniform", sigma_options: Mapping[str, Any] | None = None,
                 sampler_options: Mapping[str, Any] | None = None,
                 conserve: bool | None = None,  # project onto the PDE's conserved mean
                 ) -> RolloutOutput:
        """Roll out from physical ``initial_state`` ``(C, *space)`` or ``(N, C, *space)``."""
        if self.spec.condition != "first_frame":
            raise UserInputError("RolloutPipeline needs a model trained with first-frame "
                                 "conditioning (data.condition: first_frame).")
        t_win = self.spec.field_shape[1]
        overlap = _check_int(overlap, "overlap", 1, t_win - 1)
        horizon = _check_int(horizon, "horizon", 2)
        e = _check_int(ensemble_size, "ensemble_size", 1)
        n = 1 if np.ndim(initial_state) == len(self.spec.field_shape) - 1 else len(initial_state)
        prompts = self.check_prompts(prompt)
        frames = self.encode_initial_state(initial_state, n * e, e)[:, :, None]  # (B,C,1,*S)
        text = self.encode_text(prompts, e)
        pcond, _ = self.encode_params(params, prompts, n * e, e)
        keep = self.conserved_channels(conserve)
        windows, starts, start = [], [], 0
        while True:
            seeds = [int(generator) + len(windows) * SEED_STRIDE + b for b in range(n * e)]
            cond = {**text, **pcond, **self.field_condition(frames[:, :, 0])}
            coeffs = self.sample_coefficients(
                cond, seeds, num_inference_steps, sampler, guidance_scale, sigma_kind,
                sigma_options, sampler_options, known=(frames, frames.shape[2]),
                conserve=keep)
            window = self.rep.decode(coeffs).to(torch.float64)  # (B, C, T, *S) normalized
            windows.append(window)
            starts.append(start)
            if start + t_win >= horizon:
                break
            frames = window[:, :, t_win - overlap:]  # (B, C, overlap, *S)
            start += t_win - overlap
        return self._stitch(windows, starts, horizon, n, e)

    def _stitch(self, windows: list[Tensor], starts: list[int], horizon: int, n: int,
                e: int) -> RolloutOutput:
        """Concatenate windows (later windows skip the frames they were given), then stats."""
        parts = [windows[0]]
        for k in range(1, len(windows)):
            shared = starts[k - 1] + windows[k - 1].shape[2] - starts[k]
            parts.append(windows[k][:, :, shared:])
        full = self.spec.to_physical(torch.cat(parts, dim=2)[:, :, :horizon])  # (B, C, H, *S)
        full = full.reshape(n, e, *full.shape[1:])  # (N, E, C, H, *S)
        phys = [self.spec.to_physical(w).reshape(n, e, *w.shape[1:]) for w in windows]
        return RolloutOutput(trajectories=full, mean=full.mean(dim=1),
                             std=full.std(dim=1, unbiased=False), windows=phys, starts=starts)
