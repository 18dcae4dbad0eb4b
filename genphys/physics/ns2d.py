"""2D incompressible Navier-Stokes in vorticity form on the periodic unit square (``ns2d``).

    w_t + u . grad w = nu Lap w + f,   u = (psi_y, -psi_x),   -Lap psi = w,

the recipe of Li et al., "Fourier Neural Operator for Parametric PDEs" (ICLR 2021): forcing
``f = A (sin 2pi(x+y) + cos 2pi(x+y))`` with ``A = 0.1`` and a zero-mean Gaussian random initial
vorticity ``N(0, 7^{3/2} (-Delta + 49 I)^{-2.5})`` (see :mod:`genphys.physics.grf`).

Solver: Fourier pseudo-spectral, advective form of the nonlinear term with 2/3-rule dealiasing
(Orszag 1971), and the low-storage IMEX Runge-Kutta scheme of Spalart, Moser & Rogers (J. Comput.
Phys. 96, 1991): three sub-steps, explicit RK3 for advection and forcing, Crank-Nicolson-type
implicit diffusion; second order overall. The step is chosen per trajectory from the CFL
condition, so a trajectory never depends on the others in its batch.

Stored values are point values ``w(x_i, y_j)`` at ``x_i = i/n``, ``y_j = j/n`` (exact subsampling
of the solver grid), array axes ``(B, T, x, y)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import torch

from genphys.errors import UserInputError
from genphys.physics.base import (
    GridTrajectories,
    ParamSpec,
    PDESystem,
    SpecError,
    register,
    trajectory_seeds,
)
from genphys.physics.captions import compose_captions, fmt
from genphys.physics.grf import FNO_ALPHA, FNO_SCALE, FNO_TAU, sample_grf

# Spalart-Moser-Rogers (1991) RK3/CN coefficients; alpha_s + beta_s = gamma_s + zeta_s.
_GAMMA = (8 / 15, 5 / 12, 3 / 4)
_ZETA = (0.0, -17 / 60, -5 / 12)
_ALPHA = (4 / 15, 1 / 15, 1 / 6)
_BETA = (4 / 15, 1 / 15, 1 / 6)
_C = (0.0, 8 / 15, 2 / 3)  # sub-step start times as fractions of the step

Forcing = torch.Tensor | Callable[[torch.Tensor], torch.Tensor] | None


@dataclass(frozen=True)
class SpectralGrid:
    """Angular wavenumbers of an ``n x n`` rfft2 layout, ``(n, n//2+1)``: axis 0 k_x, axis 1 k_y."""

    n: int
    kx: torch.Tensor  # (n, 1) 2 pi * integer wavenumber
    ky: torch.Tensor  # (1, n//2+1)
    k2: torch.Tensor  # (n, n//2+1) |k|^2
    inv_k2: torch.Tensor  # (n, n//2+1) 1/|k|^2, 0 at k = 0 (zero-mean stream function)
    mask: torch.Tensor  # (n, n//2+1) 1 on retained modes (2/3 rule), else 0

    @staticmethod
    def build(n: int, dtype: torch.dtype = torch.float64, dealias: bool = True,
              device: torch.device | str = "cpu") -> SpectralGrid:
        """Wavenumbers and the 2/3-rule mask (|k_x|, |k_y| <= n//3) for an ``n``-point grid."""
        ix = torch.fft.fftfreq(n, d=1.0 / n, dtype=dtype, device=device)[:, None]  # (n, 1)
        iy = torch.fft.rfftfreq(n, d=1.0 / n, dtype=dtype, device=device)[None, :]  # (1, n//2+1)
        kx, ky = 2 * math.pi * ix, 2 * math.pi * iy
        k2 = kx**2 + ky**2
        inv_k2 = torch.where(k2 > 0, 1.0 / torch.where(k2 > 0, k2, 1.0), 0.0)
        kmax = n // 3 if dealias else n // 2 - 1  # without dealiasing only Nyquist is dropped
        mask = ((ix.abs() <= kmax) & (iy <= kmax)).to(dtype)
        return SpectralGrid(n, kx, ky, k2, inv_k2, mask)


def nonlinear_term(w_hat: torch.Tensor, grid: SpectralGrid) -> tuple[torch.Tensor, torch.Tensor]:
    """Dealiased ``-(u . grad w)``, Fourier ``(B, n, n//2+1)``, and max ``|u|+|v|`` ``(B,)``."""
    n = grid.n
    psi_hat = w_hat * grid.inv_k2
    stack = torch.stack([1j * grid.ky * psi_hat, -1j * grid.kx * psi_hat,
                         1j * grid.kx * w_hat, 1j * grid.ky * w_hat], dim=1)  # (B, 4, n, n//2+1)
    u, v, wx, wy = torch.fft.irfft2(stack, s=(n, n)).unbind(1)  # each (B, n, n)
    adv_hat = torch.fft.rfft2(u * wx + v * wy)
    speed = (u.abs() + v.abs()).amax(dim=(-2, -1))
    return -adv_hat * grid.mask, speed


def _forcing_hat(forcing: Forcing, t: torch.Tensor, grid: SpectralGrid,
                 like: torch.Tensor) -> torch.Tensor | float:
    """The masked Fourier transform of the forcing at times ``t`` ``(B,)`` (0 if none)."""
    if forcing is None:
        return 0.0
    f = forcing(t) if callable(forcing) else forcing
    return torch.fft.rfft2(f.to(like.device, like.real.dtype)) * grid.mask


def _rk3cn_step(w_hat: torch.Tensor, n0: torch.Tensor, t: torch.Tensor, h: torch.Tensor,
                nu: torch.Tensor, grid: SpectralGrid, forcing: Forcing) -> torch.Tensor:
    """One IMEX RK3/CN step (Spalart, Moser & Rogers 1991) of size ``h`` ``(B,)`` per trajectory."""
    lin = -nu[:, None, None] * grid.k2  # (B, n, n//2+1) diffusion symbol
    hh = h[:, None, None]
    n_prev = torch.zeros_like(w_hat)
    n_cur = n0 + _forcing_hat(forcing, t, grid, w_hat)
    for s in range(3):
        if s > 0:
            n_cur = nonlinear_term(w_hat, grid)[0] + _forcing_hat(forcing, t + _C[s] * h, grid,
                                                                 w_hat)
        rhs = w_hat + hh * (_ALPHA[s] * lin * w_hat + _GAMMA[s] * n_cur + _ZETA[s] * n_prev)
        w_hat = rhs / (1.0 - _BETA[s] * hh * lin)
        n_prev = n_cur
    return w_hat


def _check_solve_inputs(omega0: torch.Tensor, nu: torch.Tensor | float,
                        times: np.ndarray) -> None:
    """Raise :class:`UserInputError` for a non-square grid, negative nu or unsorted times."""
    shape = tuple(omega0.shape)
    if len(shape) != 3 or shape[1] != shape[2] or shape[1] < 4 or shape[1] % 2:
        raise UserInputError(f"omega0 has shape {shape}; expected (B, n, n) with even n >= 4.")
    if not omega0.is_floating_point():
        raise UserInputError(f"omega0 has dtype {omega0.dtype}; expected a float tensor.")
    if bool((torch.as_tensor(nu) < 0).any()):
        raise UserInputError(f"nu={nu} is invalid; allowed: >= 0.")
    tt = np.asarray(times, dtype=np.float64)
    if tt.ndim != 1 or len(tt) < 1 or np.any(np.diff(tt) <= 0):
        raise UserInputError(f"times={tt} is invalid; expected a 1-D increasing sequence.")


def ns2d_solve(omega0: torch.Tensor, nu: torch.Tensor | float, times: np.ndarray, *,
               forcing: Forcing = None, dt: float | None = None, cfl: float = 0.5,
               dt_max: float = 0.05, dealias: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Solve vorticity NS from ``omega0`` ``(B, n, n)``; frames ``(B, T, n, n)`` and steps ``(B,)``.

    ``times`` ``(T,)`` starts at the initial time. ``forcing`` is a field ``(B|1, n, n)`` or a
    function of ``t`` ``(B,)``. With ``dt=None`` each trajectory takes steps
    ``min(cfl * dx / max(|u|+|v|), dt_max)`` shrunk to land on every frame time; a fixed ``dt``
    is shrunk the same way. Scheme: IMEX RK3/CN of Spalart, Moser & Rogers (1991).
    """
    _check_solve_inputs(omega0, nu, times)
    b, n = omega0.shape[0], omega0.shape[-1]
    dev = omega0.device
    grid = SpectralGrid.build(n, omega0.dtype, dealias, dev)
    nu_t = torch.as_tensor(nu, dtype=omega0.dtype, device=dev).expand(b).clone()
    w_hat = torch.fft.rfft2(omega0) * grid.mask  # project the initial field on retained modes
    frames = [torch.fft.irfft2(w_hat, s=(n, n))]
    t = torch.full((b,), float(times[0]), dtype=omega0.dtype, device=dev)
    steps = torch.zeros(b, dtype=torch.int64, device=dev)
    for t_next in times[1:]:
        while True:
            rem = float(t_next) - t
            active = rem > 0
            if not bool(active.any()):
                break
            n0, speed = nonlinear_term(w_hat, grid)
            h_max = torch.full_like(t, dt) if dt is not None else torch.clamp(
                cfl / (n * speed), max=dt_max)
            n_sub = torch.ceil(rem / h_max - 1e-9).clamp(min=1)
            h = torch.where(active, rem / n_sub, 0.0)
            w_hat = _rk3cn_step(w_hat, n0, t, h, nu_t, grid, forcing)
            t = torch.where(active & (n_sub <= 1), float(t_next), t + h)
            steps += active.to(torch.int64)
        frames.append(torch.fft.irfft2(w_hat, s=(n, n)))
        if not bool(torch.isfinite(frames[-1]).all()):
            raise FloatingPointError(f"ns2d solution blew up before t={float(t_next):g}.")
    return torch.stack(frames, dim=1), steps  # (B, T, n, n)


# ------------------------------------------------------------------ features for captions
def count_vortices(omega: np.ndarray, threshold: float = 0.5,
                   min_cells: int = 2) -> tuple[int, int]:
    """Numbers of positive and negative vortices in ``omega`` ``(H, W)`` (periodic).

    A vortex is a 4-connected region, joined across the periodic boundary, where ``+omega``
    (or ``-omega``) exceeds ``threshold * max|omega|``; regions under ``min_cells`` are ignored.
    """
    from scipy.ndimage import label
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    peak = float(np.abs(omega).max())
    if peak == 0.0:
        return 0, 0
    counts = []
    for sign in (1.0, -1.0):
        lab, n = label(sign * omega > threshold * peak)  # (H, W) labels 1..n
        pairs = np.concatenate([np.stack([lab[0], lab[-1]], 1),
                                np.stack([lab[:, 0], lab[:, -1]], 1)])  # (H+W, 2) wrap edges
        pairs = pairs[(pairs > 0).all(1)] - 1
        graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
        _, comp = connected_components(graph, directed=False)
        sizes = np.bincount(comp, weights=np.bincount(lab.ravel(), minlength=n + 1)[1:])
        counts.append(int((sizes >= min_cells).sum()))
    return counts[0], counts[1]


def ns2d_features(omega: np.ndarray, *, threshold: float = 0.5) -> dict[str, object]:
    """Measured features of one trajectory ``omega`` ``(T, H, W)`` on the periodic unit square.

    ``enstrophy`` ``(T,)`` = 1/2 mean(omega^2); ``energy`` ``(T,)`` = 1/2 sum_k |w_k|^2/|2 pi k|^2;
    ``enstrophy_ratio`` = last/first; ``max_vorticity`` = max|omega| at the last frame;
    ``n_vortices`` (``n_positive`` + ``n_negative``) from :func:`count_vortices` at the last frame.
    """
    w = np.asarray(omega, dtype=np.float64)
    if w.ndim != 3:
        raise SpecError(f"omega has shape {w.shape}; expected (T, H, W).")
    h, wd = w.shape[-2:]
    w_hat = np.fft.rfft2(w) / (h * wd)  # (T, H, W//2+1) Fourier coefficients
    k2 = (np.fft.fftfreq(h, 1 / h)[:, None] ** 2 + np.fft.rfftfreq(wd, 1 / wd)[None] ** 2)
    weight = np.full(w_hat.shape[-1], 2.0)  # rfft2 stores one of each +-k_y pair ...
    weight[0] = 1.0  # ... except k_y = 0 ...
    if wd % 2 == 0:
        weight[-1] = 1.0  # ... and the Nyquist column
    inv = np.where(k2 > 0, 1.0 / (4 * math.pi**2 * np.where(k2 > 0, k2, 1.0)), 0.0)
    energy = 0.5 * (weight * inv * np.abs(w_hat) ** 2).sum(axis=(-2, -1))
    enstrophy = 0.5 * (w**2).mean(axis=(-2, -1))
    pos, neg = count_vortices(w[-1], threshold)
    return {
        "enstrophy": enstrophy,
        "energy": energy,
        "enstrophy_ratio": float(enstrophy[-1] / enstrophy[0]) if enstrophy[0] > 0 else math.inf,
        "max_vorticity": float(np.abs(w[-1]).max()),
        "mean_vorticity": float(w[-1].mean()),
        "n_positive": pos,
        "n_negative": neg,
        "n_vortices": pos + neg,
    }


# ------------------------------------------------------------------ the system
def _round2(x: float) -> str:
    """``x`` to two significant digits, written without an exponent (540, 3.2, 0.041)."""
    return f"{float(f'{x:.2g}'):,.10g}".replace(",", "")


def _viscosity_regime(nu: float) -> str:
    """A word for the flow regime at viscosity ``nu`` (thirds of the log range [1e-5, 1e-3])."""
    if nu >= 2e-4:
        return "laminar"
    return "moderately turbulent" if nu >= 4e-5 else "turbulent"


def forcing_pattern(n: int) -> np.ndarray:
    """The unit FNO forcing ``sin 2pi(x+y) + cos 2pi(x+y)`` at grid points ``(n, n)`` (x, y)."""
    x = np.arange(n) / n
    s = 2 * math.pi * (x[:, None] + x[None, :])  # (n, n) axis 0 = x, axis 1 = y
    return np.sin(s) + np.cos(s)


@dataclass(frozen=True)
class NS2DConfig:
    """Discretisation of ``ns2d`` (see docs/systems/ns2d.md for the measured accuracy)."""

    resolution: int = 64  # stored points per axis (x and y), a point grid x_i = i/n
    solver_resolution: int = 0  # solver points per axis; 0 = auto (see NS2D.solver_resolution)
    nt: int = 21  # stored frames including t = 0, equally spaced (key shared by all systems)
    t_final: float = 10.0  # time of the last frame
    cfl: float = 0.5  # adaptive step dt <= cfl * dx / max(|u| + |v|) (RK3 limit ~0.8)
    dt_max: float = 0.05  # upper bound on the step (accuracy of forcing and diffusion)
    # multiplies the paper-covariance GRF sample; 6.09 = the amplitude of FNO's data generator
    # (docs/systems/ns2d.md, 'Amplitude note'), which keeps the flow from being forcing-dominated
    ic_scale: float = 6.09
    threads: int = 1  # torch CPU threads while solving (0 = keep torch's); small FFTs: 1 is best

    def __post_init__(self) -> None:
        if self.resolution < 8 or self.resolution % 2:
            raise SpecError(f"resolution={self.resolution} is invalid; allowed: even, >= 8.")
        sr = self.solver_resolution
        if sr and (sr < self.resolution or sr % self.resolution):
            raise SpecError(f"solver_resolution={sr} is invalid; allowed: 0 (auto) or a "
                            f"multiple of resolution={self.resolution}.")
        if self.nt < 2:
            raise SpecError(f"nt={self.nt} is invalid; allowed: >= 2.")
        for key in ("t_final", "cfl", "dt_max"):
            if not getattr(self, key) > 0:
                raise SpecError(f"{key}={getattr(self, key)} is invalid; allowed: > 0.")
        if self.cfl > 0.8:
            raise SpecError(f"cfl={self.cfl} is invalid; allowed: (0, 0.8] (RK3 stability).")
        if not self.ic_scale >= 0:
            raise SpecError(f"ic_scale={self.ic_scale} is invalid; allowed: >= 0.")
        if self.threads < 0:
            raise SpecError(f"threads={self.threads} is invalid; allowed: >= 0 (0 = default).")


@register
class NS2D(PDESystem):
    """Forced 2D Navier-Stokes (vorticity) on the periodic unit square, FNO recipe."""

    name = "ns2d"
    description = ("2D incompressible Navier-Stokes, vorticity form, periodic unit square; "
                   "FNO forcing and Gaussian-random-field initial vorticity (Li et al. 2021).")
    param_specs = (
        ParamSpec("nu", 1e-3, 1e-5, 1e-3, log=True, doc="kinematic viscosity"),
        ParamSpec("forcing", 0.1, 0.0, 0.2,
                  doc="forcing amplitude A; fixed at 0.1 unless set or given a range"),
    )
    field_names = ("vorticity",)
    Config = NS2DConfig

    def __init__(self, **overrides: object) -> None:
        super().__init__(**overrides)
        if not {"forcing", "forcing_min", "forcing_max"} & set(overrides):
            self.fixed["forcing"] = 0.1  # the FNO recipe unless the user asks for others

    def solver_resolution(self, nu: float) -> int:
        """Solver points per axis: ``n`` if ``nu >= 1e-4 (64/n)^2``, ``2n`` if ``nu >= 2e-5
        (64/n)^2``, else ``4n`` (thresholds measured at the default amplitude: the stored
        t = 10 frame then differs from a solve twice as fine by < 1e-3, docs/systems/ns2d.md)."""
        cfg = self.config
        if cfg.solver_resolution:
            return cfg.solver_resolution
        scale = (64 / cfg.resolution) ** 2
        if nu >= 1e-4 * scale:
            return cfg.resolution
        return 2 * cfg.resolution if nu >= 2e-5 * scale else 4 * cfg.resolution

    def generate(self, num: int, seed: int = 0, *, start: int = 0,
                 batch_size: int | None = None,
                 progress: Callable[[int], None] | None = None) -> GridTrajectories:
        """Trajectories ``start..start+num-1`` of run ``seed``: vorticity ``(B, T, x, y)``."""
        if num < 1:
            raise SpecError(f"num={num} is invalid; allowed: >= 1.")
        cfg = self.config
        seeds = trajectory_seeds(seed, num, start)
        rngs = [np.random.default_rng(int(s)) for s in seeds]
        params = [self.sample_params(r) for r in rngs]  # then the GRF draws from the same rng
        nu = np.array([p["nu"] for p in params])
        amp = np.array([p["forcing"] for p in params])
        n_solver = np.array([self.solver_resolution(v) for v in nu])
        times = np.linspace(0.0, cfg.t_final, cfg.nt)
        omega = np.empty((num, cfg.nt, cfg.resolution, cfg.resolution), np.float32)
        bs = batch_size or self.default_batch_size
        for lo in range(0, num, bs):
            idx = np.arange(lo, min(lo + bs, num))
            for n in np.unique(n_solver[idx]):  # one vectorised solve per solver resolution
                sub = idx[n_solver[idx] == n]
                omega[sub] = self._solve([rngs[i] for i in sub], nu[sub], amp[sub], int(n), times)
            if progress is not None:
                progress(len(idx))
        captions = [self._captions(omega[i], times, nu[i], amp[i], int(seeds[i]))
                    for i in range(num)]
        return GridTrajectories(
            system=self.name, fields={"vorticity": omega}, time=times,
            coords={"x": np.arange(cfg.resolution) / cfg.resolution,
                    "y": np.arange(cfg.resolution) / cfg.resolution},
            params={"nu": nu, "forcing": amp}, seeds=seeds, captions=captions,
            periodic=True, attrs=self._attrs())

    def _solve(self, rngs: list[np.random.Generator], nu: np.ndarray, amp: np.ndarray, n: int,
               times: np.ndarray) -> np.ndarray:
        """Solve a sub-batch on the ``n``-grid; point values on the stored grid ``(b, T, r, r)``."""
        cfg = self.config
        w0 = torch.from_numpy(sample_grf(rngs, n) * cfg.ic_scale)  # (b, n, n)
        f = torch.from_numpy(amp[:, None, None] * forcing_pattern(n)[None])  # (b, n, n)
        before = torch.get_num_threads()
        try:  # many threads on small FFTs are slower (10x measured on a loaded 2-core host)
            torch.set_num_threads(cfg.threads or before)
            out, _ = ns2d_solve(w0, torch.from_numpy(nu), times, forcing=f, cfl=cfg.cfl,
                                dt_max=cfg.dt_max)
        finally:
            torch.set_num_threads(before)
        s = n // cfg.resolution
        return out[:, :, ::s, ::s].numpy().astype(np.float32)  # exact subsampling x_i = i/r

    def _captions(self, omega: np.ndarray, times: np.ndarray, nu: float, amp: float,
                  seed: int) -> list[str]:
        """Four distinct captions from parameters and measured features (seeded wording)."""
        feat = ns2d_features(omega)
        regime, v = _viscosity_regime(nu), fmt(nu)
        u_rms = math.sqrt(2 * float(feat["energy"][-1]))  # unit square: U_rms^2 = 2E
        re = _round2(u_rms / nu)
        visc = [f"viscosity {v} ({regime})", f"a {regime} regime at viscosity {v}",
                f"viscosity {v}, a Reynolds number of about {re} ({regime})"]
        r, t_end = float(feat["enstrophy_ratio"]), fmt(times[-1])
        if r > 1.1:
            ens = [f"enstrophy growing {_round2(r)}-fold by t = {t_end}",
                   f"enstrophy increasing by a factor of {_round2(r)}"]
        elif r < 0.9:
            ens = [f"enstrophy decaying to {_round2(100 * r)}% of its initial value by t = {t_end}",
                   f"enstrophy falling by a factor of {_round2(1 / r)}"]
        else:
            ens = [f"nearly constant enstrophy (final/initial {r:.2f})"]
        nv, npos, nneg = feat["n_vortices"], feat["n_positive"], feat["n_negative"]
        vort = [f"{nv} dominant vortices at the end ({npos} positive, {nneg} negative)",
                f"{nv} strong vortex regions in the final frame"]
        if amp > 0:
            forc = [f"forcing {fmt(amp)}(sin 2pi(x+y) + cos 2pi(x+y))",
                    f"steady diagonal sinusoidal forcing of amplitude {fmt(amp)}"]
        else:
            forc = ["no forcing (freely decaying)", "unforced, freely decaying flow"]
        subject = ["2D incompressible Navier-Stokes flow", "Periodic 2D Navier-Stokes vorticity",
                   "A 2D Navier-Stokes simulation on the periodic unit square"]
        rng = np.random.default_rng([seed, 2])
        return compose_captions(rng, subject, [visc, ens, vort, forc], k=4)

    def _attrs(self) -> dict[str, object]:
        """Solver metadata (JSON-able, the same for every batch)."""
        return {
            "solver": "Fourier pseudo-spectral vorticity-streamfunction, 2/3-rule dealiasing",
            "time_scheme": "IMEX RK3/Crank-Nicolson (Spalart, Moser & Rogers 1991), adaptive CFL",
            "stored_values": "point values at x_i = i/n, y_j = j/n (exact subsampling)",
            "axis_order": "vorticity[trajectory, time, x, y]",
            "initial_condition": f"GRF N(0, {FNO_SCALE:.4g} (-Delta + {FNO_TAU**2:g} I)^-"
                                 f"{FNO_ALPHA:g}), zero mean, times ic_scale",
            "forcing": "A (sin 2pi(x+y) + cos 2pi(x+y))",
            "solver_resolution_rule": "resolution if nu >= 5e-5 (64/resolution)^2 else 2x",
            "config": asdict(self.config),
        }
