"""Move fields and pyramids between resolutions by dropping or zero-filling detail bands.

For a wavelet with ``sum(dec_lo) = sqrt(2)`` (every pywavelets wavelet, orthonormal ones in
particular) a constant field ``c`` has approximation coefficients ``c * 2**(d/2)`` per level
of a ``d``-axis DWT.  :func:`downsample` therefore divides the approximation by
``2**(d*levels/2)`` and :func:`upsample` multiplies by it before a zero-detail inverse, so
amplitudes are preserved across resolutions.  ``upsample`` is the zero-shot
super-resolution baseline of wavelet diffusion (Hu et al., WDNO, ICLR 2025): the coarse
field plus zero details.  In ``periodization`` mode ``downsample(upsample(x)) == x``
exactly (the analysis operator is a left inverse of synthesis; Mallat, "A Wavelet Tour of
Signal Processing", 3rd ed., §7.3).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from genphys.errors import UserInputError
from genphys.wavelets.filters import FilterBank
from genphys.wavelets.functional import Coeffs, keys, normalize_axes, wavedecn, waverecn


def amplitude_gain(num_axes: int, levels: int = 1) -> float:
    """Approximation gain of a constant field: ``2**(num_axes * levels / 2)``."""
    return 2.0 ** (num_axes * levels / 2)


def drop_levels(coeffs: Coeffs, levels: int = 1) -> Coeffs:
    """Remove the ``levels`` finest detail levels (``waverecn`` then gives a coarser grid)."""
    if not isinstance(levels, int) or not 0 <= levels < len(coeffs):
        raise UserInputError(f"levels={levels!r} must be an integer in [0, {len(coeffs) - 1}] "
                             f"for a pyramid with {len(coeffs) - 1} detail level(s).")
    return list(coeffs[: len(coeffs) - levels])


def zero_levels(coeffs: Coeffs, levels: int = 1, axes: Sequence[int] = (-2, -1)) -> Coeffs:
    """Append ``levels`` finer detail levels of zeros (periodization shapes: 2x per level)."""
    if not isinstance(levels, int) or levels < 0:
        raise UserInputError(f"levels={levels!r} must be an integer >= 0.")
    ref = coeffs[0]
    axes = normalize_axes(axes, ref.ndim)
    finest = next(iter(coeffs[-1].values())) if len(coeffs) > 1 else ref
    out, shape = list(coeffs), list(finest.shape)
    for _ in range(levels):
        if len(out) > 1:  # the next finer detail level is twice the finest one per axis
            shape = [s * 2 if i in axes else s for i, s in enumerate(shape)]
        out.append({k: ref.new_zeros(shape) for k in keys(len(axes))[1:]})
    return out


def downsample(x: torch.Tensor, wavelet: str | FilterBank, levels: int = 1,
               axes: Sequence[int] = (-2, -1), mode: str = "periodization") -> torch.Tensor:
    """Coarse field: the level-``levels`` approximation divided by ``2**(d*levels/2)``."""
    coeffs = wavedecn(x, wavelet, levels, axes, mode)
    return coeffs[0] / amplitude_gain(len(normalize_axes(axes, x.ndim)), levels)


def upsample(x: torch.Tensor, wavelet: str | FilterBank, levels: int = 1,
             axes: Sequence[int] = (-2, -1), mode: str = "periodization") -> torch.Tensor:
    """Zero-detail super-resolution: ``x * 2**(d*levels/2)`` as approximation, details zero."""
    if mode != "periodization":
        raise UserInputError(f"upsample needs mode='periodization', got {mode!r}: other modes "
                             "do not double the grid exactly.")
    coeffs = zero_levels([x * amplitude_gain(len(normalize_axes(axes, x.ndim)), levels)],
                         levels, axes)
    return waverecn(coeffs, wavelet, axes, mode)
