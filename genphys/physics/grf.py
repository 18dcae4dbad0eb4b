"""Gaussian random fields on the periodic unit square, diagonal in Fourier space.

The covariance operator is ``C = scale * (-Delta + tau^2 I)^(-alpha)`` on L^2([0,1)^2), as in
the Navier-Stokes data of Li et al., "Fourier Neural Operator for Parametric PDEs" (ICLR 2021):
``N(0, 7^{3/2} (-Delta + 49 I)^{-2.5})``. With Fourier coefficients
``w_hat_k = int w(x) exp(-2 pi i k.x) dx`` a sample satisfies ``E|w_hat_k|^2 = lambda_k`` with
``lambda_k = scale * (4 pi^2 |k|^2 + tau^2)^(-alpha)`` (the eigenvalues of ``C``).

Samples are drawn by colouring real white noise on a fixed ``draw``-point grid (default 256)
and keeping the modes ``|k_x|, |k_y| < n/2``, so the low modes of a seed's field do not depend
on the output resolution ``n`` (as long as ``n <= draw``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from genphys.errors import UserInputError

FNO_ALPHA = 2.5
FNO_TAU = 7.0
FNO_SCALE = 7.0**1.5


def wavenumbers(n: int) -> np.ndarray:
    """Integer FFT wavenumbers ``(n,)`` of an ``n``-point periodic grid (numpy order)."""
    return np.fft.fftfreq(n, d=1.0 / n)


def grf_eigenvalues(n: int, *, alpha: float = FNO_ALPHA, tau: float = FNO_TAU,
                    scale: float = FNO_SCALE) -> np.ndarray:
    """Eigenvalues ``lambda_k`` ``(n, n)`` of ``scale*(-Delta+tau^2)^-alpha`` (FFT order)."""
    k = wavenumbers(n)
    k2 = k[:, None] ** 2 + k[None, :] ** 2  # (n, n) |k|^2, axis 0 = k_x, axis 1 = k_y
    return scale * (4.0 * math.pi**2 * k2 + tau**2) ** (-alpha)


def sample_grf(rngs: Sequence[np.random.Generator], n: int, *, alpha: float = FNO_ALPHA,
               tau: float = FNO_TAU, scale: float = FNO_SCALE, zero_mean: bool = True,
               draw: int = 256) -> np.ndarray:
    """Point values ``(B, n, n)`` float64 of zero-mean GRF samples, one per generator.

    Axis 1 is x and axis 2 is y; the grid is ``x_i = i / n``. Coloured white noise: if ``xi`` is
    unit white noise on an ``M``-grid, ``fft2(xi)_k`` has ``E|.|^2 = M^2``, so
    ``w_hat_k = sqrt(lambda_k) fft2(xi)_k / M`` has the prescribed spectrum and is Hermitian.
    """
    if n < 4 or n % 2:
        raise UserInputError(f"GRF resolution n={n} is invalid; allowed: even integers >= 4.")
    if alpha <= 1.0 or tau <= 0 or scale < 0:
        raise UserInputError(
            f"GRF parameters alpha={alpha}, tau={tau}, scale={scale} are invalid; allowed: "
            "alpha > 1 (finite variance in 2D), tau > 0, scale >= 0.")
    m = max(int(draw), n)
    sqrt_lam = np.sqrt(grf_eigenvalues(m, alpha=alpha, tau=tau, scale=scale))  # (m, m)
    if zero_mean:
        sqrt_lam[0, 0] = 0.0
    k = wavenumbers(m)
    keep_1d = np.abs(k) < n // 2  # drop |k| >= n/2 (incl. Nyquist) so the set is symmetric
    out = np.empty((len(rngs), n, n))
    for b, rng in enumerate(rngs):
        xi = rng.standard_normal((m, m))
        w_hat = sqrt_lam * np.fft.fft2(xi) / m  # (m, m) Fourier coefficients w_hat_k
        out[b] = _embed_and_synthesise(w_hat, keep_1d, k, n)
    return out


def _embed_and_synthesise(w_hat: np.ndarray, keep_1d: np.ndarray, k: np.ndarray,
                          n: int) -> np.ndarray:
    """Point values on the ``n``-grid of the trigonometric polynomial with the kept modes."""
    idx_src = np.nonzero(keep_1d)[0]
    idx_dst = (k[idx_src].astype(int)) % n  # position of wavenumber k in an n-point FFT array
    small = np.zeros((n, n), dtype=complex)
    small[np.ix_(idx_dst, idx_dst)] = w_hat[np.ix_(idx_src, idx_src)]
    return np.real(np.fft.ifft2(small)) * n * n  # w(x_j) = sum_k w_hat_k exp(2 pi i k.x_j)
