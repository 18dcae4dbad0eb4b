"""pywavelets-style functional API: ``dwtn``/``idwtn`` and multi-level ``wavedecn``/``waverecn``.

Mirrors ``pywt.dwtn``, ``pywt.idwtn``, ``pywt.wavedecn`` and ``pywt.waverecn`` (Lee et al.,
"PyWavelets", JOSS 2019): same coefficient keys (``key[i]`` is ``'a'`` or ``'d'`` for
``axes[i]``), same lengths and values (``periodization``, ``symmetric``, ``zero``), on torch
tensors of any leading shape, differentiable.  float16/bfloat16 inputs are computed in
float32 and cast back; float32/float64 are computed in their own dtype.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch

from genphys.errors import UserInputError
from genphys.wavelets.filters import FilterBank, check_mode, filter_bank, max_level
from genphys.wavelets.operators import (
    analyze,
    axis_operator,
    synthesize,
    synthesize_mallat,
)

Coeffs = list  # [approx, {key: detail}, ...] coarsest level first, like pywt.wavedecn


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype the transform runs in: float32 for float16/bfloat16, else the input dtype."""
    if not dtype.is_floating_point:
        raise UserInputError(f"Wavelet transforms need a floating-point tensor, got {dtype}.")
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def normalize_axes(axes: int | Sequence[int], ndim: int) -> tuple[int, ...]:
    """Axes as non-negative ints; raise UserInputError for out-of-range or repeated axes."""
    axes = (axes,) if isinstance(axes, int) else tuple(axes)
    if not axes or any(not isinstance(a, int) or not -ndim <= a < ndim for a in axes):
        raise UserInputError(f"axes={axes!r} is invalid for a {ndim}-d tensor; give distinct "
                             f"integers in [{-ndim}, {ndim - 1}].")
    out = tuple(a % ndim for a in axes)
    if len(set(out)) != len(out):
        raise UserInputError(f"axes={axes!r} repeats an axis; give each axis once.")
    return out


def check_level(shape: Sequence[int], axes: tuple[int, ...], level: int, mode: str) -> None:
    """Raise UserInputError unless ``level`` fits every transformed axis (and mode)."""
    if not isinstance(level, int) or isinstance(level, bool) or level < 1:
        raise UserInputError(f"level={level!r} is invalid; use an integer >= 1.")
    for a in axes:
        if level > max_level(shape[a]):
            raise UserInputError(f"level={level} is too large for axis {a} of length {shape[a]}; "
                                 f"at most {max_level(shape[a])} level(s) fit.")
        if mode == "periodization" and shape[a] % 2**level:
            raise UserInputError(f"Axis {a} has length {shape[a]}, not divisible by "
                                 f"2**level = {2**level}; periodization needs that "
                                 "(pad or crop the data, or use mode='symmetric').")


def keys(ndim: int) -> list[str]:
    """Subband keys in pywt order for ``ndim`` axes ('a'*ndim first, then 'aad', ...)."""
    return ["".join(k) for k in itertools.product("ad", repeat=ndim)]


def dwt_mallat(x: torch.Tensor, bank: FilterBank, axes: tuple[int, ...], mode: str
               ) -> torch.Tensor:
    """One-level DWT over ``axes`` in Mallat layout: each axis becomes ``[approx | detail]``."""
    for a in axes:
        x = analyze(x, a, axis_operator(bank, x.shape[a], mode, False, x.dtype, x.device))
    return x


def band_slices(shape: Sequence[int], axes: tuple[int, ...]) -> list[tuple[slice, ...]]:
    """Index tuples of each subband (pywt key order) in a Mallat tensor of bands ``shape``."""
    out = []
    for key in keys(len(axes)):
        index = [slice(None)] * len(shape)
        for a, c in zip(axes, key):
            index[a] = slice(0, shape[a]) if c == "a" else slice(shape[a], 2 * shape[a])
        out.append(tuple(index))
    return out


def split_bands(y: torch.Tensor, axes: tuple[int, ...]) -> dict[str, torch.Tensor]:
    """Views of the subbands of a Mallat-layout tensor, keyed like pywt.dwtn."""
    half = [s // 2 if i in axes else s for i, s in enumerate(y.shape)]
    return {k: y[index] for k, index in zip(keys(len(axes)), band_slices(half, axes))}


def check_bands(bands: dict[str, torch.Tensor | None], ndim: int) -> torch.Tensor:
    """Validate subband keys and shapes; return one given subband (raise if all are None)."""
    valid = keys(ndim)
    given = [v for v in bands.values() if v is not None]
    if not given:
        raise UserInputError("All wavelet coefficients are None; give at least one subband.")
    for k, v in bands.items():
        if k not in valid:
            raise UserInputError(f"Unknown subband key {k!r}; valid keys: {', '.join(valid)}.")
        if v is not None and v.shape != given[0].shape:
            raise UserInputError(f"Subband {k!r} has shape {tuple(v.shape)} but "
                                 f"{tuple(given[0].shape)} was expected (all subbands share a "
                                 "shape).")
    return given[0]


def merge_bands(bands: dict[str, torch.Tensor | None], axes: tuple[int, ...]) -> torch.Tensor:
    """Write subbands into one Mallat-layout tensor (missing or None subbands are zeros)."""
    ref = check_bands(bands, len(axes))
    shape = [s * 2 if i in axes else s for i, s in enumerate(ref.shape)]
    out = ref.new_zeros(shape) if any(bands.get(k) is None for k in keys(len(axes))) \
        else ref.new_empty(shape)
    for key, index in zip(keys(len(axes)), band_slices(ref.shape, axes)):
        if (v := bands.get(key)) is not None:
            out[index] = v  # one copy in total (autograd records the slice writes)
    return out


def idwt_bands(bands: dict[str, torch.Tensor | None], bank: FilterBank, axes: tuple[int, ...],
               mode: str) -> torch.Tensor:
    """One-level inverse DWT from subbands (None or missing: zeros).

    The subbands are concatenated once (Mallat layout) so each inner axis is one batched
    GEMM; axes are undone innermost-last, so the contiguous last axis comes at the end.
    """
    if len(axes) == 1:  # one axis: no Mallat buffer, the bands are read where they are
        ref = check_bands(bands, 1)
        op = axis_operator(bank, ref.shape[axes[0]], mode, True, ref.dtype, ref.device)
        return synthesize(bands.get("a"), bands.get("d"), axes[0], op)
    y = merge_bands(bands, axes)
    for a in sorted(axes):
        n = y.shape[a] // 2
        y = synthesize_mallat(y, a, axis_operator(bank, n, mode, True, y.dtype, y.device))
    return y


def dwtn(x: torch.Tensor, wavelet: str | FilterBank, axes: int | Sequence[int] = (-2, -1),
         mode: str = "periodization") -> dict[str, torch.Tensor]:
    """Single-level n-D DWT like ``pywt.dwtn``: a dict of subbands keyed 'aa', 'ad', ..."""
    bank, mode = filter_bank(wavelet), check_mode(mode)
    axes = normalize_axes(axes, x.ndim)
    check_level(x.shape, axes, 1, mode)
    cd = compute_dtype(x.dtype)
    bands = split_bands(dwt_mallat(x.to(cd), bank, axes, mode), axes)
    return {k: v.to(x.dtype) for k, v in bands.items()}


def idwtn(coeffs: dict[str, torch.Tensor | None], wavelet: str | FilterBank,
          axes: int | Sequence[int] = (-2, -1), mode: str = "periodization") -> torch.Tensor:
    """Single-level n-D inverse DWT like ``pywt.idwtn`` (missing/None subbands are zeros)."""
    bank, mode = filter_bank(wavelet), check_mode(mode)
    ref = next((v for v in coeffs.values() if v is not None), None)
    if ref is None:
        raise UserInputError("All wavelet coefficients are None; give at least one subband.")
    axes = normalize_axes(axes, ref.ndim)
    cd = compute_dtype(ref.dtype)
    bands = {k: (v if v is None else v.to(cd)) for k, v in coeffs.items()}
    return idwt_bands(bands, bank, axes, mode).to(ref.dtype).contiguous()


def wavedecn(x: torch.Tensor, wavelet: str | FilterBank, level: int = 1,
             axes: int | Sequence[int] = (-2, -1), mode: str = "periodization") -> Coeffs:
    """Multi-level n-D DWT like ``pywt.wavedecn``: ``[approx, {details}_L, ..., {details}_1]``."""
    bank, mode = filter_bank(wavelet), check_mode(mode)
    axes = normalize_axes(axes, x.ndim)
    check_level(x.shape, axes, level, mode)
    a, details = x.to(compute_dtype(x.dtype)), []
    for _ in range(level):
        bands = split_bands(dwt_mallat(a, bank, axes, mode), axes)
        a = bands.pop("a" * len(axes))
        details.append({k: v.to(x.dtype) for k, v in bands.items()})
    return [a.to(x.dtype), *reversed(details)]


def waverecn(coeffs: Coeffs, wavelet: str | FilterBank, axes: int | Sequence[int] = (-2, -1),
             mode: str = "periodization") -> torch.Tensor:
    """Multi-level n-D inverse DWT like ``pywt.waverecn`` (coarsest level first)."""
    bank, mode = filter_bank(wavelet), check_mode(mode)
    if len(coeffs) < 1 or not all(isinstance(d, dict) for d in coeffs[1:]):
        raise UserInputError("coeffs must be [approx, {details}, ...] as returned by wavedecn.")
    a = coeffs[0]
    if len(coeffs) == 1:
        return a
    ref = next((v for d in coeffs[1:] for v in d.values() if v is not None), a)
    if ref is None:
        raise UserInputError("All wavelet coefficients are None; give at least one subband.")
    axes = normalize_axes(axes, ref.ndim)
    cd, dtype = compute_dtype(ref.dtype), ref.dtype
    for d in coeffs[1:]:
        d = {k: (v if v is None else v.to(cd)) for k, v in d.items()}
        shape = next((v.shape for v in d.values() if v is not None), None)
        if a is not None and shape is not None and a.shape != shape:
            # pywt: a coarser approx can be one sample longer than the details (odd lengths)
            a = a[tuple(slice(s) for s in shape)]
        d["a" * len(axes)] = None if a is None else a.to(cd)
        a = idwt_bands(d, bank, axes, mode)
    return a.to(dtype).contiguous()
