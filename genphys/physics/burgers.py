"""``burgers1d``: viscous Burgers u_t + (u²/2)_x = ν u_xx on periodic [0, 1), t ∈ [0, 2].

Relation to PDEBench: PDEBench's files carry an attribute ``Nu`` and its solver uses the
diffusion coefficient ``Nu/π``; so our ν = Nu/π (:func:`nu_from_pdebench`). Our default
range ν ∈ [1e-3, 1e-1] corresponds to PDEBench Nu ∈ [0.00314, 0.314].

Solver: finite volumes on ``n_fine`` cells — WENO5-Z reconstruction (Borges, Carmona, Costa &
Don, JCP 227, 2008) of left/right states, the exact Godunov flux of the convex flux u²/2,
and Lawson's integrating-factor RK4 (Lawson, SIAM J. Numer. Anal. 4, 1967) in which the
diffusion is integrated exactly with the periodic Fourier factor exp(-ν k² h) (no stiff
time-step limit). The time step is per trajectory, h ≤ cfl·dx/max|u0| (max|u| cannot grow:
maximum principle). Stored values are exact averages of the fine cells over ``nx`` coarse
cells (x = cell centres), at ``nt`` equally spaced times including 0 and ``t_final``.
"""

from __future__ import annotations

import math
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
    coarsen,
    count_bumps,
    draw_params_and_ic,
    periodic_slope,
)
from genphys.physics.spectral1d import consistency_error, resolve_from_first_frame

__all__ = ["BurgersConfig", "Burgers1D", "solve_burgers_fv", "burgers_features",
           "nu_from_pdebench", "nu_to_pdebench", "resolve_from_first_frame", "consistency_error"]


def nu_from_pdebench(pdebench_nu: float) -> float:
    """PDEBench's file attribute ``Nu`` → our ν (their solver diffuses with Nu/π)."""
    return float(pdebench_nu) / math.pi


def nu_to_pdebench(nu: float) -> float:
    """Our ν → the PDEBench ``Nu`` attribute of the same equation (Nu = π ν)."""
    return float(nu) * math.pi


# ------------------------------------------------------------------ FV solver
def _weno_z_weights(b0, b1, b2):
    """WENO-Z weights (Borges et al. 2008, p = 2) divided by 6, from smoothness indicators."""
    tau = np.abs(b0 - b2)
    a0 = 0.1 + 0.1 * (tau / (b0 + 1e-40)) ** 2
    a1 = 0.6 + 0.6 * (tau / (b1 + 1e-40)) ** 2
    a2 = 0.3 + 0.3 * (tau / (b2 + 1e-40)) ** 2
    s = 1.0 / (6.0 * (a0 + a1 + a2))
    return a0 * s, a1 * s, a2 * s


def _flux_divergence(u: np.ndarray, dx: float) -> np.ndarray:
    """-(F_{j+1/2} - F_{j-1/2})/dx for u²/2: WENO5-Z face states, exact Godunov flux.

    The Jiang–Shu smoothness indicators of every 3-cell stencil are computed once per cell
    and shared by the left- and right-biased reconstructions; the candidate polynomials are
    written in forward differences F_m = u_{m+1} - u_m.
    """
    n = u.shape[-1]
    p = np.concatenate([u[..., -3:], u, u[..., :3]], axis=-1)  # (B, n+6) periodic ghosts
    f = np.diff(p, axis=-1)  # (B, n+5): f[t] = F_{t-3}
    d = f[..., 1:] - f[..., :-1]  # (B, n+4): second difference centred on cell t-2
    d2 = 13 / 12 * d * d
    ba = d2 + 0.25 * (d + 2 * f[..., 1:]) ** 2  # stencil ending at the centre's right cell
    bb = d2 + 0.25 * (d - 2 * f[..., :-1]) ** 2  # mirrored
    bc = d2 + 0.25 * (f[..., 1:] + f[..., :-1]) ** 2  # central

    def sl(x, k):  # face-aligned view: faces i = 0..n (face i is the left face of cell i)
        return x[..., k:k + n + 1]

    fm3, fm2, fm1, f0, f1 = (sl(f, k) for k in range(5))  # F_{i-3} .. F_{i+1}
    w0, w1, w2 = _weno_z_weights(sl(ba, 0), sl(bc, 1), sl(bb, 2))
    ul = sl(p, 2) + w0 * (5 * fm2 - 2 * fm3) + w1 * (fm2 + 2 * fm1) + w2 * (4 * fm1 - f0)
    w0, w1, w2 = _weno_z_weights(sl(bb, 3), sl(bc, 2), sl(ba, 1))
    ur = sl(p, 3) - w0 * (5 * f0 - 2 * f1) - w1 * (f0 + 2 * fm1) - w2 * (4 * fm1 - fm2)
    flux = 0.5 * np.maximum(np.maximum(ul, 0.0) ** 2, np.minimum(ur, 0.0) ** 2)  # Godunov
    return -(flux[..., 1:] - flux[..., :-1]) / dx


def _lawson_rk4(u, h, e_half, rhs):
    """One integrating-factor RK4 step (Lawson 1967); ``e_half`` = exp(-ν k² h/2), (B, K)."""
    n = u.shape[-1]
    fft, ifft = np.fft.rfft, np.fft.irfft
    e_full = e_half * e_half
    U = fft(u)
    k1 = rhs(u)
    K1 = fft(k1)
    k2 = rhs(ifft(e_half * (U + 0.5 * h * K1), n))
    K2 = fft(k2)
    k3 = rhs(ifft(e_half * U + 0.5 * h * K2, n))
    K3 = fft(k3)
    k4 = rhs(ifft(e_full * U + h * e_half * K3, n))
    return ifft(e_full * (U + h / 6 * K1) + e_half * (h / 3) * (K2 + K3), n) + h / 6 * k4


def solve_burgers_fv(u0: np.ndarray, nu: np.ndarray, times: np.ndarray,
                     cfl: float = 1.0) -> np.ndarray:
    """Cell averages ``(B, T, N)`` at ``times`` from cell averages ``u0`` (B, N), ν (B,).

    WENO5-Z + Godunov + Lawson-RK4 with exact Fourier diffusion (see module docstring).
    Between output times each trajectory takes its own step h_b = Δt/ceil(Δt·M_b/(cfl·dx)),
    M_b = max|u_b| at the start of the interval (a bound until its end by the maximum
    principle), so its result does not depend on the other members of the batch.
    """
    u = np.array(u0, dtype=np.float64)
    nb, n = u.shape
    nu = np.broadcast_to(np.asarray(nu, dtype=np.float64), (nb,))
    dx = 1.0 / n
    k2 = (2 * np.pi * np.fft.rfftfreq(n, d=dx)) ** 2  # (K,)
    rhs = lambda v: _flux_divergence(v, dx)  # noqa: E731
    out = np.empty((nb, len(times), n))
    out[:, 0] = u
    for i in range(1, len(times)):
        dt = float(times[i] - times[i - 1])
        umax = np.maximum(np.abs(u).max(-1), 1e-12)  # (B,)
        nsub = np.maximum(1, np.ceil(dt * umax / (cfl * dx) - 1e-9)).astype(int)  # (B,)
        h = (dt / nsub)[:, None]  # (B, 1)
        e_half = np.exp(-nu[:, None] * k2[None, :] * h / 2)  # (B, K)
        for step in range(int(nsub.max())):
            act = np.flatnonzero(step < nsub)  # trajectories still stepping in this interval
            if len(act) == nb:
                u = _lawson_rk4(u, h, e_half, rhs)
            else:
                u[act] = _lawson_rk4(u[act], h[act], e_half[act], rhs)
        out[:, i] = u
    return out


# ------------------------------------------------------------------ features + captions
SHOCK_RATIO = 3.0  # a shock forms if the steepest compressive slope grows ≥ 3× its initial value


def burgers_features(u: np.ndarray, x: np.ndarray, t: np.ndarray, nu: float) -> dict:
    """Features of one stored trajectory ``u`` (T, X) used by the captions.

    ``n_bumps``: prominent local maxima of u0; ``steepening``: max_t g(t) / g(0) with
    g = max(-u_x) the steepest compressive slope (forward differences on the stored grid);
    ``shock``: steepening ≥ SHOCK_RATIO; ``shock_time``: the inviscid breaking-time
    extrapolation t_k + 1/g(t_k) (exact for inviscid Burgers, where 1/g falls with slope -1)
    at the first frame with g ≥ 2 g(0), capped by the frame of steepest slope;
    ``shock_x``: the centre of the steepest drop at the first frame with t ≥ shock_time;
    ``energy_ratio``: E(T)/E(0) with E = mean(u²).
    """
    u = np.asarray(u, dtype=np.float64)
    dx = float(x[1] - x[0])
    slope = periodic_slope(u, dx)  # (T, X): slope[j] between cells j and j+1
    g = np.maximum(-slope.min(-1), 1e-12)  # (T,)
    steep = float(g.max() / g[0])
    out = {"nu": float(nu), "n_bumps": count_bumps(u[0]), "steepening": steep,
           "shock": steep >= SHOCK_RATIO, "shock_time": None, "shock_x": None,
           "energy_ratio": float(np.mean(u[-1] ** 2) / max(np.mean(u[0] ** 2), 1e-300)),
           "one_signed": bool(u[0].min() >= 0 or u[0].max() <= 0)}
    if out["shock"]:
        k = int(np.argmax(g >= 2 * g[0]))
        k_peak = int(np.argmax(g))
        ts = min(float(t[k] + 1.0 / g[k]), float(t[k_peak]))
        m = min(int(np.searchsorted(t, ts - 1e-12)), len(t) - 1)
        j = int(np.argmin(slope[m]))
        out["shock_time"], out["shock_x"] = ts, float((x[j] + dx / 2) % 1.0)
    return out


def burgers_captions(feat: dict, t_final: float, rng: np.random.Generator) -> list[str]:
    """Three distinct captions from :func:`burgers_features` (seeded wording)."""
    nu = fmt(feat["nu"])
    facts = [[f"viscosity {nu}", f"ν = {nu}", f"kinematic viscosity {nu}",
              f"diffusion coefficient {nu}"], bump_phrases(feat["n_bumps"])]
    if feat["shock"]:  # facts are noun phrases: they follow "with" or stand as sentences
        ts, xs = fmt(feat["shock_time"]), fmt(feat["shock_x"])
        facts.append([f"a shock forming near x = {xs} at t ≈ {ts}",
                      f"steepening into a shock by t ≈ {ts}",
                      f"a front that sharpens into a shock around x = {xs}"])
    else:
        facts.append(["no shock formation", "a profile that stays smooth",
                      "no shock, as diffusion wins over steepening"])
    r = feat["energy_ratio"]
    pct = f"{100 * r:.0f}%" if r >= 0.01 else "less than 1%"
    facts.append([f"energy decaying to {pct} of its initial value",
                  f"{pct} of the energy left at t = {fmt(t_final)}",
                  f"E(T)/E(0) = {fmt(feat['energy_ratio'])}"])
    if feat["one_signed"]:
        facts.append(["a one-signed initial profile", "an initial profile of one sign"])
    subject = ["Viscous Burgers flow", "A 1D Burgers simulation", "Burgers equation on a ring",
               "Periodic 1D Burgers"]
    return compose_captions(rng, subject, facts, k=3, min_facts=3)


# ------------------------------------------------------------------ the system
@dataclass(frozen=True)
class BurgersConfig(Grid1DConfig):
    """Discretisation of ``burgers1d`` (stored grid ``nx``/``nt``/``t_final``, FV resolution)."""

    n_fine: int = 1024  # FV cells (rounded up to a multiple of nx)
    n_fine_low_nu: int = 1024  # FV cells when nu < low_nu (1024 measured enough: see docs)
    low_nu: float = 3e-3
    cfl: float = 1.0  # h ≤ cfl · dx / max|u0| (WENO5 + RK4 is stable well beyond 1)

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 < self.cfl <= 1.5:
            raise ValueError(f"cfl={self.cfl} must be in (0, 1.5].")
        if self.n_fine < 64 or self.n_fine_low_nu < 64 or not self.low_nu >= 0:
            raise ValueError("n_fine and n_fine_low_nu must be >= 64 and low_nu >= 0.")

    def fine_cells(self, nu: float) -> int:
        """FV cells used for viscosity ``nu`` (a multiple of ``nx``)."""
        n = self.n_fine_low_nu if nu < self.low_nu else self.n_fine
        return self.nx * max(1, -(-n // self.nx))


@register
class Burgers1D(PDESystem):
    """Viscous Burgers on periodic [0, 1) with PDEBench-style initial conditions."""

    name = "burgers1d"
    description = "Viscous Burgers u_t + (u^2/2)_x = nu u_xx, periodic [0,1), t in [0, 2]."
    param_specs = (ParamSpec("nu", 0.01, 1e-3, 1e-1, log=True,
                             doc="viscosity (= PDEBench Nu / pi)"),)
    field_names = ("u",)
    conserved_means = ("u",)  # periodic conservation law: d/dt of the mean of u is 0
    Config = BurgersConfig

    def generate(self, num: int, seed: int = 0, *, start: int = 0,
                 batch_size: int | None = None,
                 progress: Callable[[int], None] | None = None) -> GridTrajectories:
        """Trajectories ``start .. start+num-1`` of run ``seed`` (each from its own seed)."""
        check_num(num)
        seeds = trajectory_seeds(seed, num, start)
        bs = batch_size or self.default_batch_size
        parts = []
        for s in range(0, num, bs):
            parts.append(self._batch(seeds[s:s + bs]))
            if progress is not None:
                progress(len(parts[-1]))
        return GridTrajectories.concat(parts)

    def _batch(self, seeds: np.ndarray) -> GridTrajectories:
        cfg = self.config
        params, ics = zip(*(draw_params_and_ic(self.sample_params, s) for s in seeds))
        nu = np.array([p["nu"] for p in params])
        times = np.linspace(0.0, cfg.t_final, cfg.nt)
        u = np.empty((len(seeds), cfg.nt, cfg.nx))
        n_fine = np.array([cfg.fine_cells(v) for v in nu])
        for n in np.unique(n_fine):  # one vectorised solve per fine resolution
            idx = np.flatnonzero(n_fine == n)
            u0 = np.stack([cell_averages(ics[i], int(n)) for i in idx])  # (b, n)
            u[idx] = coarsen(solve_burgers_fv(u0, nu[idx], times, cfg.cfl), cfg.nx)
        u = u.astype(np.float32)
        x = cell_centres(cfg.nx)
        captions = []
        for i, s in enumerate(seeds):
            feat = burgers_features(u[i], x, times, nu[i])
            captions.append(burgers_captions(feat, cfg.t_final, np.random.default_rng([int(s), 1])))
        attrs = {"solver": "finite volume: WENO5-Z + Godunov flux + Lawson RK4, exact "
                           "Fourier diffusion", "storage": "cell averages of nx uniform cells",
                 "config": asdict(cfg), "nu_relation": "nu = PDEBench Nu / pi",
                 "ic_family": "PDEBench 1D: two sine modes, k in 1..4, p=0.1 abs, p=0.1 window"}
        return GridTrajectories(system=self.name, fields={"u": u}, time=times,
                                coords={"x": x}, params={"nu": nu}, seeds=seeds,
                                captions=captions, periodic=True, attrs=attrs)
