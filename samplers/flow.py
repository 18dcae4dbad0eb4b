"""Rectified-flow ODE samplers (Liu et al. 2023) through the VE denoiser contract.

The VE state x at sigma maps to the linear flow path x_t = (1 - t) x0 + t eps by
t = sigma / (1 + sigma) and x_flow = x / (1 + sigma); the velocity is
v = dx_flow/dt = eps - x0 = (x_flow - D)/t with D = denoise(x_flow (1 + sigma), sigma).
The ODE dx_flow/dt = v is solved in t and the result converted back to VE at the end.
A step to t = 0 is an Euler step (it returns D). NFE on an n-step grid ending in 0:
n for rf_euler, 2n - 1 for rf_heun and rf_midpoint.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor

from ._common import Callback, Denoiser, Noise, denoise_at, grid, register, report

__all__ = ["sample_rf_euler", "sample_rf_heun", "sample_rf_midpoint", "flow_velocity"]


def flow_velocity(denoise: Denoiser, x_flow: Tensor, t: float) -> tuple[Tensor, Tensor]:
    """(v, D): rectified-flow velocity (x_flow - D)/t at flow time t (0 < t < 1), and D."""
    sigma = t / (1 - t)
    denoised = denoise_at(denoise, x_flow * (1 + sigma), sigma)
    return (x_flow - denoised) / t, denoised


def _flow_solve(step: Callable, denoise: Denoiser, x: Tensor, sigmas: Tensor,
                callback) -> Tensor:
    """Map x to flow coordinates, apply ``step`` per interval in t, map back to VE."""
    s = grid(x, sigmas)
    t = [si / (1 + si) for si in s]
    xf = x / (1 + s[0])
    for i in range(len(s) - 1):
        v, denoised = flow_velocity(denoise, xf, t[i])
        report(callback, i, xf * (1 + s[i]), s[i], denoised)
        dt = t[i + 1] - t[i]
        xf = step(denoise, xf, v, t[i], t[i + 1]) if t[i + 1] > 0 else xf + dt * v
    return xf * (1 + s[-1])


def _euler(denoise: Denoiser, xf: Tensor, v: Tensor, t: float, t_next: float) -> Tensor:
    return xf + (t_next - t) * v


def _heun(denoise: Denoiser, xf: Tensor, v: Tensor, t: float, t_next: float) -> Tensor:
    dt = t_next - t
    v_next, _ = flow_velocity(denoise, xf + dt * v, t_next)
    return xf + dt * 0.5 * (v + v_next)


def _midpoint(denoise: Denoiser, xf: Tensor, v: Tensor, t: float, t_next: float) -> Tensor:
    dt = t_next - t
    v_mid, _ = flow_velocity(denoise, xf + 0.5 * dt * v, t + 0.5 * dt)
    return xf + dt * v_mid


@register("rf_euler", nfe=lambda n, **o: n)
def sample_rf_euler(denoise: Denoiser, x: Tensor, sigmas: Tensor, *,
                    noise: Noise = None, callback: Callback = None) -> Tensor:
    """Euler on the rectified-flow ODE in flow time (Liu et al. 2023); equals DDIM."""
    return _flow_solve(_euler, denoise, x, sigmas, callback)


@register("rf_heun", nfe=lambda n, **o: 2 * n - 1)
def sample_rf_heun(denoise: Denoiser, x: Tensor, sigmas: Tensor, *,
                   noise: Noise = None, callback: Callback = None) -> Tensor:
    """Heun (explicit trapezoid) on the rectified-flow ODE in flow time (Liu et al. 2023)."""
    return _flow_solve(_heun, denoise, x, sigmas, callback)


@register("rf_midpoint", nfe=lambda n, **o: 2 * n - 1)
def sample_rf_midpoint(denoise: Denoiser, x: Tensor, sigmas: Tensor, *,
                       noise: Noise = None, callback: Callback = None) -> Tensor:
    """Explicit midpoint (RK2) on the rectified-flow ODE in flow time (Liu et al. 2023)."""
    return _flow_solve(_midpoint, denoise, x, sigmas, callback)
