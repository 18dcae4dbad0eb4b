"""Exact one-level DWT/IDWT operators along one axis, applied as GEMMs.

A one-level DWT along one axis is a linear map ``R^N -> R^{2n}`` whose output is laid out
``[approx (n) | detail (n)]`` (Mallat layout).  It follows pywavelets (Lee et al.,
"PyWavelets", JOSS 2019) sample for sample:

- forward: ``out_b[k] = sum_j h_b[j] * xe(2k + s - j)`` with ``s = F/2`` for
  ``periodization`` (``n = N/2``) and ``s = 1`` otherwise (``n = floor((N + F - 1)/2)``),
  where ``xe`` is the circular, half-sample symmetric or zero extension of ``x``;
- inverse: ``x[m] = sum_k a[k] g_0[m - c - 2k] + d[k] g_1[m - c - 2k]`` with
  ``c = 1 - F/2`` (``a, d`` indexed modulo ``n``; ``2n`` outputs) for ``periodization``
  and ``c = 2 - F`` (the "valid" part: ``2n - F + 2`` outputs) otherwise.

Both are evaluated blockwise (polyphase/block-Toeplitz form, Mallat, "A Wavelet Tour of
Signal Processing", 3rd ed., §7.3): the extended signal is cut into overlapping windows
(one ``index_select`` + ``unfold``) and every window is multiplied by one small block
matrix, so a whole batch is one GEMM.  Short axes use the equivalent
dense ``(N, 2n)`` matrix instead, built by applying the blocked operator to the identity
(one source of truth), which needs no padding copy and no axis permutation.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch

from genphys.wavelets.filters import FilterBank, coeff_len, rec_len

# Dense matrices (no padding or permutation copies) win on short axes; measured on CPU:
DENSE_MAX_LAST = 32  # last (contiguous) axis: dense up to this length, else blocked
DENSE_MAX_INNER = 128  # inner axes: dense left-multiplication up to this length


def block_size(filt_len: int) -> int:
    """Outputs per band per block of the blocked path (small blocks: less wasted work)."""
    return max(8, filt_len)


def _extension(n: int, start: int, length: int, mode: str) -> np.ndarray:
    """Indices into a length-n signal of extended positions start..start+length-1 (-1: zero)."""
    t = np.arange(start, start + length)
    if mode == "periodization":
        return t % n
    if mode == "symmetric":  # half-sample symmetric: ... x1 x0 | x0 x1 ... x_{n-1} | x_{n-1} ...
        j = t % (2 * n)
        return np.where(j < n, j, 2 * n - 1 - j)
    return np.where((t >= 0) & (t < n), t, -1)


@dataclass(frozen=True)
class AxisOperator:
    """One-level analysis or synthesis along one axis, ``n_in`` -> ``n_out`` samples."""

    n_in: int
    n_out: int
    inverse: bool
    dense: torch.Tensor | None  # (n_in, n_out) matrix, or None for the blocked path
    index: torch.Tensor | None  # (Lp,) gather indices of the extension; n_src means zero
    block: torch.Tensor | None  # (window_in, window_out) block matrix
    step: int  # window stride (in extended samples of one band)
    zero_pad: bool  # the extension contains zeros: append one zero sample before gathering


def _analysis(bank: FilterBank, n_in: int, mode: str) -> AxisOperator:
    f = bank.length
    q = block_size(f)
    n = coeff_len(n_in, f, mode)
    s = f // 2 if mode == "periodization" else 1
    nb = -(-n // q)
    idx = _extension(n_in, s - f + 1, 2 * q * nb + f - 2, mode)
    h = np.array([bank.dec_lo, bank.dec_hi])[:, ::-1]  # reversed taps: correlation windows
    blk = np.zeros((2 * q + f - 2, 2 * q))
    for r in range(q):
        blk[2 * r:2 * r + f, r] = h[0]
        blk[2 * r:2 * r + f, q + r] = h[1]
    return _make(n_in, 2 * n, False, idx, n_in, blk, 2 * q)


def _synthesis(bank: FilterBank, n: int, mode: str) -> AxisOperator:
    f = bank.length
    q = block_size(f)
    per = mode == "periodization"
    c = 1 - f // 2 if per else 2 - f
    n_rec = rec_len(n, f, mode)
    e0, e1 = -((c + f - 1) // 2), (2 * q - 1 - c) // 2  # coefficient window of one block
    w = e1 - e0 + 1
    nb = -(-n_rec // (2 * q))
    idx = _extension(n, e0, q * (nb - 1) + w, "periodization" if per else "zero")
    g = np.array([bank.rec_lo, bank.rec_hi])
    blk = np.zeros((2 * w, 2 * q))
    for v in range(w):
        for r in range(2 * q):
            j = r - c - 2 * e0 - 2 * v
            if 0 <= j < f:
                blk[v, r], blk[w + v, r] = g[0, j], g[1, j]
    return _make(2 * n, n_rec, True, idx, n, blk, q)


def _make(n_in: int, n_out: int, inverse: bool, idx: np.ndarray, n_src: int,
          blk: np.ndarray, step: int) -> AxisOperator:
    zero_pad = bool((idx < 0).any())
    idx = np.where(idx < 0, n_src, idx)
    win = blk.shape[0] // (2 if inverse else 1)
    nb = (len(idx) - win) // step + 1
    fused = np.stack([idx[j * step:j * step + win] for j in range(nb)]).reshape(-1)  # (nb*win,)
    return AxisOperator(n_in, n_out, inverse, None, torch.as_tensor(fused, dtype=torch.long),
                        torch.as_tensor(blk), step, zero_pad)


def _gather(x: torch.Tensor, op: AxisOperator) -> torch.Tensor:
    """All overlapping windows of the extended last axis of x, in one copy: (..., nb*win)."""
    if op.zero_pad:
        x = torch.nn.functional.pad(x, (0, 1))
    return x.index_select(-1, op.index)


def apply_blocked(x: torch.Tensor, op: AxisOperator) -> torch.Tensor:
    """Apply a blocked operator to ``x`` of shape ``(M, n_in)`` -> ``(M, n_out)``."""
    m, q = x.shape[0], op.block.shape[1] // 2
    if not op.inverse:
        win = _gather(x, op).view(-1, op.block.shape[0])  # (M*nb, 2q + F - 2)
        y = win @ op.block  # (M*nb, 2q): [approx q | detail q] per block
        y = y.view(m, -1, 2, q).transpose(1, 2).reshape(m, 2, -1)  # (M, 2, nb*q)
        return y[..., : op.n_out // 2].reshape(m, op.n_out)
    w = op.block.shape[0] // 2
    win = _gather(x.view(m * 2, op.n_in // 2), op).view(m, 2, -1, w)  # (M, 2, nb, w)
    y = win.transpose(1, 2).reshape(-1, 2 * w) @ op.block  # (M*nb, 2q)
    return y.view(m, -1)[:, : op.n_out]


@functools.lru_cache(maxsize=512)
def axis_operator(bank: FilterBank, n_in: int, mode: str, inverse: bool,
                  dtype: torch.dtype, device: torch.device) -> AxisOperator:
    """The cached one-axis analysis (inverse=False) or synthesis operator for ``n_in`` samples."""
    op = _synthesis(bank, n_in // 2, mode) if inverse else _analysis(bank, n_in, mode)
    dense = None
    if n_in <= DENSE_MAX_INNER:
        dense = apply_blocked(torch.eye(n_in, dtype=torch.float64), op)  # row i: image of e_i
        dense = dense.to(device, dtype)
    return AxisOperator(op.n_in, op.n_out, inverse, dense, op.index.to(device),
                        op.block.to(device, dtype), op.step, op.zero_pad)


def apply_axis(x: torch.Tensor, dim: int, op: AxisOperator) -> torch.Tensor:
    """Apply ``op`` along dimension ``dim`` (non-negative) of ``x``; other dims untouched."""
    shape = x.shape
    pre = int(np.prod(shape[:dim], dtype=np.int64))
    post = int(np.prod(shape[dim + 1:], dtype=np.int64))
    out_shape = (*shape[:dim], op.n_out, *shape[dim + 1:])
    if op.dense is not None and post > 1:  # inner axis: left-multiply, no permutation copies
        y = torch.matmul(op.dense.T, x.reshape(pre, op.n_in, post))  # (pre, n_out, post)
        return y.view(out_shape)
    if op.dense is not None and op.n_in <= DENSE_MAX_LAST:
        return (x.reshape(pre, op.n_in) @ op.dense).view(out_shape)  # (pre, n_out)
    xt = x.movedim(dim, -1).reshape(-1, op.n_in)  # (pre*post, n_in)
    y = apply_blocked(xt, op)  # (pre*post, n_out)
    return y.view(*shape[:dim], *shape[dim + 1:], op.n_out).movedim(-1, dim)
