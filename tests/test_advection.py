"""advection1d: exact shift of cell averages, periodicity, quadrature order, seeds, captions."""

import json

import numpy as np
import pytest

from genphys.physics.advection import (
    advection_cell_averages,
    advection_features,
    measured_velocity,
)
from genphys.physics.base import SpecError, get_system
from genphys.physics.ic1d import SineIC, cell_averages, cell_centres, coarsen, sample_ic


def _sine_averages(ic: SineIC, n: int, shift: float) -> np.ndarray:
    """Analytic averages of Σ A sin(2πkx + φ) over the cells [j/n - s, (j+1)/n - s]."""
    a = np.arange(n) / n - shift
    out = np.zeros(n)
    for k, amp, ph in zip(ic.wavenumbers, ic.amplitudes, ic.phases):
        w = 2 * np.pi * k
        out += -amp * (np.cos(w * (a + 1 / n) + ph) - np.cos(w * a + ph)) / (w / n)
    return out


@pytest.mark.parametrize("beta", [-1.7, 0.3, 2.0])
def test_equals_exact_shift_of_sine_averages(beta):
    ic = SineIC((2, 3), (0.8, 0.35), (0.4, 5.0))
    times = np.linspace(0.0, 2.0, 9)
    u = advection_cell_averages(ic, beta, times, 64)
    exact = np.stack([_sine_averages(ic, 64, beta * t) for t in times])
    assert np.abs(u - exact).max() < 1e-13


def test_whole_cell_shifts_and_periodicity():
    ic = sample_ic(np.random.default_rng(4))
    nx = 32
    u0 = advection_cell_averages(ic, 0.0, np.zeros(1), nx)[0]
    # β t = 3 cells to the right: the averages are rolled by 3
    u = advection_cell_averages(ic, 0.75, np.array([3 / nx / 0.75]), nx)[0]
    assert np.abs(u - np.roll(u0, 3)).max() < 1e-12
    # β t = 1: one full period, back to the start (also for negative β)
    for beta in (0.5, -1.0):
        u = advection_cell_averages(ic, beta, np.array([1 / abs(beta)]), nx)[0]
        assert np.abs(u - u0).max() < 1e-12


def test_quadrature_converges_for_kinked_and_windowed_ic():
    """Composite Gauss–Legendre on sub-cells: O(h²) at the |.| kink, fast for the window."""
    kinked = SineIC((1, 3), (0.9, 0.3), (0.2, 1.0), abs_sign=-1)
    windowed = SineIC((1, 2), (0.6, 0.5), (1.0, 2.0), window=(0.3, 0.7))
    for ic, subs, lo in ((kinked, [1, 2, 4, 8, 16, 32, 64], 1.8), (windowed, [1, 2, 4], 5.0)):
        ref = cell_averages(ic, 64, shift=0.123, nsub=2048)
        errs = [np.abs(cell_averages(ic, 64, shift=0.123, nsub=s) - ref).max() for s in subs]
        order = -np.polyfit(np.log(subs), np.log(errs), 1)[0]  # least-squares log-log slope
        print(f"\n{ic.kind}: quadrature errors {np.array(errs)}, fitted order {order:.2f}")
        assert order > lo
        # the default sub-cell width 1/4096 is accurate to 1e-7 even at the kink
        assert np.abs(cell_averages(ic, 64, shift=0.123) - ref).max() < 1e-7


def test_cell_averages_coarsen_exactly():
    ic = sample_ic(np.random.default_rng(9))
    fine = cell_averages(ic, 512)
    assert np.abs(coarsen(fine, 64) - cell_averages(ic, 64)).max() < 1e-9


def _small(**kw):
    return get_system("advection1d", nx=32, nt=64, **kw)


def test_generate_contract_velocity_and_captions():
    tr = _small().generate(6, seed=2)
    u = tr.fields["u"]
    assert u.shape == (6, 64, 32) and u.dtype == np.float32
    assert np.all(np.abs(tr.params["beta"]) <= 2.0)
    assert np.abs(u.mean(-1) - u[:, :1].mean(-1)).max() < 1e-6  # mean is conserved
    x = cell_centres(32)
    for i in range(6):
        beta = tr.params["beta"][i]
        # exact for band-limited data; aliased content of |.|/window ICs costs ~1e-4
        assert measured_velocity(u[i], tr.time) == pytest.approx(beta, abs=1e-3)
        feat = advection_features(u[i], x, tr.time, beta)
        caps = tr.captions[i]
        assert len(set(caps)) == 3
        if feat["direction"] != "none":
            word = "right" if beta > 0 else "left"
            assert feat["direction"] == word
    json.dumps(tr.attrs)


def test_trajectory_independent_of_batching_and_start():
    s = _small()
    a = s.generate(5, seed=7, batch_size=5)
    b = s.generate(5, seed=7, batch_size=2)
    c = s.generate(2, seed=7, start=3)
    assert np.array_equal(a.fields["u"], b.fields["u"])
    assert np.array_equal(a.fields["u"][3:], c.fields["u"])
    assert a.captions[3:] == c.captions


def test_fixed_beta_and_bad_values():
    tr = _small(beta=-0.5).generate(2, seed=0)
    assert np.all(tr.params["beta"] == -0.5)
    with pytest.raises(SpecError, match="beta"):
        get_system("advection1d", beta=3.0)
    with pytest.raises(SpecError, match="nt"):
        get_system("advection1d", nt=1)
