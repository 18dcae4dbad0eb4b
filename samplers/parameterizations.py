"""Network parameterizations and their conversion to the one VE denoiser (single source of truth).

A network ``net(x_t, t)`` works in its schedule's native coordinates
``x_t = alpha x0 + sigma eps`` (native time ``t``) and predicts one of

- ``eps``: the noise eps;
- ``x0``: the clean data x0;
- ``v``: Salimans & Ho (2022) v = alpha eps - sigma x0;
- ``flow``: the path velocity dx_t/dt = alpha'(t) x0 + sigma'(t) eps (= eps - x0 for
  rectified flow, Liu et al. 2023; Lipman et al. 2023);
- ``score``: grad log p_t(x_t) = -eps / sigma.

``target`` gives the training target for each (training losses import it), ``to_x0`` inverts
it, and ``to_denoiser`` turns the network into ``denoise(x, sigma) -> x0_hat`` in VE
coordinates ``x = x0 + sigma eps``, the samplers' contract.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from .schedules import Schedule

__all__ = ["PREDICTIONS", "target", "to_x0", "to_denoiser", "check_prediction"]

PREDICTIONS = ("eps", "x0", "v", "flow", "score")


def check_prediction(prediction: str) -> str:
    """Return ``prediction`` or raise ValueError listing the allowed names."""
    if prediction not in PREDICTIONS:
        raise ValueError(
            f"prediction={prediction!r} is not supported; allowed: {', '.join(PREDICTIONS)}."
        )
    return prediction


def _bcast(c: Tensor, x: Tensor) -> Tensor:
    """Reshape a per-sample coefficient (B,) or scalar to broadcast against x (B, ...)."""
    c = torch.as_tensor(c, dtype=x.dtype, device=x.device)
    return c.reshape(c.shape + (1,) * (x.ndim - c.ndim))  # (B, 1, ..., 1)


def target(prediction: str, x0: Tensor, eps: Tensor, schedule: Schedule, t: Tensor) -> Tensor:
    """Training target of ``prediction`` for x_t = alpha(t) x0 + sigma(t) eps."""
    check_prediction(prediction)
    a, s = _bcast(schedule.alpha(t), x0), _bcast(schedule.sigma(t), x0)
    if prediction == "eps":
        return eps
    if prediction == "x0":
        return x0
    if prediction == "v":
        return a * eps - s * x0
    if prediction == "flow":
        da, ds = _bcast(schedule.d_alpha(t), x0), _bcast(schedule.d_sigma(t), x0)
        return da * x0 + ds * eps
    return -eps / s  # score


def to_x0(prediction: str, out: Tensor, x_t: Tensor, schedule: Schedule, t: Tensor,
          alpha_sigma: tuple[Tensor, Tensor] | None = None) -> Tensor:
    """Clean-data estimate x0 from a network output ``out`` at (x_t, t); inverse of ``target``.

    ``alpha_sigma`` (per-sample alpha and native sigma of x_t) overrides (alpha(t), sigma(t));
    ``to_denoiser`` passes it so that a t clamped to the schedule's range keeps exact scales.
    """
    check_prediction(prediction)
    a, s = alpha_sigma if alpha_sigma is not None else (schedule.alpha(t), schedule.sigma(t))
    a, s = _bcast(a, x_t), _bcast(s, x_t)
    if prediction == "eps":
        return (x_t - s * out) / a
    if prediction == "x0":
        return out
    if prediction == "v":
        # a x_t - s v = (a^2 + s^2) x0 for any (a, s)
        return (a * x_t - s * out) / (a * a + s * s)
    if prediction == "flow":
        # solve x_t = a x0 + s eps, out = a' x0 + s' eps for x0
        da, ds = _bcast(schedule.d_alpha(t), x_t), _bcast(schedule.d_sigma(t), x_t)
        return (s * out - ds * x_t) / (s * da - ds * a)
    return (x_t + s * s * out) / a  # score


def to_eps(x: Tensor, sigma: Tensor, denoised: Tensor) -> Tensor:
    """Noise estimate eps = (x - x0_hat) / sigma in VE coordinates."""
    return (x - denoised) / _bcast(sigma, x)


def to_denoiser(
    net: Callable[[Tensor, Tensor], Tensor], schedule: Schedule, prediction: str
) -> Callable[[Tensor, Tensor], Tensor]:
    """Wrap a native-coordinate network as ``denoise(x, sigma) -> x0_hat`` (VE coordinates).

    The wrapper maps sigma -> t = schedule.t_of_sigma(sigma), scales x_t = alpha x,
    calls ``net(x_t, t)`` with ``t`` of shape (B,) and converts its output to x0
    (Karras et al. 2022, eq. 7 / Table 1: the VE form of any schedule). ``alpha`` is
    ``schedule.alpha_of_sigma(sigma)``: for a discrete schedule asked for a sigma beyond its
    trained range, t is clamped but x is still scaled by the exact 1/sqrt(1 + sigma^2).
    """
    check_prediction(prediction)

    def denoise(x: Tensor, sigma: Tensor) -> Tensor:
        t, alpha = schedule.t_of_sigma(sigma), schedule.alpha_of_sigma(sigma)
        x_t = _bcast(alpha, x) * x
        return to_x0(prediction, net(x_t, t), x_t, schedule, t, (alpha, alpha * sigma))

    denoise.schedule = schedule  # type: ignore[attr-defined]
    denoise.prediction = prediction  # type: ignore[attr-defined]
    return denoise
