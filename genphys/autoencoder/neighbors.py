"""Bucketed radius-neighbour search between nodes and a regular latent grid, O(N) time and memory.

Nodes are bucketed into the grid cell that contains them (``floor((x - lo) / delta)``); a node
can only lie within ``radius`` of the centres of the ``(2k + 1)^d`` cells around its bucket
(``k = ceil(radius / delta)``), so the encoder's kernel integral visits each (node, offset)
pair once and scatter-adds into the grid with ``index_add_``. No N × M distance matrix is
ever formed: memory is O(B·N·F) per offset and time O(B·N·(2k+1)^d·F).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import torch


def grid_offsets(dim: int, k: int, device: torch.device | None = None) -> torch.Tensor:
    """All integer offsets in ``[-k, k]^dim`` as a ``(K, dim)`` long tensor."""
    rng = range(-k, k + 1)
    return torch.tensor(list(itertools.product(rng, repeat=dim)), dtype=torch.long,
                        device=device).reshape(-1, dim)


def window(r2: torch.Tensor) -> torch.Tensor:
    """Compact smooth window ``(1 - r²)²`` for ``r² < 1``, else 0 (C¹ at the radius)."""
    return (1.0 - r2).clamp_min(0.0) ** 2


@dataclass
class Plan:
    """Precomputed (node, latent cell) pairs of one point set, one entry per offset.

    ``index[o]`` ``(B, N)`` flat cell index into ``B * prod(grid)`` rows, ``weight[o]``
    ``(B, N)`` window weight (0 outside the radius, outside the grid or on padding) and
    ``rel[o]`` ``(B, N, d)`` node position relative to the cell centre in units of the radius.
    """

    index: list[torch.Tensor]
    weight: list[torch.Tensor]
    rel: list[torch.Tensor]
    cells: int  # B * prod(grid)


def build_plan(coords: torch.Tensor, mask: torch.Tensor | None, grid: tuple[int, ...],
               lo: torch.Tensor, hi: torch.Tensor, radius: float, periodic: bool) -> Plan:
    """Bucket ``coords (B, N, d)`` into ``grid`` and list each node's cells within ``radius``.

    ``radius`` is in units of the cell size along each axis (anisotropic cells are fine).
    """
    b, n, d = coords.shape
    shape = torch.tensor(grid, device=coords.device)  # (d,)
    delta = (hi - lo) / shape  # (d,)
    u = (coords - lo) / delta  # (B, N, d) position in cell units; centres at i + 0.5
    base = torch.floor(u).long()
    k = max(1, math.ceil(radius))
    strides = torch.tensor([math.prod(grid[i + 1:]) for i in range(d)], device=coords.device)
    batch_base = torch.arange(b, device=coords.device)[:, None] * math.prod(grid)  # (B, 1)
    keep = torch.ones(b, n, dtype=torch.bool, device=coords.device) if mask is None else mask
    plan = Plan([], [], [], b * math.prod(grid))
    for off in grid_offsets(d, k, coords.device):
        cell = base + off  # (B, N, d)
        rel = (u - cell - 0.5) / radius  # (B, N, d)
        w = window((rel * rel).sum(-1))  # (B, N)
        if periodic:
            cell = torch.remainder(cell, shape)
        else:
            inside = ((cell >= 0) & (cell < shape)).all(-1)
            w = w * inside
            cell = torch.minimum(cell.clamp_min(0), shape - 1)
        w = torch.where(keep, w, torch.zeros_like(w))
        plan.index.append(batch_base + (cell * strides).sum(-1))
        plan.weight.append(w.to(coords.dtype))
        plan.rel.append(rel.to(coords.dtype))
    return plan


def kernel_integral(plan: Plan, values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Windowed zeroth and first moments of node ``values (B, N, F)`` per latent cell.

    Returns ``moments (B*G, F*(1+d))`` = Σ_i w_ij [v_i, v_i ⊗ rel_ij] and ``wsum (B*G,)``
    = Σ_i w_ij: a kernel integral with the learnable kernel κ(r) = w(r)(A + B·r) once a
    linear layer follows (Li et al. 2020, graph kernel network, with a local window).
    """
    b, n, f = values.shape
    d = plan.rel[0].shape[-1]
    values = torch.nan_to_num(values)  # padding may hold garbage; its weight is 0
    mom = values.new_zeros(plan.cells, f * (1 + d))
    wsum = values.new_zeros(plan.cells)
    for idx, w, rel in zip(plan.index, plan.weight, plan.rel):
        wv = w[..., None] * values  # (B, N, F)
        pair = torch.cat([wv, (wv[..., None, :] * rel[..., :, None]).flatten(2)], -1)
        mom.index_add_(0, idx.reshape(-1), pair.reshape(b * n, -1))  # (B*N, F*(1+d))
        wsum.index_add_(0, idx.reshape(-1), w.reshape(-1))
    return mom, wsum


def interpolate(feat: torch.Tensor, coords: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor,
                periodic: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Multilinear interpolation of cell-centred ``feat (B, F, *grid)`` at ``coords (B, Q, d)``.

    Returns values ``(B, Q, F)`` and the query's offset from its nearest cell centre in cell
    units ``(B, Q, d)``. Outside the centres' hull values are clamped (or wrapped if periodic).
    """
    b, f, *grid = feat.shape
    d = len(grid)
    shape = torch.tensor(grid, device=coords.device)
    u = (coords - lo) / ((hi - lo) / shape) - 0.5  # (B, Q, d) in centre units
    i0 = torch.floor(u).long()
    t = u - i0  # (B, Q, d) in [0, 1)
    strides = torch.tensor([math.prod(grid[i + 1:]) for i in range(d)], device=coords.device)
    flat = feat.flatten(2).transpose(1, 2)  # (B, G, F)
    out = feat.new_zeros(b, coords.shape[1], f)
    for corner in itertools.product((0, 1), repeat=d):
        c = torch.tensor(corner, device=coords.device)
        idx = i0 + c
        idx = torch.remainder(idx, shape) if periodic else \
            torch.minimum(idx.clamp_min(0), shape - 1)
        w = torch.where(c.bool(), t, 1 - t).prod(-1, keepdim=True)  # (B, Q, 1)
        gathered = torch.gather(flat, 1, (idx * strides).sum(-1)[..., None].expand(-1, -1, f))
        out = out + w * gathered
    local = u - torch.round(u)  # (B, Q, d) in [-0.5, 0.5]
    return out, local
