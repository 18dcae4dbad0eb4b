"""Field and parameter conditions: known frames, sparse observations, PDE parameter vectors.

Field conditions are ``(cond, cond_mask)`` pairs in the trajectory layout ``(B, C, T, *space)``:
``cond`` holds the known values (zeros elsewhere) and ``cond_mask (B, 1, T, *space)`` is 1
where a value is known. The backbones take them as extra input channels ``[cond * mask,
mask]`` (genphys.backbone.inputs), and ``drop_conditions`` zeroes both for dropped samples.
:func:`to_model_space` maps a pair into the packed wavelet channels the model sees.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from genphys.errors import UserInputError

if TYPE_CHECKING:  # duck-typed: anything with encode/shape/level/axes (no import upward)
    from genphys.diffusion import WaveletRepresentation

TRANSFORMS = ("none", "log10")


def _check_x(x: Tensor) -> None:
    if not torch.is_tensor(x) or x.ndim < 4 or not x.is_floating_point():
        raise UserInputError(f"x must be a float tensor (B, C, T, *space), got "
                             f"{getattr(x, 'shape', type(x).__name__)}.")


def first_frames(x: Tensor, k: int = 1) -> tuple[Tensor, Tensor]:
    """The first ``k`` frames of ``x (B, C, T, *space)`` as known channels, zeros elsewhere."""
    _check_x(x)
    t = x.shape[2]
    if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= t:
        raise UserInputError(f"k={k!r} known frames is invalid; allowed: 1..{t} (frames of x).")
    mask = x.new_zeros((x.shape[0], 1, *x.shape[2:]))  # (B, 1, T, *space)
    mask[:, :, :k] = 1
    return x * mask, mask


def _points_mask(x: Tensor, points: Tensor) -> Tensor:
    """Mask ``(B, 1, T, *space)`` from index rows ``(N, 1+d)`` (shared) or ``(B, N, 1+d)``."""
    grid = x.shape[2:]
    pts = torch.as_tensor(points, device=x.device)
    if pts.is_floating_point() or pts.shape[-1] != len(grid) or pts.ndim not in (2, 3) \
            or (pts.ndim == 3 and pts.shape[0] != x.shape[0]):
        raise UserInputError(f"points have shape {tuple(pts.shape)}; allowed: integer (t, "
                             f"{', '.join('xyz'[:len(grid) - 1])}) index rows of shape "
                             f"(N, {len(grid)}) or ({x.shape[0]}, N, {len(grid)}).")
    pts = pts.long().expand(x.shape[0], *pts.shape[-2:])  # (B, N, 1+d)
    size = torch.tensor(grid, device=x.device)
    if ((pts < 0) | (pts >= size)).any():
        raise UserInputError(f"points hold indices outside the grid {tuple(grid)}.")
    stride = torch.tensor([math.prod(grid[i + 1:]) for i in range(len(grid))], device=x.device)
    flat = (pts * stride).sum(-1)  # (B, N) flat grid index
    mask = x.new_zeros(x.shape[0], math.prod(grid))  # (B, T*prod(space))
    mask.scatter_(1, flat, 1.0)
    return mask.reshape(x.shape[0], 1, *grid)  # (B, 1, T, *space)


def sparse_observations(x: Tensor, points_or_mask: Tensor) -> tuple[Tensor, Tensor]:
    """Values of ``x`` at given (t, *space) indices or where a 0/1 mask is set, zeros elsewhere.

    ``points_or_mask``: integer index rows ``(N, 1+d)`` shared by the batch or ``(B, N, 1+d)``
    per sample, or a mask broadcastable to ``(B, 1|C, T, *space)`` (bool or 0/1 float).
    """
    _check_x(x)
    m = torch.as_tensor(points_or_mask, device=x.device)
    if m.ndim == x.ndim:
        if m.shape[1] not in (1, x.shape[1]) or m.shape[2:] != x.shape[2:] \
                or m.shape[0] not in (1, x.shape[0]):
            raise UserInputError(f"observation mask has shape {tuple(m.shape)}; allowed: "
                                 f"({x.shape[0]} or 1, 1 or {x.shape[1]}, "
                                 f"{', '.join(map(str, x.shape[2:]))}).")
        mask = m.to(x.dtype).expand(x.shape[0], *m.shape[1:])  # (B, 1|C, T, *space)
    else:
        mask = _points_mask(x, m)
    return x * mask, mask.contiguous()


def random_observation_mask(shape: Sequence[int], num_points: int,
                            generator: torch.Generator | Sequence[torch.Generator] | None = None,
                            frames: Sequence[int] | None = None,
                            device: torch.device | str | None = None) -> Tensor:
    """Random mask ``(B, 1, T, *space)`` with ``num_points`` observed (t, x) points per sample.

    Points are drawn without replacement, only among ``frames`` if given. With a list of
    generators (one per sample) sample ``i`` depends only on ``generator[i]``, so a mask does
    not change with the batch it is drawn in.
    """
    b, grid = int(shape[0]), tuple(int(s) for s in shape[2:])
    t_ok = list(range(grid[0])) if frames is None else sorted(set(int(f) for f in frames))
    if not t_ok or any(not 0 <= f < grid[0] for f in t_ok):
        raise UserInputError(f"frames={frames!r} is invalid; allowed: indices in 0..{grid[0] - 1}.")
    per_frame = math.prod(grid[1:])
    total = len(t_ok) * per_frame
    if not isinstance(num_points, int) or not 1 <= num_points <= total:
        raise UserInputError(f"num_points={num_points!r} is invalid; allowed: 1..{total} "
                             "(the candidate grid points).")
    gens = list(generator) if isinstance(generator, Sequence) else [generator] * b
    if len(gens) != b:
        raise UserInputError(f"{len(gens)} generators were given for a batch of {b}.")
    dev = torch.device(device) if device is not None else torch.device("cpu")
    flat_ok = (torch.tensor(t_ok)[:, None] * per_frame + torch.arange(per_frame)).reshape(-1)
    mask = torch.zeros(b, math.prod(grid))  # (B, T*prod(space))
    for i, g in enumerate(gens):
        gdev = g.device if g is not None else "cpu"
        pick = torch.randperm(total, generator=g, device=gdev)[:num_points]
        mask[i, flat_ok[pick.cpu()]] = 1.0
    return mask.reshape(b, 1, *grid).to(dev)  # (B, 1, T, *space)


def param_transform(p: Tensor, transform: str = "none") -> Tensor:
    """Apply ``"none"`` or ``"log10"`` (for positive parameters such as viscosities); NaN stays."""
    if transform not in TRANSFORMS:
        raise UserInputError(f"param transform={transform!r} is not allowed; choose one of "
                             f"{list(TRANSFORMS)}.")
    if transform == "none":
        return p
    if (p <= 0).any():
        raise UserInputError(f"log10 needs positive parameters, got {p[p <= 0].tolist()}.")
    return torch.log10(p)


def params_vector(params: Mapping[str, float | Sequence[float] | np.ndarray | Tensor],
                  names: Sequence[str], transform: str | Mapping[str, str] = "none",
                  batch: int | None = None) -> Tensor:
    """``(B, P)`` float32 parameter vector in the order of ``names``; missing names are NaN.

    NaN is the backbones' "unknown" value (learned null embedding), as in the dataset items.
    ``transform``: one name for all columns (the trainer's ``data.param_transform``) or a
    per-name mapping (unlisted names: ``"none"``).
    """
    cols = {k: torch.as_tensor(v, dtype=torch.float64).reshape(-1) for k, v in params.items()}
    bad = [k for k in cols if k not in names]
    if bad:
        raise UserInputError(f"unknown parameters {bad}; allowed: {', '.join(names)}.")
    sizes = {len(v) for v in cols.values()} | ({batch} if batch is not None else set())
    if len(sizes - {1}) > 1:
        raise UserInputError(f"parameter values have different batch sizes {sorted(sizes)}.")
    b = max(sizes, default=1)
    out = torch.full((b, len(names)), float("nan"), dtype=torch.float64)  # (B, P)
    for j, name in enumerate(names):
        if name in cols:
            kind = transform if isinstance(transform, str) else transform.get(name, "none")
            out[:, j] = param_transform(cols[name], kind).expand(b)
    return out.float()


def _pool_mask(mask: Tensor, rep: WaveletRepresentation) -> Tensor:
    """Max-pool ``mask (B, 1, T, *space)`` over the ``2**level`` blocks of the wavelet axes."""
    f, nd = 2**rep.level, mask.ndim
    axes = sorted(a % nd for a in rep.axes)
    for a in axes:
        m = mask.movedim(a, -1)  # (..., n) with the pooled axis last
        m = F.max_pool1d(m.reshape(-1, 1, m.shape[-1]), f)  # (prod(...), 1, n / f)
        mask = m.reshape(*mask.movedim(a, -1).shape[:-1], -1).movedim(-1, a)
    return mask


def to_model_space(cond: Tensor, cond_mask: Tensor,
                   representation: WaveletRepresentation) -> tuple[Tensor, Tensor]:
    """``(cond, cond_mask)`` in packed wavelet channels: ``rep.encode(cond)``, pooled mask.

    A wavelet coefficient block carries information about a known value if any point of its
    ``2**level``-wide block on each transformed axis is known, so the mask is max-pooled per
    block (a single sensor is not lost at coarse levels) and reduced to one channel that
    applies to every packed channel. With ``level=0`` both pass through unchanged.
    """
    _check_x(cond)
    if cond_mask.ndim != cond.ndim or cond_mask.shape[2:] != cond.shape[2:]:
        raise UserInputError(f"cond_mask has shape {tuple(cond_mask.shape)}; expected (B, 1 or "
                             f"C, {', '.join(map(str, cond.shape[2:]))}).")
    representation.shape(cond.shape)  # checks divisibility by 2**level
    if representation.level == 0:
        return cond, cond_mask
    mask = cond_mask.to(cond.dtype).amax(1, keepdim=True)  # (B, 1, T, *space)
    return representation.encode(cond * cond_mask), _pool_mask(mask, representation)
