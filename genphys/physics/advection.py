"""``advection1d``: linear advection u_t + β u_x = 0 on periodic [0, 1), t ∈ [0, 2].

The solution is exact: u(x, t) = u0(x − βt) (periodic). Stored values are the same as for
``burgers1d``: averages over ``nx`` uniform cells (x = cell centres) at ``nt`` equally spaced
times including 0 and ``t_final``. Each stored value is the average of u0 over the cell moved
back by βt, integrated with composite Gauss–Legendre quadrature of the analytic initial
condition (exact to rounding for the sine family). β is drawn uniformly in [−2, 2] (signed:
both directions); the initial conditions are the PDEBench-style family of
:mod:`genphys.physics.ic1d`, shared with ``burgers1d``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

from genphys.physics.base import GridTrajectories, ParamSpec, PDESystem, register, trajectory_seeds
from genphys.physics.captions import compose_captions, fmt
from genphys.physics.ic1d import (
    Grid1DConfig,
    bump_phrases,
    cell_averages,
    cell_centres,
    check_num,
    count_bumps,
    draw_params_and_ic,
)

__all__ = ["AdvectionConfig", "Advection1D", "advection_cell_averages", "advection_features"]


def advection_cell_averages(u0, beta: float, times: np.ndarray, nx: int,
                            nsub: int | None = None) -> np.ndarray:
    """Exact cell averages (T, nx) of u0(x − βt) at ``times`` (Gauss–Legendre quadrature)."""
    shift = (float(beta) * np.asarray(times, dtype=np.float64)) % 1.0  # (T,)
    return cell_averages(u0, nx, shift=shift, nsub=nsub)


def measured_velocity(u: np.ndarray, t: np.ndarray, rel: float = 0.2) -> float:
    """Transport velocity of a trajectory (T, X) from the phase drift of its lowest Fourier
    mode with at least ``rel`` of the largest non-mean amplitude (least-squares slope).

    Identifiable only while that mode moves less than half its wavelength per frame,
    |k c Δt| < 1/2 (always true at the default 64 frames over t = 2 with |β| ≤ 2, k ≤ 4).
    """
    spec = np.fft.rfft(np.asarray(u, dtype=np.float64), axis=-1)  # (T, X//2+1)
    amp = np.abs(spec[0, 1:])
    if amp.max() <= 1e-12 * max(1.0, float(np.abs(u[0]).max())):
        return 0.0  # a constant profile: no measurable motion
    k = 1 + int(np.argmax(amp >= rel * amp.max()))
    phase = np.unwrap(np.angle(spec[:, k]))  # u0(x - c t) -> phase drops by 2π k c t
    slope = np.polyfit(np.asarray(t, dtype=np.float64), phase, 1)[0]
    return float(-slope / (2 * np.pi * k))


def advection_features(u: np.ndarray, x: np.ndarray, t: np.ndarray, beta: float) -> dict:
    """Caption features of one trajectory (T, X): bumps of u0, measured velocity, distance."""
    v = measured_velocity(u, t)
    return {"beta": float(beta), "n_bumps": count_bumps(u[0]), "velocity": v,
            "direction": "right" if v > 0.02 else "left" if v < -0.02 else "none",
            "distance": abs(v) * float(t[-1] - t[0])}


def advection_captions(feat: dict, t_final: float, rng: np.random.Generator) -> list[str]:
    """Three distinct captions from :func:`advection_features` (seeded wording)."""
    speed, beta = fmt(abs(feat["velocity"])), fmt(feat["beta"])
    facts = [[f"speed {speed}", f"advection velocity β = {beta}", f"wave speed {speed}"],
             bump_phrases(feat["n_bumps"])]
    if feat["direction"] == "none":
        facts.append(["an almost stationary pattern", "hardly any motion"])
    else:
        d = feat["direction"]
        sign = "+" if d == "right" else "−"
        facts.append([f"transport to the {d}", f"motion in the {sign}x direction",
                      f"a profile drifting {d}wards"])
        dist = fmt(feat["distance"])
        plural = "" if dist == "1" else "s"
        facts.append([f"{dist} domain length{plural} travelled by t = {fmt(t_final)}",
                      f"a shift of {dist} period{plural} in total"])
    subject = ["Linear advection", "A 1D advection simulation", "Periodic transport of a profile",
               "Advection on a ring"]
    return compose_captions(rng, subject, facts, k=3, min_facts=2)


@dataclass(frozen=True)
class AdvectionConfig(Grid1DConfig):
    """Discretisation of ``advection1d`` (stored grid ``nx``/``nt``/``t_final``, quadrature)."""

    quad_cells: int = 4096  # quadrature sub-cells per unit length (4 Gauss points each)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.quad_cells < 1:
            raise ValueError(f"quad_cells={self.quad_cells} must be >= 1.")


@register
class Advection1D(PDESystem):
    """Linear advection on periodic [0, 1) with PDEBench-style initial conditions."""

    name = "advection1d"
    description = "Linear advection u_t + beta u_x = 0, periodic [0,1), t in [0, 2] (exact)."
    param_specs = (ParamSpec("beta", 1.0, -2.0, 2.0, doc="advection velocity (signed)"),)
    field_names = ("u",)
    conserved_means = ("u",)  # periodic conservation law: d/dt of the mean of u is 0
    Config = AdvectionConfig

    def generate(self, num: int, seed: int = 0, *, start: int = 0,
                 batch_size: int | None = None,
                 progress: Callable[[int], None] | None = None) -> GridTrajectories:
        """Trajectories ``start .. start+num-1`` of run ``seed`` (each from its own seed)."""
        check_num(num)
        cfg = self.config
        seeds = trajectory_seeds(seed, num, start)
        times = np.linspace(0.0, cfg.t_final, cfg.nt)
        x = cell_centres(cfg.nx)
        nsub = max(1, -(-cfg.quad_cells // cfg.nx))
        u = np.empty((num, cfg.nt, cfg.nx), dtype=np.float32)
        betas, captions = np.empty(num), []
        for i, s in enumerate(seeds):
            params, ic = draw_params_and_ic(self.sample_params, s)
            betas[i] = params["beta"]
            u[i] = advection_cell_averages(ic, betas[i], times, cfg.nx, nsub)
            feat = advection_features(u[i], x, times, betas[i])
            captions.append(advection_captions(feat, cfg.t_final,
                                               np.random.default_rng([int(s), 1])))
            if progress is not None:
                progress(1)
        attrs = {"solver": "exact: cell averages of u0(x - beta t) by Gauss-Legendre quadrature",
                 "storage": "cell averages of nx uniform cells", "config": asdict(cfg),
                 "ic_family": "PDEBench 1D: two sine modes, k in 1..4, p=0.1 abs, p=0.1 window"}
        return GridTrajectories(system=self.name, fields={"u": u}, time=times,
                                coords={"x": x}, params={"beta": betas}, seeds=seeds,
                                captions=captions, periodic=True, attrs=attrs)
