"""Configuration of a training objective: :class:`ObjectiveConfig` (frozen, JSON-able).

Recipes (see docs/diffusion.md):

- EDM (Karras et al. 2022): ``ObjectiveConfig()`` — schedule "edm", x0 prediction through
  the EDM preconditioner, EDM weighting, log-normal noise levels.
- DDPM-style (Ho et al. 2020): ``kind="diffusion", schedule="vp_cosine", prediction="eps",
  preconditioning="none", weighting="uniform", noise_sampling="uniform"``.
- Rectified flow / flow matching (Liu et al. 2023; Lipman et al. 2023; logit-normal times of
  Esser et al. 2024): ``ObjectiveConfig.flow()``.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Literal

from genphys.errors import UserInputError
from samplers import PREDICTIONS, SCHEDULES

KINDS = ("diffusion", "flow")
PRECONDITIONINGS = ("none", "edm")
WEIGHTINGS = ("uniform", "snr", "sigma_sq", "min_snr", "snr_plus_one", "truncated_snr", "edm")
NOISE_SAMPLINGS = ("lognormal", "uniform", "logit_normal")
NOISE_INPUTS = ("sigma", "t")
DROPPABLE = ("params", "pooled", "tokens", "cond")
EDM_SIGMA_MIN = 0.002  # Karras et al. (2022), Table 1
EDM_SIGMA_MAX = 80.0


@dataclass(frozen=True)
class ObjectiveConfig:
    """What a diffusion/flow model is trained to predict, at which noise levels, how weighted."""

    kind: Literal["diffusion", "flow"] = "diffusion"  # "flow": rectified flow on the linear path
    schedule: str = "edm"  # samplers.SCHEDULES: edm, vp_linear, vp_cosine, vp_discrete, ve, flow
    prediction: str = "x0"  # network target: eps, x0, v, flow (velocity) or score
    preconditioning: Literal["none", "edm"] = "edm"  # EDM c_skip/c_out/c_in wrapper (needs x0)
    weighting: str = "edm"  # loss weight, see WEIGHTINGS and docs/diffusion.md
    min_snr_gamma: float = 5.0  # gamma of the min_snr weighting (Hang et al. 2023)
    noise_sampling: Literal["lognormal", "uniform", "logit_normal"] = "lognormal"  # training p(t)
    p_mean: float = -1.2  # mean of ln(sigma) for "lognormal" (EDM)
    p_std: float = 1.2  # std of ln(sigma) for "lognormal" (EDM)
    logit_mean: float = 0.0  # mean of logit(t) for "logit_normal" (Esser et al. 2024)
    logit_std: float = 1.0  # std of logit(t) for "logit_normal"
    sigma_data: float = 1.0  # data std assumed by EDM preconditioning/weighting (normalized data)
    noise_input: Literal["sigma", "t"] = "sigma"  # what the backbone gets: VE sigma or native t
    cond_dropout: dict[str, float] = field(default_factory=dict)  # key -> per-sample drop prob
    sigma_min: float | None = None  # smallest VE sigma (train and sample); None: schedule/EDM
    sigma_max: float | None = None  # largest VE sigma (train and sample); None: schedule/EDM
    schedule_options: dict[str, Any] = field(default_factory=dict)  # kwargs of the schedule
    # None: every trajectory weighs alike; a number: each trajectory's loss is divided by its
    # mean square (physical units over std^2) plus this floor, i.e. the squared relative L2
    # of the metrics, so weak (decayed) trajectories are not under-weighted (trainer only)
    relative_floor: float | None = None

    def __post_init__(self) -> None:
        _check_choice(self.kind, "kind", KINDS)
        _check_choice(self.schedule, "schedule", tuple(SCHEDULES))
        _check_choice(self.prediction, "prediction", PREDICTIONS)
        _check_choice(self.preconditioning, "preconditioning", PRECONDITIONINGS)
        _check_choice(self.weighting, "weighting", WEIGHTINGS)
        _check_choice(self.noise_sampling, "noise_sampling", NOISE_SAMPLINGS)
        _check_choice(self.noise_input, "noise_input", NOISE_INPUTS)
        if self.relative_floor is not None and not self.relative_floor > 0:
            raise UserInputError(f"objective.relative_floor={self.relative_floor} must be "
                                 "positive or null.")
        if self.kind == "flow" and self.schedule != "flow":
            raise UserInputError(f"kind='flow' needs schedule='flow' (the linear path), got "
                                 f"schedule={self.schedule!r}.")
        if self.preconditioning == "edm" and self.prediction != "x0":
            raise UserInputError(f"preconditioning='edm' wraps the network into an x0 predictor "
                                 f"and needs prediction='x0', got {self.prediction!r}.")
        if self.preconditioning == "edm" and self.noise_input != "sigma":
            raise UserInputError("preconditioning='edm' feeds the network c_noise = ln(sigma)/4 "
                                 "and needs noise_input='sigma'.")
        for name in ("p_std", "logit_std", "sigma_data", "min_snr_gamma"):
            _check_positive(getattr(self, name), name)
        self._check_dropout()
        self._check_sigmas()

    def _check_dropout(self) -> None:
        if not isinstance(self.cond_dropout, dict):
            raise UserInputError(f"cond_dropout={self.cond_dropout!r} must be a dict such as "
                                 "{'params': 0.1, 'tokens': 0.1}.")
        for key, p in self.cond_dropout.items():
            if key not in DROPPABLE:
                raise UserInputError(f"cond_dropout key {key!r} is not a droppable condition; "
                                     f"allowed: {', '.join(DROPPABLE)}.")
            if not isinstance(p, (int, float)) or not 0.0 <= float(p) <= 1.0:
                raise UserInputError(f"cond_dropout[{key!r}]={p!r} is invalid; allowed: a "
                                     "probability in [0, 1].")

    def _check_sigmas(self) -> None:
        try:
            self.build_schedule()
        except TypeError as err:
            raise UserInputError(f"schedule_options={self.schedule_options!r} do not fit "
                                 f"schedule {self.schedule!r}: {err}.") from None
        lo, hi = self.sigma_range()
        if not 0.0 < lo < hi < math.inf:
            raise UserInputError(f"sigma_min={lo!r}, sigma_max={hi!r} are invalid; allowed: "
                                 "0 < sigma_min < sigma_max < inf.")

    def build_schedule(self):
        """The ``samplers`` schedule object this config names."""
        return SCHEDULES[self.schedule](**self.schedule_options)

    def sigma_range(self) -> tuple[float, float]:
        """(sigma_min, sigma_max): configured, else the schedule's range clipped to EDM's."""
        sched = self.build_schedule()
        lo = self.sigma_min if self.sigma_min is not None else max(sched.sigma_min, EDM_SIGMA_MIN)
        hi = self.sigma_max if self.sigma_max is not None else min(sched.sigma_max, EDM_SIGMA_MAX)
        return float(lo), float(hi)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict of every field (round trip through :meth:`from_dict`)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ObjectiveConfig:
        """Build from a dict; unknown keys are rejected with the list of valid ones."""
        valid = [f.name for f in dataclasses.fields(cls)]
        bad = [k for k in d if k not in valid]
        if bad:
            raise UserInputError(f"unknown objective config keys {bad}; allowed: "
                                 f"{', '.join(valid)}.")
        return cls(**d)

    @classmethod
    def flow(cls, **overrides: Any) -> ObjectiveConfig:
        """Rectified flow recipe: flow target, uniform weight, logit-normal t (SD3)."""
        base = dict(kind="flow", schedule="flow", prediction="flow", preconditioning="none",
                    weighting="uniform", noise_sampling="logit_normal")
        return cls(**{**base, **overrides})


def _check_choice(value: Any, name: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise UserInputError(f"{name}={value!r} is not allowed; choose one of "
                             f"{', '.join(allowed)}.")


def _check_positive(value: Any, name: str) -> None:
    if not isinstance(value, (int, float)) or not (0 < float(value) < math.inf):
        raise UserInputError(f"{name}={value!r} is invalid; allowed: a positive finite number.")
