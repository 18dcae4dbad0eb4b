"""Adapter: sample diffusers-trained discrete-time eps/v/x0 models with genphys samplers.

``from_diffusers(model, scheduler_config, prediction_type)`` builds the model's DDPM beta
table (:class:`VPDiscrete`, same formulas as diffusers' schedulers), maps each continuous VE
sigma to a fractional timestep by interpolating log sigma between the trained timesteps
(k-diffusion's ``DiscreteSchedule``; ``quantize=True`` rounds to the nearest trained
timestep instead) and converts the output to x0 with :func:`to_denoiser`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from torch import Tensor

from .parameterizations import to_denoiser
from .schedules import VPDiscrete

__all__ = ["from_diffusers", "schedule_from_config"]

_PREDICTIONS = {"epsilon": "eps", "v_prediction": "v", "sample": "x0"}
# diffusers' DDPMScheduler defaults, used for keys missing from the config
_DEFAULTS = {"beta_schedule": "linear", "beta_start": 0.0001, "beta_end": 0.02,
             "num_train_timesteps": 1000, "prediction_type": "epsilon"}


def _as_dict(config: Any) -> dict:
    """A plain dict from a config mapping or a scheduler object with ``.config``."""
    config = getattr(config, "config", config)
    if not isinstance(config, Mapping):
        raise ValueError(f"scheduler_config must be a dict or a diffusers scheduler, got "
                         f"{type(config).__name__}.")
    return {**_DEFAULTS, **{k: v for k, v in config.items() if v is not None}}


def schedule_from_config(scheduler_config: Any) -> VPDiscrete:
    """The :class:`VPDiscrete` schedule described by a diffusers scheduler config."""
    cfg = _as_dict(scheduler_config)
    if cfg.get("trained_betas") is not None:
        raise ValueError("scheduler_config with trained_betas is not supported; "
                         "allowed: beta_schedule linear, scaled_linear or squaredcos_cap_v2.")
    return VPDiscrete(beta_schedule=cfg["beta_schedule"], beta_start=float(cfg["beta_start"]),
                      beta_end=float(cfg["beta_end"]),
                      num_train_timesteps=int(cfg["num_train_timesteps"]))


def from_diffusers(model_or_fn: Callable[..., Any], scheduler_config: Any,
                   prediction_type: str | None = None, *,
                   quantize: bool = False) -> Callable[[Tensor, Tensor], Tensor]:
    """Wrap a diffusers model ``(x_t, timestep) -> output`` as ``denoise(x, sigma) -> x0``.

    ``prediction_type`` (diffusers' names ``epsilon``, ``v_prediction``, ``sample``)
    defaults to the config's. Outputs with a ``.sample`` attribute (UNet outputs) or tuples
    are unwrapped. Method: Karras et al. (2022) Table 1 / k-diffusion's discrete wrappers.
    """
    cfg = _as_dict(scheduler_config)
    kind = prediction_type or cfg["prediction_type"]
    if kind not in _PREDICTIONS:
        raise ValueError(f"prediction_type={kind!r} is not supported; "
                         f"allowed: {', '.join(_PREDICTIONS)}.")
    schedule = schedule_from_config(cfg)

    def net(x_t: Tensor, t: Tensor) -> Tensor:
        out = model_or_fn(x_t, t.round() if quantize else t)
        if hasattr(out, "sample"):
            out = out.sample
        elif isinstance(out, tuple):
            out = out[0]
        return out

    return to_denoiser(net, schedule, _PREDICTIONS[kind])
