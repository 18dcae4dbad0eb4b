"""The 1D initial-condition family shared by ``burgers1d`` and ``advection1d``.

It follows PDEBench's 1D recipe (Takamoto et al., NeurIPS 2022 Datasets & Benchmarks,
appendix D; written here from the description, not their code):

    u0(x) = A1 sin(2π k1 x + φ1) + A2 sin(2π k2 x + φ2),  k1 != k2 in {1, 2, 3, 4},
    A_i ~ U[0, 1), φ_i ~ U[0, 2π);
    with probability 0.1: u0 <- s |u0| with a random sign s = ±1;
    with probability 0.1: u0 <- u0 · ½(tanh((x - xL)/w) - tanh((x - xR)/w)),
    xL ~ U[0.1, 0.45], xR ~ U[0.55, 0.9], w = 0.01.

Two deliberate differences from PDEBench's generator: wavenumbers are exact multiples of 2π
on [0, 1) (theirs divide by x[-1] - x[0], slightly off-periodic), and the two wavenumbers are
distinct (theirs may draw the same k twice, which silently doubles it).

Stored values everywhere are *cell averages* over uniform periodic cells, computed here by
composite Gauss–Legendre quadrature of the analytic ``u0``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from genphys.errors import UserInputError

K_MAX = 4  # largest wavenumber of the family (in units of 2π on the unit interval)
P_ABS = 0.1  # probability of taking s|u0|
P_WINDOW = 0.1  # probability of the tanh window
WINDOW_WIDTH = 0.01


@dataclass(frozen=True)
class Grid1DConfig:
    """Stored grid shared by the 1D systems (subclassed by their configs)."""

    nx: int = 128  # stored cells (values are cell averages; x = cell centres)
    nt: int = 64  # stored frames, equally spaced in [0, t_final] (both included)
    t_final: float = 2.0

    def __post_init__(self) -> None:
        if self.nx < 8 or self.nt < 2:
            raise ValueError(f"nx={self.nx} and nt={self.nt} must be at least 8 and 2.")
        if not self.t_final > 0:
            raise ValueError(f"t_final={self.t_final} must be > 0.")


@dataclass(frozen=True)
class SineIC:
    """One member of the family: two sine modes, optional |.| with sign, optional window."""

    wavenumbers: tuple[int, int]
    amplitudes: tuple[float, float]
    phases: tuple[float, float]
    abs_sign: int = 0  # 0: no absolute value; ±1: u0 <- abs_sign * |u0|
    window: tuple[float, float] | None = None  # (xL, xR) of the tanh window, or None
    width: float = WINDOW_WIDTH

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Point values ``u0(x)`` (any shape; x taken modulo 1)."""
        x = np.asarray(x, dtype=np.float64) % 1.0
        u = np.zeros_like(x)
        for k, a, p in zip(self.wavenumbers, self.amplitudes, self.phases):
            u += a * np.sin(2 * np.pi * k * x + p)
        if self.abs_sign:
            u = self.abs_sign * np.abs(u)
        if self.window is not None:
            xl, xr = self.window
            u *= 0.5 * (np.tanh((x - xl) / self.width) - np.tanh((x - xr) / self.width))
        return u

    @property
    def kind(self) -> str:
        """'sines', 'abs', 'window' or 'abs+window' (for captions and metadata)."""
        parts = (["abs"] if self.abs_sign else []) + (["window"] if self.window else [])
        return "+".join(parts) or "sines"


def sample_ic(rng: np.random.Generator) -> SineIC:
    """Draw one PDEBench-style initial condition; always consumes the same random numbers."""
    ks = rng.choice(K_MAX, size=2, replace=False) + 1
    amps = rng.uniform(0.0, 1.0, size=2)
    phases = rng.uniform(0.0, 2 * np.pi, size=2)
    take_abs, sign = rng.random() < P_ABS, 1 if rng.random() < 0.5 else -1
    take_window = rng.random() < P_WINDOW
    xl, xr = rng.uniform(0.1, 0.45), rng.uniform(0.55, 0.9)
    return SineIC(
        wavenumbers=(int(ks[0]), int(ks[1])),
        amplitudes=(float(amps[0]), float(amps[1])),
        phases=(float(phases[0]), float(phases[1])),
        abs_sign=sign if take_abs else 0,
        window=(float(xl), float(xr)) if take_window else None,
    )


def draw_params_and_ic(sample_params: Callable[[np.random.Generator], dict], seed: int
                       ) -> tuple[dict, SineIC]:
    """One trajectory's parameters, then its initial condition, from its own seed."""
    rng = np.random.default_rng(int(seed))
    params = sample_params(rng)
    return params, sample_ic(rng)


def check_num(num: int) -> None:
    """Raise :class:`UserInputError` unless ``num`` is a positive trajectory count."""
    if int(num) != num or num < 1:
        raise UserInputError(f"num={num!r} is not a valid number of trajectories: need >= 1.")


def cell_averages(u0, n: int, shift: float | np.ndarray = 0.0, nsub: int | None = None,
                  nq: int = 4) -> np.ndarray:
    """Averages of ``u0`` over the ``n`` cells ``[j/n - shift, (j+1)/n - shift]``.

    Composite ``nq``-point Gauss–Legendre quadrature on ``nsub`` sub-cells per cell (default:
    enough for sub-cells of width ≤ 1/4096). ``shift`` may be an array; the result then has
    shape ``shift.shape + (n,)``. Exact to rounding for the sine family; the |.| kink costs
    O(h²) locally.
    """
    if nsub is None:
        nsub = max(1, -(-4096 // n))
    nodes, weights = np.polynomial.legendre.leggauss(nq)
    h = 1.0 / (n * nsub)
    # quadrature points of every sub-cell, relative to the cell's left edge: (nsub * nq,)
    offs = (np.arange(nsub)[:, None] * h + (nodes[None, :] + 1) * h / 2).ravel()
    w = np.tile(weights / 2 / nsub, nsub)  # sums to 1 over one cell
    shift = np.asarray(shift, dtype=np.float64)
    left = np.arange(n) / n - shift[..., None]  # (..., n)
    vals = u0(left[..., None] + offs)  # (..., n, nsub * nq)
    return vals @ w


def cell_centres(n: int) -> np.ndarray:
    """Centres ``(j + 1/2)/n`` of ``n`` uniform cells on [0, 1)."""
    return (np.arange(n) + 0.5) / n


def coarsen(u: np.ndarray, n: int) -> np.ndarray:
    """Exact cell averages on ``n`` coarse cells from averages on a multiple of ``n`` cells."""
    m = u.shape[-1]
    if m % n:
        raise ValueError(f"cannot coarsen {m} cells to {n}: {n} must divide {m}.")
    return u.reshape(*u.shape[:-1], n, m // n).mean(-1)  # (..., n, m/n) -> (..., n)


def count_bumps(u: np.ndarray, rel_height: float = 0.1) -> int:
    """Number of periodic local maxima of ``u`` (X,) that rise ≥ ``rel_height``·range above
    the neighbouring minima on both sides (a prominence filter against ripples)."""
    u = np.asarray(u, dtype=np.float64)
    span = float(u.max() - u.min())
    if span <= 1e-12 * max(1.0, float(np.abs(u).max())):
        return 0
    # walk the periodic signal from its global minimum, tracking alternating extrema
    u = np.roll(u, -int(np.argmin(u)))
    u = np.append(u, u[0])
    thr = rel_height * span
    count, low, high, rising = 0, u[0], u[0], True
    for v in u[1:]:
        if rising:
            if v > high:
                high = v
            elif high - v >= thr and high - low >= thr:
                count, rising, low = count + 1, False, v
        else:
            if v < low:
                low = v
            elif v - low >= thr:
                rising, high = True, v
    return count


_NUMBER_WORDS = ("no", "one", "two", "three", "four", "five", "six", "seven", "eight")


def number_word(n: int) -> str:
    """'two' for 2, digits beyond eight."""
    return _NUMBER_WORDS[n] if 0 <= n < len(_NUMBER_WORDS) else str(n)


def bump_phrases(n: int) -> list[str]:
    """Alternative phrasings of 'the initial profile has n bumps' (both 1D captioners)."""
    if n == 1:
        return ["a single initial bump", "one bump at the start", "one initial peak"]
    w = number_word(n)
    return [f"{w} initial bumps", f"{n} peaks at t = 0", f"{w} bumps in the initial profile"]


def periodic_slope(u: np.ndarray, dx: float) -> np.ndarray:
    """Forward differences ``(u[j+1] - u[j]) / dx`` on a periodic grid, last axis."""
    return (np.roll(u, -1, axis=-1) - u) / dx
