"""Bucketed radius-neighbour search between nodes and a regular latent grid, O(N) time and memory.

Nodes are bucketed into the grid cell that contains them (``floor((x - lo) / delta)``); a node
can only lie within ``radius`` of the centres of the ``(2k + 1)^d`` cells around its bucket
(``k = ceil(radius / delta)``). The plan keeps only the (node, cell) pairs with a non-zero
window weight (P ≈ π·ρ²·N in 2D), and the kernel integral scatter-adds them into the grid with
one ``index_add_``. No N × M distance matrix is ever formed: time and memory are O(P·F).
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
    """Precomputed (node, latent cell) pairs of one point set within the radius.

    Only pairs with a non-zero window weight are kept (about π·ρ² of the ``(2k+1)^d``
    candidate cells per node in 2D), concatenated over offsets: ``node`` ``(P,)`` flat index
    into ``B * N`` nodes, ``cell`` ``(P,)`` flat index into ``B * prod(grid)`` cells,
    ``weight`` ``(P,)`` window weight and ``rel`` ``(P, d)`` node position relative to the
    cell centre in units of the radius.
    """

    node: torch.Tensor
    cell: torch.Tensor
    weight: torch.Tensor
    rel: torch.Tensor
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
    node_ids = torch.arange(b * n, device=coords.device).reshape(b, n)
    parts: list[tuple[torch.Tensor, ...]] = []
    for off in grid_offsets(d, k, coords.device):
        cell = base + off  # (B, N, d)
        rel = (u - cell - 0.5) / radius  # (B, N, d)
        w = window((rel * rel).sum(-1))  # (B, N)
        if periodic:
            cell = torch.remainder(cell, shape)
        else:
            w = w * ((cell >= 0) & (cell < shape)).all(-1)
        live = keep & (w > 0)  # (B, N): padding, outside the radius or the grid drop out
        flat = batch_base + (cell * strides).sum(-1)  # (B, N)
        parts.append((node_ids[live], flat[live], w[live].to(coords.dtype),
                      rel[live].to(coords.dtype)))
    node, cell, weight, rel = (torch.cat(p) for p in zip(*parts))  # (P,), (P,), (P,), (P, d)
    return Plan(node, cell, weight, rel, b * math.prod(grid))


def kernel_integral(plan: Plan, values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Windowed zeroth and first moments of node ``values (B, N, F)`` per latent cell.

    Returns ``moments (B*G, F*(1+d))`` = Σ_i w_ij [v_i, v_i ⊗ rel_ij] and ``wsum (B*G,)``
    = Σ_i w_ij: a kernel integral with the learnable kernel κ(r) = w(r)(A + B·r) once a
    linear layer follows (Li et al. 2020, graph kernel network, with a local window).
    """
    f = values.shape[-1]
    # padding nodes have no pairs, so whatever they hold is never read
    wv = plan.weight[:, None] * values.reshape(-1, f)[plan.node]  # (P, F)
    pair = torch.cat([wv, (wv[:, None, :] * plan.rel[:, :, None]).flatten(1)], -1)  # (P, F(1+d))
    mom = values.new_zeros(plan.cells, pair.shape[1]).index_add_(0, plan.cell, pair)
    wsum = values.new_zeros(plan.cells).index_add_(0, plan.cell, plan.weight)
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
