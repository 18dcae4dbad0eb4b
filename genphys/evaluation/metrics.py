"""Error metrics of generated trajectories against solver data.

Fields are batch-first, channels-first numpy arrays (or anything ``np.asarray`` takes, such as
CPU tensors): ``(B, C, T, *space)`` with one or two periodic space axes on the unit domain;
ensembles are ``(B, K, C, T, *space)``. Every function returns per-sample values (leading axis
``B``) so that callers can report per-trajectory errors and average as they like.

- relative L2 per time step and over the whole trajectory;
- PDEBench nRMSE and Fourier-band RMSE (Takamoto et al., "PDEBench: An Extensive Benchmark for
  Scientific Machine Learning", NeurIPS 2022 Datasets and Benchmarks);
- conservation drift of the spatial mean;
- ensemble CRPS in its energy form (Gneiting & Raftery, JASA 102, 2007) and the spread-skill
  ratio with the finite-ensemble correction of Fortin et al. (J. Hydrometeorol. 15, 2014).
"""

from __future__ import annotations

import numpy as np

from genphys.errors import UserInputError

TINY = np.finfo(np.float64).tiny  # floor of denominators (an all-zero truth gives inf, not NaN)
# Fourier bands on the radial mode index k, half-open [lo, hi); None = up to the last shell.
# PDEBench's metric_func slices the per-mode errors as [:iLow], [iLow:iHigh], [iHigh:] with
# iLow=4, iHigh=12, i.e. low = k 0..3, mid = k 4..11, high = k >= 12.
BANDS: dict[str, tuple[int, int | None]] = {"low": (0, 4), "mid": (4, 12), "high": (12, None)}


def _fields(pred, true) -> tuple[np.ndarray, np.ndarray]:
    """Both arrays as float64 ``(B, C, T, *space)`` of one shape, 1 or 2 space axes."""
    p, t = np.asarray(pred, np.float64), np.asarray(true, np.float64)
    if p.shape != t.shape or p.ndim not in (4, 5):
        raise UserInputError(f"prediction {p.shape} and truth {t.shape} must have the same "
                             "shape (B, C, T, X) or (B, C, T, H, W).")
    return p, t


def _space_axes(ndim: int) -> tuple[int, ...]:
    return tuple(range(3, ndim))


def rel_l2(pred, true) -> np.ndarray:
    """Per-sample ``||pred - true||_2 / ||true||_2`` over channels, time and space: ``(B,)``."""
    p, t = _fields(pred, true)
    b = len(t)
    num = np.linalg.norm((p - t).reshape(b, -1), axis=1)  # (B,)
    return num / np.maximum(np.linalg.norm(t.reshape(b, -1), axis=1), TINY)


def rel_l2_per_time(pred, true) -> np.ndarray:
    """Relative L2 of each frame over channels and space: ``(B, T)``."""
    p, t = _fields(pred, true)
    b, n_t = t.shape[0], t.shape[2]
    d = np.moveaxis(p - t, 2, 1).reshape(b, n_t, -1)  # (B, T, C*space)
    ref = np.moveaxis(t, 2, 1).reshape(b, n_t, -1)  # (B, T, C*space)
    return np.linalg.norm(d, axis=2) / np.maximum(np.linalg.norm(ref, axis=2), TINY)


def nrmse_per_time(pred, true) -> np.ndarray:
    """PDEBench nRMSE of each frame: RMSE over space / RMS of the truth, channel-mean: ``(B, T)``.

    nRMSE_{b,c,t} = sqrt(mean_x (p - u)^2) / sqrt(mean_x u^2) (Takamoto et al. 2022, eq. of
    their ``metric_func``), averaged over channels here.
    """
    p, t = _fields(pred, true)
    ax = _space_axes(t.ndim)
    rmse = np.sqrt(np.mean((p - t) ** 2, axis=ax))  # (B, C, T)
    rms = np.sqrt(np.mean(t ** 2, axis=ax))  # (B, C, T)
    return (rmse / np.maximum(rms, TINY)).mean(axis=1)


def nrmse(pred, true, t_start: int = 1) -> np.ndarray:
    """PDEBench nRMSE per sample: :func:`nrmse_per_time` averaged over frames ``t >= t_start``
    (PDEBench skips the given initial frames; default 1 = the conditioning frame): ``(B,)``."""
    return nrmse_per_time(pred, true)[:, t_start:].mean(axis=1)


def radial_shells(space: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Shell index floor(|k|) and weight of every ``np.fft.fftn`` mode of a 1D/2D grid.

    Each conjugate pair {k, -k} counts once (weight 1/2 per mode; self-conjugate modes, whose
    every component is 0 or n/2, weigh 1): in 1D this is PDEBench's one-sided rfft, and 2D is
    isotropic. Shells run 0..min(space)//2; 2D corner modes beyond that have shell -1.
    """
    if len(space) not in (1, 2):
        raise UserInputError(f"Fourier shells support 1 or 2 space axes, got {len(space)}.")
    ks = np.meshgrid(*[np.fft.fftfreq(n) * n for n in space], indexing="ij")  # each (*space)
    shell = np.floor(np.sqrt(sum(k**2 for k in ks)) + 1e-9).astype(int)  # (*space)
    shell = np.where(shell <= min(space) // 2, shell, -1)
    self_conj = np.all([(k == 0) | (np.abs(k) == n / 2) for k, n in zip(ks, space)], axis=0)
    return shell, np.where(self_conj, 1.0, 0.5)


def _shell_sums(power: np.ndarray, space: tuple[int, ...]) -> np.ndarray:
    """Weighted sum of ``power (..., *space)`` (fftn modes) over each radial shell: ``(..., S)``."""
    shell, weight = (a.ravel() for a in radial_shells(space))
    n_shell = min(space) // 2 + 1
    onehot = (shell[:, None] == np.arange(n_shell)[None, :]) * weight[:, None]  # (M, S)
    lead = power.shape[: power.ndim - len(space)]
    return power.reshape(*lead, -1) @ onehot  # (..., S)


def shell_errors(pred, true) -> np.ndarray:
    """Fourier error per radial shell, sqrt(sum_shell |F(p - u)|^2) / N: ``(B, C, T, S)``.

    N is the number of grid points (unit domain, L = 1); in 1D this is PDEBench's per-mode
    |F(p)_k - F(u)_k| / nx of one sample (Takamoto et al. 2022).
    """
    p, t = _fields(pred, true)
    space = t.shape[3:]
    spec = np.fft.fftn(p - t, axes=_space_axes(t.ndim))  # (B, C, T, *space)
    return np.sqrt(_shell_sums(np.abs(spec) ** 2, space)) / np.prod(space)


def frmse(pred, true, t_start: int = 1,
          bands: dict[str, tuple[int, int | None]] | None = None) -> dict[str, np.ndarray]:
    """PDEBench Fourier-band RMSE per sample: band name -> ``(B,)`` (NaN if the band is empty).

    The mean of :func:`shell_errors` over the shells of each band (:data:`BANDS`), then over
    channels and frames ``t >= t_start`` (Takamoto et al. 2022). PDEBench takes the root of the
    batch-mean square per mode; this is the per-sample value (equal for one sample).
    """
    err = shell_errors(pred, true)[:, :, t_start:]  # (B, C, T', S)
    out = {}
    for name, (lo, hi) in (bands or BANDS).items():
        band = err[..., lo:hi]
        out[name] = (band.mean(axis=(1, 2, 3)) if band.shape[-1] and band.shape[2]
                     else np.full(len(err), np.nan))
    return out


def power_spectrum(u) -> np.ndarray:
    """Time-averaged power per radial shell, sum_shell |F(u)|^2 / N^2: ``(B, C, S)``."""
    u = np.asarray(u, np.float64)
    space = u.shape[3:]
    spec = np.fft.fftn(u, axes=_space_axes(u.ndim))  # (B, C, T, *space)
    return _shell_sums(np.abs(spec) ** 2, space).mean(axis=2) / np.prod(space) ** 2


def conservation_drift(u) -> np.ndarray:
    """Signed drift of each channel's spatial mean vs frame 0: ``(B, C, T)``.

    (mean_x u_t - mean_x u_0) / RMS_x(u_0); divided by the RMS of frame 0, not by its mean,
    which can be zero. A conserved quantity (periodic Burgers: the mean of u) gives 0.
    """
    u = np.asarray(u, np.float64)
    ax = _space_axes(u.ndim)
    mean = u.mean(axis=ax)  # (B, C, T)
    rms0 = np.sqrt(np.mean(u[:, :, 0] ** 2, axis=tuple(a - 1 for a in ax)))  # (B, C)
    return (mean - mean[:, :, :1]) / np.maximum(rms0, TINY)[:, :, None]


def _ensemble(samples, true) -> tuple[np.ndarray, np.ndarray]:
    x, y = np.asarray(samples, np.float64), np.asarray(true, np.float64)
    if x.ndim != y.ndim + 1 or x.shape[:1] + x.shape[2:] != y.shape:
        raise UserInputError(f"ensemble {x.shape} and truth {y.shape} must be (B, K, ...) and "
                             "(B, ...) with matching B and trailing axes.")
    return x, y


def crps_ensemble(samples, true) -> np.ndarray:
    """Ensemble CRPS per sample, E|X - y| - E|X - X'|/2 averaged over all points: ``(B,)``.

    Energy form of Gneiting & Raftery (2007, eq. 21) with the ensemble as the empirical
    distribution (pairs k = k' included); E|X - X'| = (2/K^2) sum_i (2i - K - 1) x_(i) over the
    sorted members. One member gives the mean absolute error.
    """
    x, y = _ensemble(samples, true)
    k = x.shape[1]
    skill = np.abs(x - y[:, None]).mean(axis=1)  # (B, ...)
    w = (2 * np.arange(1, k + 1) - k - 1).reshape(1, k, *([1] * (x.ndim - 2)))  # (1, K, 1...)
    spread = 2.0 / k**2 * (w * np.sort(x, axis=1)).sum(axis=1)  # (B, ...) = E|X - X'|
    return (skill - 0.5 * spread).reshape(len(y), -1).mean(axis=1)


def spread_skill(samples, true) -> np.ndarray:
    """Spread-skill ratio per sample, sqrt((K+1)/K) * spread / RMSE(ensemble mean): ``(B,)``.

    spread = sqrt(mean of the unbiased member variance), skill = RMSE of the ensemble mean; the
    factor sqrt((K+1)/K) makes a reliable K-member ensemble score 1 in expectation (Fortin et
    al. 2014). Needs K >= 2.
    """
    x, y = _ensemble(samples, true)
    k = x.shape[1]
    if k < 2:
        raise UserInputError(f"the spread-skill ratio needs at least 2 ensemble members, got {k}.")
    b = len(y)
    var = x.var(axis=1, ddof=1).reshape(b, -1).mean(axis=1)  # (B,)
    mse = ((x.mean(axis=1) - y) ** 2).reshape(b, -1).mean(axis=1)  # (B,)
    return np.sqrt((k + 1) / k) * np.sqrt(var) / np.maximum(np.sqrt(mse), TINY)
