"""Independent pseudo-spectral Burgers solver and the re-solve ("physical consistency") check.

The solver is Fourier pseudo-spectral with 2/3-rule dealiasing and ETDRK4 time stepping
(Cox & Matthews, JCP 176, 2002), its coefficients computed by the contour-integral trick of
Kassam & Trefethen (SIAM J. Sci. Comput. 26, 2005). It shares no code with the finite-volume
generator in :mod:`genphys.physics.burgers`, so agreement between the two is evidence that
both solve the PDE.

Stored data are cell averages over ``nx`` uniform periodic cells; :func:`upsample_cell_averages`
inverts the averaging mode by mode (divide by sinc(k/nx)) to get a band-limited point-value
field, and :func:`coarsen_spectral` averages a band-limited field back onto the cells exactly.
"""

from __future__ import annotations

import math

import numpy as np

from genphys.errors import UserInputError


def upsample_cell_averages(c: np.ndarray, m: int) -> np.ndarray:
    """Point values on ``m`` points x_i = i/m of the band-limited field whose ``nx``-cell
    averages are ``c`` (..., nx): deconvolve the box filter, zero-pad the spectrum."""
    nx = c.shape[-1]
    if m < nx or m % 2:
        raise UserInputError(f"upsampling size m={m} must be even and at least nx={nx}.")
    k = np.arange(nx // 2 + 1)
    spec = np.fft.rfft(c, axis=-1) * np.exp(-1j * np.pi * k / nx) / np.sinc(k / nx)
    if nx % 2 == 0:
        spec[..., -1] *= 0.5  # the coarse Nyquist mode becomes an ordinary mode on the fine grid
    out = np.zeros(c.shape[:-1] + (m // 2 + 1,), dtype=complex)
    out[..., : nx // 2 + 1] = spec * (m / nx)
    return np.fft.irfft(out, m, axis=-1)


def coarsen_spectral(u: np.ndarray, nx: int) -> np.ndarray:
    """Exact averages over ``nx`` cells of the trigonometric interpolant of ``u`` (..., m)."""
    m = u.shape[-1]
    if m % nx:
        raise UserInputError(f"cannot average {m} points onto nx={nx} cells: nx must divide m.")
    k = np.arange(m // 2 + 1)
    spec = np.fft.rfft(u, axis=-1) * np.sinc(k / nx) * np.exp(1j * np.pi * k / nx)
    return np.fft.irfft(spec, m, axis=-1)[..., :: m // nx]


def _etdrk4_coefficients(lam: np.ndarray, h: np.ndarray, n_contour: int = 32):
    """ETDRK4 factors E, E2, Q, f1, f2, f3 for diagonal L = lam (B, K) and steps h (B, 1)."""
    z0 = lam * h  # (B, K)
    r = np.exp(1j * np.pi * (np.arange(1, n_contour + 1) - 0.5) / n_contour)  # unit circle
    z = z0[..., None] + r  # (B, K, n_contour)
    ez = np.exp(z)
    q = h * np.real(np.mean((np.exp(z / 2) - 1) / z, axis=-1))
    f1 = h * np.real(np.mean((-4 - z + ez * (4 - 3 * z + z * z)) / z**3, axis=-1))
    f2 = h * np.real(np.mean((2 + z + ez * (z - 2)) / z**3, axis=-1))
    f3 = h * np.real(np.mean((-4 - 3 * z - z * z + ez * (4 - z)) / z**3, axis=-1))
    return np.exp(z0), np.exp(z0 / 2), q, f1, f2, f3


def solve_burgers_spectral(u0: np.ndarray, nu: np.ndarray, times: np.ndarray,
                           cfl: float = 1.0) -> np.ndarray:
    """Point values ``(B, T, m)`` of u_t + (u²/2)_x = ν u_xx at ``times`` from u0 (B, m).

    Pseudo-spectral, 2/3 dealiasing, ETDRK4 (Kassam & Trefethen 2005); per-trajectory step
    h ≤ cfl / (max|u0| k_max) with k_max the largest retained wavenumber.
    """
    u0 = np.asarray(u0, dtype=np.float64)
    nb, m = u0.shape
    nu = np.broadcast_to(np.asarray(nu, dtype=np.float64), (nb,))
    k = 2 * np.pi * np.arange(m // 2 + 1)  # (K,)
    keep = np.arange(m // 2 + 1) <= m // 3  # 2/3-rule dealiasing mask
    g = -0.5j * k * keep  # N(v) = -(1/2) i k FFT(u²), dealiased

    def nonlin(v):
        return g * np.fft.rfft(np.fft.irfft(v, m) ** 2)

    umax = np.maximum(np.abs(u0).max(-1), 1e-12)
    lam = -nu[:, None] * k[None, :] ** 2  # (B, K)
    v = np.fft.rfft(u0) * keep
    out = np.empty((nb, len(times), m))
    out[:, 0] = np.fft.irfft(v, m)
    for i in range(1, len(times)):
        dt = float(times[i] - times[i - 1])
        nsub = np.maximum(1, np.ceil(dt * umax * k[keep].max() / cfl - 1e-9)).astype(int)
        h = (dt / nsub)[:, None]  # (B, 1)
        e, e2, q, f1, f2, f3 = _etdrk4_coefficients(lam, h)
        for step in range(int(nsub.max())):
            nv = nonlin(v)
            a = e2 * v + q * nv
            na = nonlin(a)
            b = e2 * v + q * na
            nb_ = nonlin(b)
            c = e2 * a + q * (2 * nb_ - nv)
            new = e * v + nv * f1 + 2 * (na + nb_) * f2 + nonlin(c) * f3
            v = np.where((step < nsub)[:, None], new, v)
        out[:, i] = np.fft.irfft(v, m)
    return out


def _auto_modes(nu_min: float, nx: int) -> int:
    """Smallest power-of-two grid ≥ max(1024, nx) with ≥ 2.5/ν points (resolves the
    viscous shock width ~ 4ν/Δu)."""
    m = max(1024, nx)
    while m < 2.5 / nu_min:
        m *= 2
    return m


def resolve_from_first_frame(u0_stored: np.ndarray, nu, nt: int, t_final: float,
                             n_modes: int | None = None) -> np.ndarray:
    """Re-solve Burgers from stored first frames (B, nx) and return stored-equivalent cell
    averages (B, nt, nx) at ``nt`` equal steps in [0, t_final] (independent spectral solver)."""
    u0 = np.atleast_2d(np.asarray(u0_stored, dtype=np.float64))
    nb, nx = u0.shape
    nu = np.broadcast_to(np.asarray(nu, dtype=np.float64), (nb,))
    if np.any(~np.isfinite(nu)) or np.any(nu <= 0):
        raise UserInputError(f"viscosity nu={nu!r} must be positive and finite.")
    if nt < 2 or not (t_final > 0):
        raise UserInputError(f"need nt >= 2 and t_final > 0, got nt={nt}, t_final={t_final}.")
    times = np.linspace(0.0, t_final, nt)
    # each trajectory at its own resolution (the cost grows ~ m^2 log m: one low-nu
    # trajectory must not put the whole batch on its fine grid)
    modes = np.array([n_modes or _auto_modes(float(v), nx) for v in nu])
    out = np.empty((nb, nt, nx))
    for m in np.unique(modes):
        rows = np.flatnonzero(modes == m)
        mm = nx * math.ceil(int(m) / nx)
        mm += mm % 2
        u = solve_burgers_spectral(upsample_cell_averages(u0[rows], mm), nu[rows], times)
        out[rows] = coarsen_spectral(u, nx)  # (b, nt, nx)
    return out


def relative_l2(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Per-trajectory ‖pred − target‖₂ / ‖target‖₂ over all frames and points: (B,)."""
    b = target.shape[0]
    diff = (pred - target).reshape(b, -1)  # (B, T*X)
    return np.linalg.norm(diff, axis=1) / np.maximum(
        np.linalg.norm(target.reshape(b, -1), axis=1), 1e-300)


def consistency_error(u: np.ndarray, nu, t_final: float, n_modes: int | None = None) -> np.ndarray:
    """Physical-consistency error of Burgers trajectories ``u`` (B, T, X): ‖u − r‖₂/‖r‖₂ over
    all frames and cells, r the spectral re-solve from u's own first frame; shape (B,)."""
    u = np.asarray(u, dtype=np.float64)
    if u.ndim != 3:
        raise UserInputError(f"expected trajectories of shape (B, T, X), got shape {u.shape}.")
    ref = resolve_from_first_frame(u[:, 0], nu, u.shape[1], t_final, n_modes)
    return relative_l2(u, ref)


def fit_viscosity(u: np.ndarray, t_final: float, grid: np.ndarray | None = None,
                  n_modes: int = 256, refine: int = 2) -> np.ndarray:
    """Viscosity of each Burgers trajectory ``u (B, T, X)`` by simulation: the nu whose
    spectral re-solve from u's own first frame matches u best in relative L2. A grid search
    in log nu, then ``refine`` rounds of a 5-point grid spanning the best point's neighbours,
    then a parabola through the best point and its neighbours; shape (B,)."""
    u = np.asarray(u, dtype=np.float64)
    lg = np.log(np.geomspace(5e-4, 2e-1, 17) if grid is None else np.asarray(grid, float))
    lg = np.broadcast_to(lg, (len(u), len(lg)))  # (B, K) per-trajectory grids
    for round_ in range(refine + 1):
        err = np.stack([relative_l2(u, resolve_from_first_frame(u[:, 0], np.exp(lg[:, j]),
                                                                 u.shape[1], t_final, n_modes))
                        for j in range(lg.shape[1])], 1)  # (B, K)
        k = np.clip(err.argmin(1), 1, lg.shape[1] - 2)  # (B,) interior best index
        rows = np.arange(len(u))
        h = lg[rows, k] - lg[rows, k - 1]  # (B,) grid step around the best point
        if round_ < refine:
            lg = lg[rows, k][:, None] + h[:, None] * np.linspace(-1, 1, 5)  # (B, 5)
    e0, e1, e2 = err[rows, k - 1], err[rows, k], err[rows, k + 1]
    denom = e0 - 2 * e1 + e2
    shift = np.where(denom > 0, 0.5 * (e0 - e2) / np.where(denom > 0, denom, 1.0), 0.0)
    return np.exp(lg[rows, k] + h * np.clip(shift, -1.0, 1.0))
