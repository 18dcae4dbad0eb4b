"""burgers1d: Cole–Hopf convergence order, conservation, re-solve acceptance, features, seeds."""

import json
import math
import time

import numpy as np
import pytest

from genphys.errors import UserInputError
from genphys.physics.base import SpecError, get_system
from genphys.physics.burgers import (
    burgers_features,
    consistency_error,
    nu_from_pdebench,
    nu_to_pdebench,
    solve_burgers_fv,
)
from genphys.physics.ic1d import (
    SineIC,
    cell_averages,
    cell_centres,
    coarsen,
    count_bumps,
    sample_ic,
)
from genphys.physics.spectral1d import (
    coarsen_spectral,
    solve_burgers_spectral,
    upsample_cell_averages,
)


# ---------------------------------------------------------------- Cole–Hopf exact solution
def _phi(x, t, nu):
    """Heat solution φ > 0; u = -2ν φ_x/φ solves Burgers (Cole 1951, Hopf 1950)."""
    return (1 + 0.6 * np.cos(2 * np.pi * x) * np.exp(-nu * (2 * np.pi) ** 2 * t)
            + 0.25 * np.sin(4 * np.pi * x + 1) * np.exp(-nu * (4 * np.pi) ** 2 * t))


def _cole_hopf_averages(n, t, nu):
    """Exact cell averages: (1/dx) ∫ u dx = -2ν [log φ] / dx over each cell."""
    edges = np.arange(n + 1) / n
    return -2 * nu * np.diff(np.log(_phi(edges, t, nu))) * n


def _cole_hopf_points(m, t, nu):
    x = np.arange(m) / m
    dphi = (-0.6 * 2 * np.pi * np.sin(2 * np.pi * x) * np.exp(-nu * (2 * np.pi) ** 2 * t)
            + 0.25 * 4 * np.pi * np.cos(4 * np.pi * x + 1) * np.exp(-nu * (4 * np.pi) ** 2 * t))
    return -2 * nu * dphi / _phi(x, t, nu)


def test_fv_order_against_cole_hopf():
    nu, t_final = 0.05, 0.5
    times = np.array([0.0, 0.25, t_final])
    ns, errs = [32, 64, 128, 256], []
    for n in ns:
        u = solve_burgers_fv(_cole_hopf_averages(n, 0.0, nu)[None], np.array([nu]), times)
        errs.append(np.abs(u[0, -1] - _cole_hopf_averages(n, t_final, nu)).max())
    orders = np.log2(np.array(errs[:-1]) / np.array(errs[1:]))
    print(f"\nFV vs Cole-Hopf max errors {np.array(errs)}, orders {orders.round(2)}")
    # WENO5 in space, RK4 in time with h ∝ dx: order 5 on coarse grids tending to 4
    assert np.all(orders > 3.5) and np.all(orders < 6.0)
    assert errs[-1] < 1e-8


def test_spectral_reference_against_cole_hopf():
    nu, m = 0.02, 256
    times = np.linspace(0.0, 0.5, 3)
    u = solve_burgers_spectral(_cole_hopf_points(m, 0.0, nu)[None], np.array([nu]), times)
    err = np.abs(u[0, -1] - _cole_hopf_points(m, 0.5, nu)).max()
    print(f"\nspectral ETDRK4 vs Cole-Hopf max error {err:.2e}")
    assert err < 1e-9


def test_cell_average_round_trip_and_deconvolution():
    c = _cole_hopf_averages(64, 0.0, 0.05)[None]  # (1, 64)
    up = upsample_cell_averages(c, 512)
    assert np.abs(coarsen_spectral(up, 64) - c).max() < 1e-13
    ic = SineIC((1, 3), (0.7, 0.4), (0.3, 2.0))
    up = upsample_cell_averages(cell_averages(ic, 32)[None], 256)[0]
    assert np.abs(up - ic(np.arange(256) / 256)).max() < 1e-12


# ---------------------------------------------------------------- conservation, max principle
def test_mean_conserved_and_maximum_principle():
    rng = np.random.default_rng(0)
    u0 = np.stack([cell_averages(sample_ic(rng), 256) for _ in range(4)])
    nu = np.array([1e-3, 3e-3, 1e-2, 1e-1])
    u = solve_burgers_fv(u0, nu, np.linspace(0.0, 0.6, 4))
    drift = np.abs(u.mean(-1) - u0.mean(-1)[:, None]).max()
    overshoot = (np.abs(u).max(-1) - np.abs(u0).max(-1)[:, None]).max()
    print(f"\nmean drift {drift:.1e}, max|u| overshoot {overshoot:.1e}")
    assert drift < 1e-10
    assert overshoot < 1e-6


# ---------------------------------------------------------------- re-solve acceptance
def _resolve_errors(nus, num, seed):
    out = {}
    for nu in nus:
        tr = get_system("burgers1d", nu=nu).generate(num, seed=seed)  # default 128 x 64
        out[nu] = consistency_error(tr.fields["u"], tr.params["nu"], tr.time[-1])
    return out


def test_resolve_acceptance_fast():
    # one batch, nu drawn in [5e-3, 1e-1]; run seed 11 starts with an |.| and a windowed IC
    tr = get_system("burgers1d", nu_min=5e-3).generate(4, seed=11)  # default 128 x 64
    err = consistency_error(tr.fields["u"], tr.params["nu"], tr.time[-1])
    print(f"\nnu {tr.params['nu'].round(4).tolist()}: re-solve relative L2 {err.round(8).tolist()}")
    assert np.all(err <= 1e-2)


@pytest.mark.slow
def test_resolve_acceptance_many_seeds():
    # run seed 10: kinds sines, abs, sines, sines, sines, window
    errs = _resolve_errors([5e-3, 1e-2, 1e-1], 6, seed=10)
    print("\nre-solve relative L2:", {k: v.round(8).tolist() for k, v in errs.items()})
    assert all(np.all(v <= 1e-2) for v in errs.values())


# ---------------------------------------------------------------- features
def _sine_run(amp, nu, n_fine=512):
    times = np.linspace(0.0, 2.0, 64)
    u0 = cell_averages(SineIC((1, 2), (amp, 0.0), (0.0, 0.0)), n_fine)[None]
    u = coarsen(solve_burgers_fv(u0, np.array([nu]), times), 128)[0].astype(np.float32)
    return burgers_features(u, cell_centres(128), times, nu)


@pytest.mark.parametrize("amp", [0.5, 1.0])
def test_shock_time_and_place_of_sine(amp):
    f = _sine_run(amp, 1e-3)
    t_star = 1 / (2 * np.pi * amp)  # inviscid breaking time of A sin(2πx), at x = 1/2
    print(f"\nA={amp}: shock detected at t={f['shock_time']:.4f}, x={f['shock_x']:.4f}; "
          f"t*={t_star:.4f}")
    assert f["shock"] and f["n_bumps"] == 1
    assert abs(f["shock_time"] - t_star) < 0.05 * t_star
    assert abs(f["shock_x"] - 0.5) <= 1 / 128


def test_smooth_high_viscosity_has_no_shock():
    f = _sine_run(0.5, 0.1)
    assert not f["shock"] and f["shock_time"] is None
    # a single decaying mode: E(T)/E(0) ≈ exp(-2 ν (2π)² T), tiny but positive
    assert 0 <= f["energy_ratio"] < 1e-4


@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_bump_counts(k):
    x = cell_centres(128)
    assert count_bumps(np.sin(2 * np.pi * k * x)) == k
    # a 3% ripple is not a bump
    assert count_bumps(np.sin(2 * np.pi * k * x) + 0.03 * np.sin(2 * np.pi * 17 * x)) == k
    assert count_bumps(np.abs(np.sin(2 * np.pi * k * x))) == 2 * k
    assert count_bumps(np.full(128, 0.3)) == 0


def test_initial_condition_family_statistics():
    rng = np.random.default_rng(123)
    ics = [sample_ic(rng) for _ in range(4000)]
    p_abs = np.mean([ic.abs_sign != 0 for ic in ics])
    p_win = np.mean([ic.window is not None for ic in ics])
    sigma = np.sqrt(0.1 * 0.9 / 4000)
    assert abs(p_abs - 0.1) < 4 * sigma and abs(p_win - 0.1) < 4 * sigma
    ks = np.array([ic.wavenumbers for ic in ics])
    assert np.all(ks[:, 0] != ks[:, 1]) and set(ks.ravel()) == {1, 2, 3, 4}
    amps = np.array([ic.amplitudes for ic in ics])
    assert amps.min() >= 0 and amps.max() < 1
    signs = [ic.abs_sign for ic in ics if ic.abs_sign]
    assert set(signs) == {-1, 1}
    # an |.| profile is one-signed; a window vanishes near x = 0 and 1
    x = np.linspace(0, 1, 257)
    ic = next(ic for ic in ics if ic.abs_sign)
    assert np.all(ic(x) * ic.abs_sign >= 0)
    ic = next(ic for ic in ics if ic.window)
    assert abs(ic(np.array([0.0]))[0]) < 1e-6


# ---------------------------------------------------------------- system contract
def _small(**kw):
    return get_system("burgers1d", nx=32, nt=5, t_final=0.3, n_fine=256, **kw)


def test_generate_contract_and_captions():
    tr = _small().generate(5, seed=1)
    u = tr.fields["u"]
    assert u.shape == (5, 5, 32) and u.dtype == np.float32
    assert tr.time.shape == (5,) and tr.time[-1] == pytest.approx(0.3)
    assert np.allclose(tr.coords["x"], (np.arange(32) + 0.5) / 32)
    assert np.all((tr.params["nu"] >= 1e-3) & (tr.params["nu"] <= 1e-1))
    assert np.abs(u.mean(-1) - u[:, :1].mean(-1)).max() < 1e-6  # float32 storage
    for caps, nu in zip(tr.captions, tr.params["nu"]):
        assert len(set(caps)) >= 3
        assert any(f"{nu:.2g}" in c for c in caps)
    json.dumps(tr.attrs)


def test_trajectory_independent_of_batching_and_start():
    s = _small()
    a = s.generate(6, seed=5, batch_size=6)
    b = s.generate(6, seed=5, batch_size=1)
    c = s.generate(3, seed=5, start=3, batch_size=2)
    assert np.array_equal(a.fields["u"], b.fields["u"])
    assert np.array_equal(a.fields["u"][3:], c.fields["u"])
    assert a.captions == b.captions and a.captions[3:] == c.captions
    assert np.array_equal(a.seeds[3:], c.seeds)
    d = s.generate(6, seed=6)
    assert not np.array_equal(a.fields["u"], d.fields["u"])


def test_fixed_nu_and_bad_values():
    tr = _small(nu=0.02).generate(2, seed=0)
    assert np.all(tr.params["nu"] == 0.02)
    with pytest.raises(SpecError, match="nu"):
        get_system("burgers1d", nu=1.0)
    with pytest.raises(SpecError, match="nx"):
        get_system("burgers1d", nx=4)
    with pytest.raises(SpecError, match="cfl"):
        get_system("burgers1d", cfl=3.0)
    with pytest.raises(UserInputError, match="num=0"):
        _small().generate(0)


def test_pdebench_viscosity_relation():
    assert nu_from_pdebench(0.01) == pytest.approx(0.01 / math.pi)
    assert nu_to_pdebench(nu_from_pdebench(0.4)) == pytest.approx(0.4)


@pytest.mark.slow
def test_default_batch_timing():
    t0 = time.perf_counter()
    tr = get_system("burgers1d").generate(16, seed=0)
    dt = time.perf_counter() - t0
    print(f"\nburgers1d default config: 16 trajectories in {dt:.1f} s ({16 / dt:.2f} traj/s)")
    assert tr.fields["u"].shape == (16, 64, 128)


def test_resolve_groups_trajectories_by_their_own_resolution():
    """A batch with viscosities needing different grids equals one solve per trajectory."""
    from genphys.physics.spectral1d import resolve_from_first_frame

    x = (np.arange(32) + 0.5) / 32
    u0 = np.stack([np.sin(2 * np.pi * x), 0.5 + np.cos(4 * np.pi * x)])  # (2, 32)
    nu = np.array([0.05, 0.002])  # auto grids of 1024 and 2048 points
    both = resolve_from_first_frame(u0, nu, 4, 0.1)
    for b in range(2):
        one = resolve_from_first_frame(u0[b:b + 1], nu[b:b + 1], 4, 0.1)
        np.testing.assert_allclose(both[b], one[0], rtol=0, atol=1e-13)
