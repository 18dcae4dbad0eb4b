"""N-d patchify/unpatchify for channels-first grids ``(B, C, *S)`` (ViT/DiT tokenisation).

One code path for 1D trajectories ``(B, C, T, X)`` and 2D trajectories ``(B, C, T, H, W)``:
a grid with axis sizes ``S = (S_1, ..., S_n)`` and patch sizes ``p = (p_1, ..., p_n)``
becomes ``prod(S_i / p_i)`` tokens of ``C * prod(p_i)`` features, in row-major order of the
patch grid (last axis fastest); features are ordered channel-major, then in-patch row-major.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from genphys.errors import UserInputError


def check_grid(shape: Sequence[int], patch_size: Sequence[int], what: str = "input") -> None:
    """Raise :class:`UserInputError` unless every axis size is a positive multiple of its patch."""
    sizes, patch = tuple(int(s) for s in shape), tuple(int(p) for p in patch_size)
    if len(sizes) != len(patch):
        raise UserInputError(
            f"{what} has {len(sizes)} grid axes {sizes} but the patch size {patch} has "
            f"{len(patch)}; give one patch size per (time, space...) axis.")
    bad = [(s, p) for s, p in zip(sizes, patch) if p < 1 or s < p or s % p]
    if bad:
        raise UserInputError(
            f"{what} grid size {sizes} is not divisible by the patch size {patch}; every "
            f"(time, space...) size must be a positive multiple of its patch size.")


def grid_of(shape: Sequence[int], patch_size: Sequence[int]) -> tuple[int, ...]:
    """Patch-grid size ``(S_1/p_1, ..., S_n/p_n)`` of a grid ``S`` (after :func:`check_grid`)."""
    return tuple(int(s) // int(p) for s, p in zip(shape, patch_size))


def patchify(x: torch.Tensor, patch_size: Sequence[int]) -> torch.Tensor:
    """Cut ``x (B, C, *S)`` into non-overlapping patches: returns ``(B, N, C * prod(p))``."""
    p = tuple(int(q) for q in patch_size)
    n = len(p)
    check_grid(x.shape[2:], p)
    b, c = x.shape[:2]
    g = grid_of(x.shape[2:], p)
    split = [b, c] + [v for gi, pi in zip(g, p) for v in (gi, pi)]
    x = x.reshape(split)  # (B, C, g1, p1, ..., gn, pn)
    perm = [0] + [2 + 2 * i for i in range(n)] + [1] + [3 + 2 * i for i in range(n)]
    x = x.permute(perm)  # (B, g1, ..., gn, C, p1, ..., pn)
    return x.reshape(b, math.prod(g), c * math.prod(p))  # (B, N, C * prod(p))


def unpatchify(tokens: torch.Tensor, patch_size: Sequence[int],
               grid: Sequence[int]) -> torch.Tensor:
    """Inverse of :func:`patchify`: ``(B, N, C prod(p))`` on patch grid ``g`` → ``(B, C, *S)``."""
    p = tuple(int(q) for q in patch_size)
    g = tuple(int(q) for q in grid)
    n = len(p)
    b, num, feat = tokens.shape
    if len(g) != n or num != math.prod(g) or feat % math.prod(p):
        raise UserInputError(
            f"cannot unpatchify tokens of shape {tuple(tokens.shape)} with patch size {p} on "
            f"patch grid {g}; need N = prod(grid) and features divisible by prod(patch).")
    c = feat // math.prod(p)
    x = tokens.reshape([b, *g, c, *p])  # (B, g1, ..., gn, C, p1, ..., pn)
    perm = [0, n + 1] + [v for i in range(n) for v in (1 + i, n + 2 + i)]
    x = x.permute(perm)  # (B, C, g1, p1, ..., gn, pn)
    return x.reshape([b, c, *(gi * pi for gi, pi in zip(g, p))])  # (B, C, *S)
