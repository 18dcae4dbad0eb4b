"""ns2d: exact and manufactured solutions, convergence orders, invariants, GRF spectrum,
determinism, features and captions of the 2D vorticity Navier-Stokes system."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from genphys.errors import UserInputError
from genphys.physics.base import SpecError, get_system
from genphys.physics.grf import grf_eigenvalues, sample_grf
from genphys.physics.ns2d import (
    _ALPHA,
    _BETA,
    count_vortices,
    forcing_pattern,
    ns2d_features,
    ns2d_solve,
)

TINY = dict(resolution=16, nt=3, t_final=0.5)  # a fast config for system-level tests


def grid(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Point grid ``(n, n)`` x and y arrays, axis 0 = x."""
    x = np.arange(n) / n
    return np.meshgrid(x, x, indexing="ij")


def taylor_green(n: int, m: int) -> tuple[torch.Tensor, float]:
    """omega = 2k cos(kx) cos(ky), k = 2 pi m, and its wavenumber k."""
    k = 2 * math.pi * m
    x, y = grid(n)
    return torch.from_numpy(2 * k * np.cos(k * x) * np.cos(k * y))[None], k


def orders(errors: list[float]) -> np.ndarray:
    """Observed orders log2(e_i / e_{i+1}) for successive halvings."""
    e = np.asarray(errors)
    return np.log2(e[:-1] / e[1:])


# ------------------------------------------------------------------ exact solutions
def test_taylor_green_temporal_order_and_exact_space() -> None:
    nu, t_end = 0.01, 1.0
    w0, k = taylor_green(16, 1)
    errs, disc = [], []
    for n_steps in (5, 10, 20, 40):
        out, steps = ns2d_solve(w0, nu, np.array([0.0, t_end]), dt=t_end / n_steps)
        assert steps.item() == n_steps
        exact = w0[0] * math.exp(-2 * nu * k**2 * t_end)
        errs.append(float((out[0, -1] - exact).abs().max() / exact.abs().max()))
        # the scheme's own amplification for a linear mode (nonlinear term vanishes exactly)
        z = -nu * 2 * k**2 * t_end / n_steps
        amp = np.prod([(1 + a * z) / (1 - b * z) for a, b in zip(_ALPHA, _BETA)]) ** n_steps
        disc.append(float((out[0, -1] - w0[0] * amp).abs().max() / exact.abs().max()))
    p = orders(errs)
    assert np.all(np.abs(p - 2.0) < 0.3), (errs, p)
    assert max(disc) < 1e-12  # spatial and nonlinear error: round-off only


def test_taylor_green_enstrophy_ratio_feature() -> None:
    nu, t_end = 1e-3, 2.0
    w0, k = taylor_green(32, 2)
    out, _ = ns2d_solve(w0, nu, np.linspace(0, t_end, 5), dt=0.01)
    feat = ns2d_features(out[0].numpy())
    exact = math.exp(-4 * nu * k**2 * t_end)
    assert abs(feat["enstrophy_ratio"] / exact - 1) < 1e-6
    assert (feat["n_positive"], feat["n_negative"]) == (8, 8)


# terms of a manufactured vorticity: A(t) cos(2 pi (p x + q y) + phase), with A and dA/dt
MMS = [
    (1, 2, 0.3, lambda t: np.cos(t), lambda t: -np.sin(t)),
    (1, -1, 1.1, lambda t: 1 + 0.5 * np.sin(2 * t), lambda t: np.cos(2 * t)),
    (0, 3, 0.0, lambda t: 0.5 * np.exp(-t), lambda t: -0.5 * np.exp(-t)),
]


def mms_fields(t: float, n: int, nu: float) -> tuple[np.ndarray, np.ndarray]:
    """Exact omega and the forcing that makes it a solution, from hand derivatives."""
    x, y = grid(n)
    w = wt = wx = wy = u = v = lap = 0.0
    for p, q, ph, a, da in MMS:
        th = 2 * math.pi * (p * x + q * y) + ph
        k2 = 4 * math.pi**2 * (p * p + q * q)
        w = w + a(t) * np.cos(th)
        wt = wt + da(t) * np.cos(th)
        wx = wx - 2 * math.pi * p * a(t) * np.sin(th)
        wy = wy - 2 * math.pi * q * a(t) * np.sin(th)
        u = u - 2 * math.pi * q * a(t) / k2 * np.sin(th)  # u = psi_y, psi = w_term / k2
        v = v + 2 * math.pi * p * a(t) / k2 * np.sin(th)  # v = -psi_x
        lap = lap - k2 * a(t) * np.cos(th)
    return w, wt + u * wx + v * wy - nu * lap


def test_manufactured_nonlinear_solution_order() -> None:
    n, nu, t_end = 32, 0.01, 1.0

    def forcing(t: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(np.stack([mms_fields(float(s), n, nu)[1] for s in t]))

    w0 = torch.from_numpy(mms_fields(0.0, n, nu)[0])[None]
    exact = mms_fields(t_end, n, nu)[0]
    errs = []
    for n_steps in (10, 20, 40, 80):
        out, _ = ns2d_solve(w0, nu, np.array([0.0, t_end]), forcing=forcing, dt=t_end / n_steps)
        errs.append(float(np.abs(out[0, -1].numpy() - exact).max() / np.abs(exact).max()))
    p = orders(errs)
    assert np.all(np.abs(p - 2.0) < 0.3), (errs, p)
    assert errs[-1] < 1e-5


# ------------------------------------------------------------------ the real problem
def fno_problem(n: int, batch: int = 2, ic_scale: float = 6.0):
    """GRF initial vorticity (amplified for stronger nonlinearity) and the FNO forcing."""
    w0 = torch.from_numpy(sample_grf([np.random.default_rng(i) for i in range(batch)], n))
    f = torch.from_numpy(0.1 * forcing_pattern(n))[None]
    return w0 * ic_scale, f


def test_self_convergence_in_time_and_space() -> None:
    nu, times = 1e-3, np.array([0.0, 1.0])
    w0, f = fno_problem(32)
    sols = [ns2d_solve(w0, nu, times, forcing=f, dt=dt)[0][:, -1] for dt in (0.1, 0.05, 0.025,
                                                                            0.0125)]
    diffs = [float((a - b).norm() / b.norm()) for a, b in zip(sols[:-1], sols[1:])]
    p = orders(diffs)
    assert np.all(p > 1.7) and np.all(p < 3.3), (diffs, p)  # 2nd order (3rd-order advection)
    # space: one band-limited initial field (|k| <= 5) on 16, 32, 64 points, compared at the
    # common 16-point grid: the error comes only from resolving the nonlinear cascade
    w16, _ = fno_problem(16)
    w16_hat = torch.fft.rfft2(w16)  # (B, 16, 9)
    by_n = {}
    for n in (16, 32, 48, 64):
        pad = torch.zeros(2, n, n // 2 + 1, dtype=w16_hat.dtype)
        pad[:, :6, :6], pad[:, -5:, :6] = w16_hat[:, :6, :6], w16_hat[:, -5:, :6]  # |k| <= 5
        w0n = torch.fft.irfft2(pad, s=(n, n)) * (n / 16) ** 2
        fn = torch.from_numpy(0.1 * forcing_pattern(n))[None]
        by_n[n] = ns2d_solve(w0n, nu, times, forcing=fn, dt=0.05)[0][:, -1, :: n // 16, :: n // 16]
    e16, e32, e48 = (float((by_n[n] - by_n[64]).norm() / by_n[64].norm()) for n in (16, 32, 48))
    # measured 5.5e-3, 2.9e-6, 4.5e-10: spectral (exponential) convergence
    assert e16 / e32 > 1e3 and e32 / e48 > 1e3 and e48 < 1e-8, (e16, e32, e48)


def test_inviscid_invariants_with_dealiasing() -> None:
    n, times = 32, np.array([0.0, 1.0])
    w0, _ = fno_problem(n, batch=1, ic_scale=20.0)
    drifts = []
    for dt in (0.02, 0.01, 0.005):
        out, _ = ns2d_solve(w0, 0.0, times, dt=dt)
        feat = ns2d_features(out[0].numpy())
        drifts.append([abs(feat[q][-1] / feat[q][0] - 1) for q in ("energy", "enstrophy")])
    drifts = np.array(drifts)  # (3 dt, 2 invariants)
    assert drifts[-1].max() < 2e-7, drifts
    # the drift is RK3 time error (3rd order, measured 8x per halving), not a spatial leak
    p = np.log2(drifts[:-1] / drifts[1:])
    assert np.all((p > 2.6) & (p < 3.4)), (drifts, p)
    # a rough field: without dealiasing the aliasing error breaks conservation badly
    rough = torch.from_numpy(np.random.default_rng(0).standard_normal((1, n, n)))
    rough = rough - rough.mean()
    dr = {}
    for dealias in (True, False):
        out, _ = ns2d_solve(rough, 0.0, np.array([0.0, 0.2]), dt=0.001, dealias=dealias)
        z = ns2d_features(out[0].numpy())["enstrophy"]
        dr[dealias] = abs(z[-1] / z[0] - 1)
    assert dr[True] < 1e-6 and dr[False] > 100 * dr[True], dr


def test_mean_vorticity_stays_zero() -> None:
    w0, f = fno_problem(32, batch=2, ic_scale=6.0)
    out, _ = ns2d_solve(w0, 1e-4, np.linspace(0, 2, 5), forcing=f)
    means = out.mean(dim=(-2, -1)).abs()
    assert float(means.max()) < 1e-14 * float(out.abs().max()) + 1e-15
    # stored on the solver grid itself; point values subsampled from a finer solve carry the
    # aliased content of the finer modes, so their grid mean is zero only to that level
    g = get_system("ns2d", solver_resolution=16, **TINY).generate(2, seed=3)
    w = g.fields["vorticity"].astype(np.float64)
    assert np.abs(w.mean(axis=(-2, -1))).max() < 1e-6 * np.abs(w).max()


# ------------------------------------------------------------------ initial condition
def test_grf_has_the_prescribed_spectrum() -> None:
    n, m = 16, 600
    w = sample_grf([np.random.default_rng(1000 + i) for i in range(m)], n)  # (m, n, n)
    w_hat = np.fft.fft2(w) / n**2  # (m, n, n) Fourier coefficients
    lam = grf_eigenvalues(n)
    assert np.abs(w_hat[:, 0, 0]).max() < 1e-15  # zero mean
    k = np.abs(np.fft.fftfreq(n, 1 / n))
    kept = (k[:, None] < n // 2) & (k[None, :] < n // 2)
    kept[0, 0] = False
    assert np.abs(w_hat[:, ~kept & (lam > 0)][:, 1:]).max() < 1e-15  # |k| >= n/2 is empty
    ratio = (np.abs(w_hat) ** 2).mean(0)[kept] / lam[kept]  # each ~ Exp(1) mean: sd 1/sqrt(m)
    assert np.abs(ratio - 1).max() < 5 / math.sqrt(m), np.abs(ratio - 1).max()
    # the sum over the n^2 - 1 modes (pairs +-k are one variable): mean within 4 sd
    assert abs(ratio.mean() - 1) < 4 / math.sqrt(m * kept.sum() / 2)
    var_exact = lam[kept].sum()
    assert abs(w.var(axis=0).mean() / var_exact - 1) < 5 * math.sqrt(2 / m)


def test_grf_low_modes_do_not_depend_on_resolution() -> None:
    a = sample_grf([np.random.default_rng(7)], 16)
    b = sample_grf([np.random.default_rng(7)], 32)
    ha, hb = np.fft.fft2(a[0]) / 16**2, np.fft.fft2(b[0]) / 32**2
    idx = np.r_[0:8, -7:0]  # wavenumbers -7..7
    np.testing.assert_allclose(ha[np.ix_(idx, idx)], hb[np.ix_(idx, idx)], atol=1e-15)


# ------------------------------------------------------------------ features
@pytest.mark.parametrize("m", [1, 2, 3])
def test_vortex_count_on_taylor_green(m: int) -> None:
    w, _ = taylor_green(48, m)
    w = w[0].numpy()
    assert count_vortices(w) == (2 * m * m, 2 * m * m)
    # shifted so that vortices straddle the periodic boundary: the count must not change
    assert count_vortices(np.roll(w, (5, 11), axis=(0, 1))) == (2 * m * m, 2 * m * m)


def test_features_energy_and_single_vortex() -> None:
    w, k = taylor_green(32, 1)
    feat = ns2d_features(np.stack([w[0].numpy()] * 2))
    # psi = omega / (2 k^2): E = 1/2 mean(omega psi) = mean(omega^2) / (4 k^2) = 1/4
    np.testing.assert_allclose(feat["energy"], 0.25, rtol=1e-12)
    np.testing.assert_allclose(feat["enstrophy"], 0.5 * k**2, rtol=1e-12)  # 1/2 mean(w^2)
    x, y = grid(32)
    blob = np.exp(-((x - 0.5) ** 2 + (y - 0.02) ** 2) / 0.01)  # one blob across y = 0
    blob = blob + np.exp(-((x - 0.5) ** 2 + (y - 1.02) ** 2) / 0.01)  # its periodic image
    f2 = ns2d_features(np.stack([blob - blob.mean()] * 2))
    assert (f2["n_positive"], f2["n_negative"]) == (1, 0)
    with pytest.raises(SpecError, match="expected"):
        ns2d_features(np.zeros((4, 4)))


# ------------------------------------------------------------------ the system
def test_generate_shapes_coords_and_attrs() -> None:
    sys_ = get_system("ns2d", **TINY)
    torch.set_num_threads(2)
    g = sys_.generate(2, seed=0)
    assert torch.get_num_threads() == 2  # the solver's 1-thread setting is restored
    assert g.fields["vorticity"].shape == (2, 3, 16, 16)
    assert g.fields["vorticity"].dtype == np.float32
    np.testing.assert_allclose(g.time, [0.0, 0.25, 0.5])
    np.testing.assert_allclose(g.coords["x"], np.arange(16) / 16)
    assert set(g.params) == {"nu", "forcing"} and g.params["nu"].shape == (2,)
    assert np.all((g.params["nu"] >= 1e-5) & (g.params["nu"] <= 1e-3))
    np.testing.assert_array_equal(g.params["forcing"], 0.1)  # FNO recipe by default
    assert g.attrs["axis_order"] == "vorticity[trajectory, time, x, y]"
    assert g.attrs["config"]["resolution"] == 16 and g.periodic


def test_stored_values_are_point_values_of_the_solver_grid() -> None:
    sys_ = get_system("ns2d", nu=2e-4, solver_resolution=32, **TINY)
    g = sys_.generate(1, seed=4)
    rng = np.random.default_rng(int(g.seeds[0]))
    sys_.sample_params(rng)  # same draws as generate, then the GRF
    w0 = torch.from_numpy(sample_grf([rng], 32) * sys_.config.ic_scale)
    f = torch.from_numpy(0.1 * forcing_pattern(32))[None]
    out, _ = ns2d_solve(w0, 2e-4, g.time, forcing=f)
    np.testing.assert_array_equal(g.fields["vorticity"][0], out[0, :, ::2, ::2].numpy()
                                  .astype(np.float32))


def test_determinism_across_batch_size_and_start() -> None:
    sys_ = get_system("ns2d", nu_min=2e-4, nu_max=6e-4, **TINY)  # seed 5: grids 32, 64, 32
    full = sys_.generate(3, seed=5, batch_size=3)
    part = sys_.generate(2, seed=5, start=1, batch_size=1)
    np.testing.assert_array_equal(full.fields["vorticity"][1:], part.fields["vorticity"])
    np.testing.assert_array_equal(full.seeds[1:], part.seeds)
    assert full.captions[1:] == part.captions
    # the auto solver resolution mixed 32- and 64-point solves inside the batch of 3
    assert [sys_.solver_resolution(v) for v in full.params["nu"]] == [32, 64, 32]


def test_captions() -> None:
    sys_ = get_system("ns2d", nu=1e-4, **TINY)
    g = sys_.generate(2, seed=1)
    for caps in g.captions:
        assert len(caps) >= 3 and len(set(caps)) == len(caps)
        for c in caps:
            assert "1e-4" in c and "moderately turbulent" in c
            assert "forcing" in c.lower()
            assert "enstrophy" in c.lower() and "vort" in c.lower()
    assert g.captions == sys_.generate(2, seed=1).captions  # deterministic per seed
    free = get_system("ns2d", nu=1e-3, forcing=0.0, resolution=16, nt=3, t_final=5.0)
    caps = free.generate(1, seed=1).captions[0]
    assert all("laminar" in c and ("no forcing" in c.lower() or "unforced" in c.lower())
               for c in caps), caps
    assert all("decay" in c or "falling" in c for c in caps), caps


def test_overrides_and_errors() -> None:
    s = get_system("ns2d", forcing_min=0.05, forcing_max=0.2)
    amps = [s.sample_params(np.random.default_rng(i))["forcing"] for i in range(20)]
    assert min(amps) >= 0.05 and max(amps) <= 0.2 and len(set(amps)) == 20
    assert get_system("ns2d").solver_resolution(1e-3) == 64
    assert get_system("ns2d").solver_resolution(2e-5) == 128
    with pytest.raises(SpecError, match="solver_resolution=48"):
        get_system("ns2d", solver_resolution=48)
    with pytest.raises(SpecError, match="nu=0.1"):
        get_system("ns2d", nu=0.1)
    with pytest.raises(SpecError, match="cfl"):
        get_system("ns2d", cfl=2.0)
    with pytest.raises(SpecError, match="unknown key"):
        get_system("ns2d", reynolds=100)



def test_solver_rejects_bad_input() -> None:
    with pytest.raises(UserInputError, match="expected \\(B, n, n\\)"):
        ns2d_solve(torch.zeros(1, 8, 6, dtype=torch.float64), 1e-3, np.array([0.0, 1.0]))
    with pytest.raises(UserInputError, match="nu=-1"):
        ns2d_solve(torch.zeros(1, 8, 8, dtype=torch.float64), -1.0, np.array([0.0, 1.0]))
    with pytest.raises(UserInputError, match="increasing"):
        ns2d_solve(torch.zeros(1, 8, 8, dtype=torch.float64), 1e-3, np.array([1.0, 0.0]))

@pytest.mark.slow
@pytest.mark.parametrize("nu", [1e-4, 5e-5, 2e-5])  # auto grids 64, 128, 128
def test_auto_solver_resolution_is_converged(nu: float) -> None:
    """The auto solver grid vs one twice as fine, default config, stored points (t = 10)."""
    sys_ = get_system("ns2d", nu=nu)
    n = sys_.solver_resolution(nu)
    g = sys_.generate(1, seed=0)
    fine = get_system("ns2d", nu=nu, solver_resolution=2 * n).generate(1, seed=0)
    a, b = g.fields["vorticity"][0, -1], fine.fields["vorticity"][0, -1]
    assert np.linalg.norm(a - b) / np.linalg.norm(b) < 1e-3
