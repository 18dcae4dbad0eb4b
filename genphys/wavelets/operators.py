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
Signal Processing", 3rd ed., §7.3): every window of ``W`` samples (stride ``step``) is
multiplied by one small block matrix.  The signal, extended by two small wings
(``[left | x | right]``, one copy) and viewed as rows of ``step`` samples, makes each
window a few consecutive rows, so the product is one GEMM per row shift and band on
shifted row ranges, with no window copies.  Without autograd the windows inside the
signal are read in place instead (:mod:`genphys.wavelets.interior`).  Short axes use the
equivalent dense matrix, built by applying the blocked operator to the identity (one
source of truth); on inner axes it is applied by left multiplication, with no
permutation copy.
"""

from __future__ import annotations

import dataclasses
import functools
import threading
from dataclasses import dataclass

import numpy as np
import torch

from genphys.wavelets.filters import FilterBank, coeff_len, rec_len
from genphys.wavelets.interior import (
    InteriorPlan,
    edge_matmul,
    interior_matmul,
    interior_plan,
    plan_to,
)

# Dense matrices (no padding or permutation copies) win on short axes; measured on CPU:
DENSE_MAX_LAST = 32  # last (contiguous) axis: dense up to this length, else blocked
DENSE_MAX_INNER = 128  # inner axes: dense left-multiplication up to this length


_SCRATCH = threading.local()  # per-thread reusable buffers for intermediates (CPU, no grad)
SCRATCH_MAX = 1 << 23  # elements (32 MiB in float32): larger intermediates are not kept


def clear_scratch() -> None:
    """Free this thread's reused intermediate buffers (at most 5 tags x 2 dtypes x 2 modes)."""
    _SCRATCH.__dict__.pop("bufs", None)


def _scratch(tag: str, numel: int, like: torch.Tensor, grad: bool) -> torch.Tensor:
    """A flat buffer for an intermediate that never leaves this module.

    Fresh large CPU allocations cost page faults (about as much as a pass of the
    transform on a loaded machine), so without autograd they are reused per thread.
    """
    if grad or like.device.type != "cpu" or numel > SCRATCH_MAX:
        return like.new_empty(numel)
    bufs = _SCRATCH.__dict__.setdefault("bufs", {})
    key = (tag, like.dtype, torch.is_inference_mode_enabled())  # inference tensors stay inside
    buf = bufs.get(key)
    if buf is None or buf.numel() < numel:
        buf = bufs[key] = like.new_empty(numel)
    return buf[:numel]


def _needs_grad(*xs: torch.Tensor | None) -> bool:
    return torch.is_grad_enabled() and any(x is not None and x.requires_grad for x in xs)


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
    zero_wings: tuple[bool, bool]  # (left, right) wing is all zeros (no gather, no sync)
    step: int  # stride between windows (analysis 2q, synthesis q)
    blocks: int  # windows per signal (nb); each gives 2q outputs
    pieces: torch.Tensor  # analysis (T, step, 2q); synthesis (2, T, step, 2q)
    widths: tuple[int, ...]  # rows of piece t that touch the window (the rest are zero)
    window: int  # W: samples (analysis) or coefficients per band (synthesis) per window
    plan: InteriorPlan | None  # no-grad path reading the signal in place, where it applies

    @property
    def row_blocks(self) -> int:
        """Blocks of ``step`` samples per extended signal in the flat buffer (nb + T - 1)."""
        return self.blocks + len(self.widths) - 1


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
    rows = n_in // (2 * q) if n_in % (2 * q) == 0 else None  # x is whole block rows
    return _make(n_in, 2 * n, False, idx, blk[None], 2 * q, nb, rows, n_in, n // q)


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
    rows = nb if n_rec == 2 * q * nb else None  # output rows hold no trailing samples
    return _make(n, n_rec, True, idx, blk, q, nb, rows, min(n, q * nb), nb)


def _make(n_in: int, n_out: int, inverse: bool, idx: np.ndarray, blk: np.ndarray, step: int,
          nb: int, rows: int | None, length: int, full: int) -> AxisOperator:
    lead = next(i for i in range(len(idx)) if np.array_equal(idx[i:i + n_in], np.arange(n_in)))
    left, right = idx[:lead], idx[lead + n_in:]  # the extension is [left | x | right]
    if any((w < 0).any() and not (w < 0).all() for w in (left, right)):
        raise AssertionError("an extension wing mixes zeros and samples")  # never for MODES
    win = blk.shape[1]
    t = -(-win // step)  # a window covers T consecutive step-blocks of the flat buffer
    pieces = np.zeros((blk.shape[0], t * step, blk.shape[2]))
    pieces[:, :win] = blk  # (bands, T*step, 2q), zero rows past the window
    pieces = pieces.reshape(blk.shape[0], t, step, blk.shape[2])  # (bands, T, step, 2q)
    return AxisOperator(n_in, n_out, inverse, None, torch.as_tensor(left, dtype=torch.long),
                        torch.as_tensor(right, dtype=torch.long),
                        (bool((left < 0).any()), bool((right < 0).any())), step, nb,
                        torch.as_tensor(pieces if inverse else pieces[0]),
                        tuple(min(step, win - i * step) for i in range(t)), win,
                        None if rows is None else
                        interior_plan(idx, lead, win, step, nb, rows, length, full))


def _extend(bands: list[torch.Tensor], op: AxisOperator, grad: bool) -> torch.Tensor:
    """Extended signals of bands ``(M, n)`` as flat blocks ``(k, M*row_blocks + T - 1, step)``.

    Signal ``m`` of band ``b`` occupies blocks ``m*row_blocks ...`` as ``[left | x | right | 0]``;
    the ``T - 1`` trailing zero blocks let every window be read as shifted block rows.
    """
    m, n, k = bands[0][..., 0].numel(), bands[0].shape[-1], len(bands)
    length, lead = op.row_blocks * op.step, len(op.left)
    size = m * length + (len(op.widths) - 1) * op.step
    flat = _scratch("extend", k * size, bands[0], grad).view(k, size)
    e = flat[:, :m * length].view(k, m, length)  # (k, M, L)
    for b, x in enumerate(bands):
        eb = e[b].view(*x.shape[:-1], length)  # (..., L): strided bands are copied once
        eb[..., lead:lead + n] = x
        for idx, zero, at in ((op.left, op.zero_wings[0], 0),
                              (op.right, op.zero_wings[1], lead + n)):
            if len(idx):
                wing = eb[..., at:at + len(idx)]
                wing.zero_() if zero else wing.copy_(x.index_select(-1, idx))
    e[..., lead + n + len(op.right):].zero_()  # read by discarded windows only
    flat[:, m * length:].zero_()
    return flat.view(k, -1, op.step)


def _windows_matmul(flat: torch.Tensor, pieces: torch.Tensor, widths: tuple[int, ...],
                    grad: bool) -> torch.Tensor:
    """``sum_b sum_t flat[b, i + t] @ pieces[b, t]`` for every block row ``i``: no window copies."""
    rows, cols = flat.shape[1] - len(widths) + 1, pieces.shape[-1]
    y = None
    for b in range(flat.shape[0]):
        for t, w in enumerate(widths):
            x, p = flat[b, t:t + rows, :w], pieces[b, t, :w]  # (rows, w), (w, 2q)
            if y is None:
                y = x @ p if grad else torch.mm(x, p, out=_scratch(
                    "gemm", rows * cols, flat, grad).view(rows, cols))
            else:  # in place on a fresh mm output: autograd-safe (mm saves only its inputs)
                y.addmm_(x, p)
    return y  # (rows, 2q)


def _window_blocks(op: AxisOperator) -> torch.Tensor:
    """The window matrices ``(bands, W, 2q)`` (the pieces without their zero padding)."""
    p = op.pieces if op.inverse else op.pieces.unsqueeze(0)
    return p.reshape(p.shape[0], -1, p.shape[-1])[:, :op.window]


def _to_mallat(out: torch.Tensor, y: torch.Tensor, lo: int, hi: int) -> None:
    """Write windows ``lo..hi`` of ``y (M, hi - lo, 2, q)`` into ``out (M, 2, n)``."""
    q, n = y.shape[-1], out.shape[-1]
    full = max(lo, min(hi, n // q))
    out[..., lo * q:full * q].view(*out.shape[:2], full - lo, q).copy_(
        y[:, :full - lo].transpose(1, 2))
    if hi > full:  # a partial last window
        out[..., full * q:] = y[:, full - lo:].transpose(1, 2).reshape(
            *out.shape[:2], -1)[..., :n - full * q]


def _analyze_in_place(x: torch.Tensor, op: AxisOperator) -> torch.Tensor:
    """No-grad blocked analysis reading ``x (..., n_in)`` in place (see :mod:`.interior`)."""
    plan, m, q, n = op.plan, x[..., 0].numel(), op.pieces.shape[-1] // 2, op.n_out // 2
    if x.is_contiguous():
        x2 = x.view(m, op.n_in)
    else:  # one copy, into a reused buffer
        x2 = _scratch("signal", x.numel(), x, False).view(x.shape).copy_(x).view(m, op.n_in)
    blk = _window_blocks(op)
    y = _scratch("gemm", m * plan.rows * 2 * q, x, False).view(m * plan.rows, 2 * q)
    interior_matmul([x2], blk, plan, y)
    edges = edge_matmul([x2], blk, plan).view(m, -1, 2, q)  # (M, E, 2, q)
    (j0, j1), out = plan.inner, x.new_empty(m, 2, n)
    _to_mallat(out, y.view(m, plan.rows, 2, q)[:, j0:j1], j0, j1)
    _to_mallat(out, edges[:, :j0], 0, j0)
    _to_mallat(out, edges[:, j0:], j1, plan.blocks)
    return out.view(m, 2 * n)


def analyze_blocked(x: torch.Tensor, op: AxisOperator) -> torch.Tensor:
    """Blocked analysis of ``x (..., n_in)`` along its last axis -> Mallat ``(M, 2n)``."""
    m, q, n, grad = x[..., 0].numel(), op.pieces.shape[-1] // 2, op.n_out // 2, _needs_grad(x)
    if op.plan is not None and not grad:
        return _analyze_in_place(x, op)
    flat = _extend([x], op, grad)  # (1, M*row_blocks + T - 1, 2q)
    y = _windows_matmul(flat, op.pieces.unsqueeze(0), op.widths, grad)  # (M*rb, 2q)
    y = y.view(m, op.row_blocks, 2, q)  # block j of signal m: [approx q | detail q]
    out = y.new_empty(m, 2, n)
    full = n // q
    out[..., :full * q].view(m, 2, full, q).copy_(y[:, :full].transpose(1, 2))
    if n > full * q:  # a partial last block
        out[..., full * q:] = y[:, full, :, :n - full * q]
    return out.view(m, 2 * n)


def synthesize_blocked(a: torch.Tensor | None, d: torch.Tensor | None, op: AxisOperator
                       ) -> torch.Tensor:
    """Blocked synthesis of bands ``(..., n)`` (None: zeros) -> contiguous ``(M, n_out)``."""
    given, grad = [b for b, c in enumerate((a, d)) if c is not None], _needs_grad(a, d)
    if op.plan is not None and not grad:
        return _synthesize_in_place([(a, d)[b] for b in given], given, op)
    flat = _extend([(a, d)[b] for b in given], op, grad)  # (k, M*row_blocks + T - 1, q)
    y = _windows_matmul(flat, op.pieces[given], op.widths, grad)  # (M*row_blocks, 2q)
    m = (a if a is not None else d)[..., 0].numel()
    y = y.view(m, -1)[:, :op.n_out]  # drop each signal's trailing windows
    return y.clone(memory_format=torch.contiguous_format)  # never a scratch view


def _synthesize_in_place(bands: list[torch.Tensor], given: list[int], op: AxisOperator
                         ) -> torch.Tensor:
    """No-grad blocked synthesis straight into a contiguous ``(M, n_out)`` output."""
    plan, n, cols = op.plan, op.n_in, op.pieces.shape[-1]
    m, size = bands[0][..., 0].numel(), plan.rows * plan.step
    bufs = []
    for b, band in zip(given, bands):
        if band.is_contiguous() and n == size:
            bufs.append(band.view(m, n))
            continue
        buf = _scratch(f"band{b}", m * size, band, False).view(m, size)
        buf.view(*band.shape[:-1], size)[..., :plan.length] = band[..., :plan.length]
        buf[:, plan.length:].zero_()  # read only by windows that are recomputed
        bufs.append(buf)
    blk = _window_blocks(op)[given]
    y = bands[0].new_empty(m * plan.rows, cols)  # (M * nb, 2q) = (M, n_out): the output
    interior_matmul(bufs, blk, plan, y)
    edges, (j0, j1) = edge_matmul(bands, blk, plan), plan.inner  # (M, E, 2q)
    y3 = y.view(m, plan.rows, cols)
    y3[:, :j0] = edges[:, :j0]
    y3[:, j1:] = edges[:, j0:]
    return y.view(m, op.n_out)


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
    return dataclasses.replace(op, dense=dense, left=op.left.to(device),
                               right=op.right.to(device), pieces=op.pieces.to(device, dtype),
                               plan=None if op.plan is None else plan_to(op.plan, device))


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
    if post == 1:  # last axis: the extension buffer is the only copy
        return analyze_blocked(x, op).view(out_shape)
    y = analyze_blocked(x.movedim(dim, -1), op)  # (pre*post, 2n)
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
    cs = [None if c is None else c.movedim(dim, -1) for c in (a, d)]  # (..., n) views
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
