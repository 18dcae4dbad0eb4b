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
Signal Processing", 3rd ed., §7.3): the signal is extended by two small wings
(``[left | x | right]``), cut into overlapping windows (one ``unfold`` copy) and every
window is multiplied by one small block matrix, so a whole batch is one GEMM; blocked
synthesis does one GEMM per band (a band given as None is skipped).  Short axes use the equivalent
dense matrix instead, built by applying the blocked operator to the identity (one source
of truth); on inner axes it is applied by left multiplication, with no permutation copy.
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
    """One-level analysis (``n_in -> 2n``) or synthesis (2 bands of ``n`` -> ``n_out``)."""

    n_in: int  # analysis: signal length; synthesis: coefficients per band
    n_out: int  # analysis: 2n (Mallat layout [approx | detail]); synthesis: signal length
    inverse: bool
    dense: torch.Tensor | None  # analysis (n_in, 2n); synthesis (2n, n_out); or None
    left: torch.Tensor  # (l,) indices of the left extension; all -1: zeros
    right: torch.Tensor  # (r,) indices of the right extension (after the whole signal)
    block: torch.Tensor  # analysis (window, 2q); synthesis (2, window, 2q)
    step: int  # stride between windows
    zero_wings: tuple[bool, bool]  # (left, right) wing is all zeros (no gather, no sync)


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
    return _make(n_in, 2 * n, False, idx, blk, 2 * q)


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
    blk = np.zeros((2, w, 2 * q))
    for v in range(w):
        for r in range(2 * q):
            j = r - c - 2 * e0 - 2 * v
            if 0 <= j < f:
                blk[:, v, r] = g[:, j]
    return _make(n, n_rec, True, idx, blk, q)


def _make(n_in: int, n_out: int, inverse: bool, idx: np.ndarray, blk: np.ndarray, step: int
          ) -> AxisOperator:
    lead = next(i for i in range(len(idx)) if np.array_equal(idx[i:i + n_in], np.arange(n_in)))
    left, right = idx[:lead], idx[lead + n_in:]  # the extension is [left | x | right]
    if any((w < 0).any() and not (w < 0).all() for w in (left, right)):
        raise AssertionError("an extension wing mixes zeros and samples")  # never for MODES
    return AxisOperator(n_in, n_out, inverse, None, torch.as_tensor(left, dtype=torch.long),
                        torch.as_tensor(right, dtype=torch.long), torch.as_tensor(blk), step,
                        (bool((left < 0).any()), bool((right < 0).any())))


def _gather(x: torch.Tensor, op: AxisOperator, win: int) -> torch.Tensor:
    """All overlapping windows of the extended last axis of ``x (M, n)``: ``(M*nb, win)``."""
    wings = [x.new_zeros(x.shape[0], len(i)) if zero else x.index_select(-1, i)
             for i, zero in zip((op.left, op.right), op.zero_wings)]
    ext = torch.cat([wings[0], x, wings[1]], -1)  # (M, l + n + r)
    return ext.unfold(-1, win, op.step).reshape(-1, win)  # one copy of the windows


def analyze_blocked(x: torch.Tensor, op: AxisOperator) -> torch.Tensor:
    """Blocked analysis of ``x (M, n_in)`` -> Mallat layout ``(M, 2n)``."""
    m, q = x.shape[0], op.block.shape[1] // 2
    y = _gather(x, op, op.block.shape[0]) @ op.block  # (M*nb, 2q): [approx q | detail q]
    y = y.view(m, -1, 2, q).transpose(1, 2).reshape(m, 2, -1)  # (M, 2, nb*q)
    return y[..., : op.n_out // 2].reshape(m, op.n_out)


def synthesize_blocked(a: torch.Tensor | None, d: torch.Tensor | None, op: AxisOperator
                       ) -> torch.Tensor:
    """Blocked synthesis of bands ``(M, n)`` (None: zeros, skipped) -> ``(M, n_out)``."""
    y = None
    for band, c in enumerate((a, d)):
        if c is None:
            continue
        win = _gather(c, op, op.block.shape[1])  # (M*nb, w)
        # in place on a fresh mm output: autograd-safe (mm saves its inputs, not its output)
        y = win @ op.block[band] if y is None else y.addmm_(win, op.block[band])
    m = (a if a is not None else d).shape[0]
    return y.view(m, -1)[:, : op.n_out]  # (M, n_out)


@functools.lru_cache(maxsize=512)
def axis_operator(bank: FilterBank, n_in: int, mode: str, inverse: bool,
                  dtype: torch.dtype, device: torch.device) -> AxisOperator:
    """The cached analysis (``n_in`` samples) or synthesis (``n_in`` per band) operator."""
    op = _synthesis(bank, n_in, mode) if inverse else _analysis(bank, n_in, mode)
    dense = None
    if n_in <= DENSE_MAX_INNER:
        eye = torch.eye(n_in, dtype=torch.float64)  # row i: image of e_i
        dense = torch.cat([synthesize_blocked(eye, None, op), synthesize_blocked(None, eye, op)]
                          ) if inverse else analyze_blocked(eye, op)  # synthesis: (2n, n_out)
        dense = dense.to(device, dtype)
    return AxisOperator(op.n_in, op.n_out, inverse, dense, op.left.to(device),
                        op.right.to(device), op.block.to(device, dtype), op.step, op.zero_wings)


def _split(shape: torch.Size, dim: int) -> tuple[int, int]:
    return (int(np.prod(shape[:dim], dtype=np.int64)),
            int(np.prod(shape[dim + 1:], dtype=np.int64)))


def analyze(x: torch.Tensor, dim: int, op: AxisOperator) -> torch.Tensor:
    """One-level analysis along ``dim`` (non-negative): ``[approx | detail]`` along it."""
    shape = x.shape
    (pre, post), n_in = _split(shape, dim), op.n_in
    out_shape = (*shape[:dim], op.n_out, *shape[dim + 1:])
    if op.dense is not None and post > 1:  # inner axis: left-multiply, no permutation copies
        x3 = x.contiguous().view(pre, n_in, post)  # strided batched GEMMs are ~2x slower
        return torch.matmul(op.dense.T, x3).view(out_shape)
    if op.dense is not None and n_in <= DENSE_MAX_LAST:
        return (x.reshape(pre, n_in) @ op.dense).view(out_shape)  # (pre, 2n)
    y = analyze_blocked(x.movedim(dim, -1).reshape(-1, n_in), op)  # (pre*post, 2n)
    return y.view(*shape[:dim], *shape[dim + 1:], op.n_out).movedim(-1, dim)


def synthesize(a: torch.Tensor | None, d: torch.Tensor | None, dim: int, op: AxisOperator
               ) -> torch.Tensor:
    """One-level synthesis along ``dim`` from approx/detail bands (None: zeros)."""
    shape = (a if a is not None else d).shape
    (pre, post), n = _split(shape, dim), op.n_in
    out_shape = (*shape[:dim], op.n_out, *shape[dim + 1:])
    bands = [(b, c) for b, c in enumerate((a, d)) if c is not None]
    if op.dense is not None and (post > 1 or n <= DENSE_MAX_LAST):
        y = None
        for b, c in bands:
            s = op.dense[b * n:(b + 1) * n]  # (n, n_out) rows of this band
            if post > 1:  # inner axis: (n_out, n) @ (pre, n, post) -> (pre, n_out, post)
                t = torch.matmul(s.T, c.contiguous().view(pre, n, post))
            else:  # last axis: (pre, n) @ (n, n_out)
                t = c.reshape(pre, n) @ s
            y = t if y is None else y.add_(t)
        return y.view(out_shape)
    cs = [None, None]
    for b, c in bands:
        cs[b] = c.movedim(dim, -1).reshape(-1, n)  # (pre*post, n)
    y = synthesize_blocked(cs[0], cs[1], op)  # (pre*post, n_out)
    return y.view(*shape[:dim], *shape[dim + 1:], op.n_out).movedim(-1, dim)


def synthesize_mallat(y: torch.Tensor, dim: int, op: AxisOperator) -> torch.Tensor:
    """One-level synthesis along ``dim`` of a Mallat-layout ``[approx | detail]`` tensor."""
    shape, n = y.shape, op.n_in
    pre, post = _split(shape, dim)
    out_shape = (*shape[:dim], op.n_out, *shape[dim + 1:])
    if op.dense is not None and post > 1:  # one batched GEMM over both bands
        y3 = y.contiguous().view(pre, 2 * n, post)  # strided batched GEMMs are ~2x slower
        return torch.matmul(op.dense.T, y3).view(out_shape)
    return synthesize(y.narrow(dim, 0, n), y.narrow(dim, n, n), dim, op)
