"""Coefficient pyramid <-> channels tensor (WDNO layout at level 1, channel-stacked deeper).

Layout ("channel-stacked at the coarsest resolution", subband-major).  For a DWT over ``d``
axes of ``x`` with ``C`` channels (dim ``channel_dim``) and ``L`` levels, the packed tensor
has ``C * 2**(d*L)`` channels and every transformed axis divided by ``2**L``::

    [ a_L | d_L | s2d(d_{L-1}) | s2d^2(d_{L-2}) | ... | s2d^{L-1}(d_1) ]

- ``a_L``: the ``C`` approximation channels (so ``packed[:, :C]`` is the coarse field);
- a detail level ``d_j`` is its ``2**d - 1`` subbands in pywt key order (``'ad', 'da', 'dd'``
  in 2-D) concatenated subband-major: channel ``band * C + c``;
- ``s2d`` (space-to-depth) halves every transformed axis and multiplies the channels by
  ``2**d``: channel ``k * 2**d + offset`` where ``offset`` enumerates the position inside
  each ``2 x ... x 2`` block in row-major order over ``axes``.

Level 1 is exactly the WDNO layout (Hu et al., ICLR 2025): ``(B, C, T, X) -> (B, 4C, T/2,
X/2)``.  Packing is a permutation of coefficients, so with an orthonormal wavelet in
``periodization`` mode ``pack(wavedecn(x))`` is an orthogonal transform of ``x``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from genphys.errors import UserInputError
from genphys.wavelets.functional import Coeffs, keys, normalize_axes


def _check_channel_dim(ndim: int, axes: tuple[int, ...], channel_dim: int) -> int:
    cd = channel_dim % ndim if -ndim <= channel_dim < ndim else None
    if cd is None or cd in axes:
        raise UserInputError(f"channel_dim={channel_dim} must be a dimension of the {ndim}-d "
                             f"tensor that is not a transformed axis {axes}.")
    return cd


def space_to_depth(x: torch.Tensor, axes: Sequence[int], channel_dim: int = 1) -> torch.Tensor:
    """Halve every axis in ``axes`` and stack each ``2 x ... x 2`` block into channels."""
    axes = normalize_axes(axes, x.ndim)
    cd = _check_channel_dim(x.ndim, axes, channel_dim)
    if any(x.shape[a] % 2 for a in axes):
        raise UserInputError(f"space_to_depth needs even lengths on axes {axes}, got shape "
                             f"{tuple(x.shape)}.")
    split, pos = [], {}
    for i, s in enumerate(x.shape):
        pos[i] = len(split)
        split += [s // 2, 2] if i in axes else [s]
    perm = []
    for i in range(x.ndim):
        perm += [pos[i], *(pos[a] + 1 for a in axes)] if i == cd else [pos[i]]
    out = [s * 2 ** len(axes) if i == cd else s // 2 if i in axes else s
           for i, s in enumerate(x.shape)]
    return x.reshape(split).permute(perm).reshape(out)  # (..., C*2^d, ..., S/2, ...)


def depth_to_space(x: torch.Tensor, axes: Sequence[int], channel_dim: int = 1) -> torch.Tensor:
    """Inverse of :func:`space_to_depth`: unstack ``2**d`` channel groups into 2x blocks."""
    axes = normalize_axes(axes, x.ndim)
    cd = _check_channel_dim(x.ndim, axes, channel_dim)
    d = len(axes)
    if x.shape[cd] % 2**d:
        raise UserInputError(f"depth_to_space needs a multiple of {2**d} channels, got "
                             f"{x.shape[cd]}.")
    split, pos = [], {}
    for i, s in enumerate(x.shape):
        pos[i] = len(split)
        split += [s // 2**d, *[2] * d] if i == cd else [s]
    perm = []
    for i in range(x.ndim):
        perm += [pos[i], pos[cd] + 1 + axes.index(i)] if i in axes else [pos[i]]
    out = [s // 2**d if i == cd else s * 2 if i in axes else s for i, s in enumerate(x.shape)]
    return x.reshape(split).permute(perm).reshape(out)  # (..., C, ..., 2S, ...)


def pack(coeffs: Coeffs, axes: Sequence[int] = (-2, -1), channel_dim: int = 1) -> torch.Tensor:
    """Pack a ``wavedecn`` pyramid into one channels tensor (layout in the module docstring)."""
    a = coeffs[0]
    axes = normalize_axes(axes, a.ndim)
    cd = _check_channel_dim(a.ndim, axes, channel_dim)
    band_keys = keys(len(axes))[1:]
    parts = [a]
    for j, level in enumerate(coeffs[1:]):  # j = 0 is the coarsest detail level
        if sorted(level) != sorted(band_keys) or any(v is None for v in level.values()):
            raise UserInputError(f"Detail level {j + 1} must hold all subbands "
                                 f"{', '.join(band_keys)}; use zero tensors for empty bands.")
        t = torch.cat([level[k] for k in band_keys], dim=cd)  # subband-major channels
        for _ in range(j):
            t = space_to_depth(t, axes, cd)
        if [t.shape[i] for i in axes] != [a.shape[i] for i in axes]:
            raise UserInputError("Packing needs subband shapes that halve exactly per level "
                                 "(mode='periodization' with lengths divisible by 2**level).")
        parts.append(t)
    return torch.cat(parts, dim=cd)


def unpack(y: torch.Tensor, level: int, axes: Sequence[int] = (-2, -1),
           channel_dim: int = 1) -> Coeffs:
    """Inverse of :func:`pack`: a channels tensor back to ``[approx, {details}, ...]``."""
    axes = normalize_axes(axes, y.ndim)
    cd = _check_channel_dim(y.ndim, axes, channel_dim)
    d, band_keys = len(axes), keys(len(axes))[1:]
    if not isinstance(level, int) or level < 1 or y.shape[cd] % 2 ** (d * level):
        raise UserInputError(f"Cannot unpack {y.shape[cd]} channels at level={level!r}: the "
                             f"channel count must be C * 2**({d}*level) with level >= 1.")
    c = y.shape[cd] // 2 ** (d * level)
    sizes = [c] + [(2**d - 1) * c * 2 ** (d * j) for j in range(level)]
    parts = torch.split(y, sizes, dim=cd)
    coeffs: Coeffs = [parts[0]]
    for j, t in enumerate(parts[1:]):
        for _ in range(j):
            t = depth_to_space(t, axes, cd)
        coeffs.append(dict(zip(band_keys, torch.split(t, c, dim=cd))))
    return coeffs
