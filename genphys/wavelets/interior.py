"""Blocked DWT/IDWT along a contiguous last axis without an extension copy (no-grad path).

The windows of the blocked operators (see :mod:`genphys.wavelets.operators`) that lie
inside the signal are read straight from the signal's own memory: viewed as rows of
``step`` samples, window ``j`` of signal ``m`` is a few consecutive rows (``j + t``) of
one flat block matrix, so the interior is a handful of GEMMs on shifted row ranges with
one output row per window, and the output needs no extra copy or trailing windows.  The
few windows that reach into the extension (circular, symmetric or zero) at either end are
gathered (``(M, edges, W)``, small) and multiplied separately.  The arithmetic is the
same block-Toeplitz product (Mallat, "A Wavelet Tour of Signal Processing", 3rd ed., §7.3).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class InteriorPlan:
    """Where the windows of a blocked operator fall on a signal cut into ``step`` rows."""

    step: int  # samples per block row of the signal buffer
    rows: int  # block rows per signal in the buffer (its row length is rows * step)
    length: int  # signal samples held by the buffer (<= rows * step)
    blocks: int  # windows (output blocks) per signal
    pieces: tuple[tuple[int, int, int, int, int], ...]  # (t, col_lo, col_hi, row_lo, row_hi)
    t_min: int  # first and last block-row shift a window reads
    t_max: int
    inner: tuple[int, int]  # windows j0 <= j < j1 lie inside the signal
    edges: torch.Tensor  # (E,) the other windows
    edge_idx: torch.Tensor  # (E * W,) signal index of every edge-window sample (clamped)
    edge_zero: torch.Tensor | None  # (E * W,) True where the extension is zero, or None


def interior_plan(idx: np.ndarray, lead: int, win: int, step: int, blocks: int, rows: int,
                  length: int, full: int) -> InteriorPlan:
    """Plan for windows ``j < blocks`` reading extension ``idx[j*step : j*step + win]``.

    ``lead`` extension samples precede the signal; the buffer holds its first ``length``
    samples in ``rows`` block rows of ``step`` samples per signal; windows ``j >= full``
    have partial outputs and count as edges.
    """
    pieces = []
    t_min, t_max = (-lead) // step, (win - lead - 1) // step
    for t in range(t_min, t_max + 1):
        r_lo, r_hi = max(0, t * step + lead), min(win, (t + 1) * step + lead)
        pieces.append((t, r_lo - t * step - lead, r_hi - t * step - lead, r_lo, r_hi))
    j0 = -(-lead // step)
    j1 = max(j0, min(full, (length + lead - win) // step + 1))
    edges = [j for j in range(blocks) if not j0 <= j < j1]
    ew = np.array([idx[j * step:j * step + win] for j in edges], dtype=np.int64).reshape(-1)
    zero = torch.as_tensor(ew < 0) if (ew < 0).any() else None
    return InteriorPlan(step, rows, length, blocks, tuple(pieces), t_min, t_max, (j0, j1),
                        torch.as_tensor(edges, dtype=torch.long),
                        torch.as_tensor(np.maximum(ew, 0)), zero)


def plan_to(plan: InteriorPlan, device: torch.device) -> InteriorPlan:
    """The plan with its index tensors on ``device``."""
    return InteriorPlan(plan.step, plan.rows, plan.length, plan.blocks, plan.pieces, plan.t_min,
                        plan.t_max, plan.inner, plan.edges.to(device),
                        plan.edge_idx.to(device),
                        None if plan.edge_zero is None else plan.edge_zero.to(device))


def interior_matmul(bufs: list[torch.Tensor], blk: torch.Tensor, plan: InteriorPlan,
                    out: torch.Tensor) -> None:
    """``out[i] = sum_b window_i(bufs[b]) @ blk[b]`` for every inner window row ``i``.

    ``bufs[b]`` is ``(M, rows * step)`` contiguous, ``blk`` ``(k, W, cols)``, ``out``
    ``(M * rows, cols)``; rows of windows that reach the extension are left for
    :func:`edge_matmul` (they are overwritten, or never read).
    """
    r0, r1 = -plan.t_min, out.shape[0] - plan.t_max
    if r1 <= r0:
        return
    first = True
    for b, buf in enumerate(bufs):
        xb = buf.view(-1, plan.step)  # (M * blocks, step): block rows of all signals
        for t, c_lo, c_hi, r_lo, r_hi in plan.pieces:
            a, p = xb[r0 + t:r1 + t, c_lo:c_hi], blk[b, r_lo:r_hi]
            if first:
                torch.mm(a, p, out=out[r0:r1])
                first = False
            else:
                out[r0:r1].addmm_(a, p)


def edge_matmul(bands: list[torch.Tensor], blk: torch.Tensor, plan: InteriorPlan
                ) -> torch.Tensor:
    """The windows that reach the extension: ``(M, E, cols)`` from bands ``(..., n)``."""
    m, e = bands[0][..., 0].numel(), len(plan.edges)
    k, win, cols = blk.shape
    if e == 0:
        return bands[0].new_empty(m, 0, cols)
    wins = []
    for band in bands:
        w = band.index_select(-1, plan.edge_idx)  # (..., E * W)
        if plan.edge_zero is not None:
            w = w.masked_fill(plan.edge_zero, 0)
        wins.append(w.view(m * e, -1))  # (M * E, W)
    a = torch.cat(wins, 1) if len(wins) > 1 else wins[0]  # (M * E, k * W)
    return (a @ blk.reshape(k * win, cols)).view(m, e, cols)
