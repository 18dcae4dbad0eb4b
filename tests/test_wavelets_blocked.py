"""genphys.wavelets blocked paths on long last axes: in-place (no-grad) vs extension (grad)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import pywt
import torch

import genphys.wavelets as W
from genphys.wavelets.filters import filter_bank
from genphys.wavelets.operators import axis_operator, clear_scratch

CPU = torch.device("cpu")


def _ref(x: np.ndarray, wavelet: str, mode: str, level: int) -> list:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return pywt.wavedecn(x, wavelet, mode=mode, level=level, axes=(-1,))


def _err(ours: list, ref: list) -> float:
    err = float(np.abs(ours[0].numpy() - ref[0]).max())
    return max([err] + [float(np.abs(o["d"].numpy() - r["d"]).max())
                        for o, r in zip(ours[1:], ref[1:])])


@pytest.mark.parametrize("mode", ["periodization", "symmetric", "zero"])
@pytest.mark.parametrize("wavelet", ["haar", "db4", "bior2.4", "coif5", "dmey"])
@pytest.mark.parametrize("n", [128, 200])
def test_long_last_axis_matches_pywt(wavelet, mode, n):
    q = max(8, filter_bank(wavelet).length)
    op = axis_operator(filter_bank(wavelet), n, mode, False, torch.float64, CPU)
    assert (op.plan is not None) == (n % (2 * q) == 0)  # both the in-place and the fallback
    x = np.random.default_rng(n).standard_normal((2, 3, n))
    ref = _ref(x, wavelet, mode, 2)
    ours = W.wavedecn(torch.from_numpy(x), wavelet, 2, (-1,), mode)
    assert _err(ours, ref) <= 1e-12
    rec = W.waverecn(ours, wavelet, (-1,), mode)
    assert rec.is_contiguous()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        rec_ref = pywt.waverecn(ref, wavelet, mode=mode, axes=(-1,))
    assert np.abs(rec.numpy() - rec_ref).max() <= 1e-12


@pytest.mark.parametrize("mode", ["periodization", "symmetric"])
def test_grad_path_equals_in_place_path(mode):
    x = torch.randn(4, 256, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    fast = W.wavedecn(x, "db4", 2, (-1,), mode)
    slow = W.wavedecn(x.clone().requires_grad_(), "db4", 2, (-1,), mode)
    assert slow[0].requires_grad
    assert torch.allclose(fast[0], slow[0].detach(), atol=1e-13, rtol=0)
    assert torch.allclose(fast[1]["d"], slow[1]["d"].detach(), atol=1e-13, rtol=0)
    rec_fast = W.waverecn(fast, "db4", (-1,), mode)
    rec_slow = W.waverecn([c.detach().requires_grad_() if isinstance(c, torch.Tensor) else
                           {k: v.detach().requires_grad_() for k, v in c.items()} for c in slow],
                          "db4", (-1,), mode)
    assert rec_slow.requires_grad
    assert torch.allclose(rec_fast, rec_slow.detach(), atol=1e-13, rtol=0)


def test_gradcheck_blocked_last_axis():
    x = torch.randn(1, 96, dtype=torch.float64, requires_grad=True)

    def fn(x):
        coeffs = W.wavedecn(x, "db2", level=1, axes=(-1,), mode="symmetric")
        return W.waverecn(coeffs, "db2", axes=(-1,), mode="symmetric") * 1.5 + coeffs[0].sum()

    assert torch.autograd.gradcheck(fn, (x,))


def test_outputs_do_not_share_reused_buffers():
    x = torch.randn(8, 2, 64, 128)
    first = W.wavedecn(x, "db4", 1, (-2, -1))
    kept = [first[0].clone(), {k: v.clone() for k, v in first[1].items()}]
    W.wavedecn(torch.randn(8, 2, 64, 128), "db4", 1, (-2, -1))  # reuses scratch buffers
    assert torch.equal(first[0], kept[0])
    assert all(torch.equal(first[1][k], kept[1][k]) for k in kept[1])
    rec = W.waverecn(first, "db4", (-2, -1))
    W.waverecn(W.wavedecn(torch.randn(8, 2, 64, 128), "db4", 1, (-2, -1)), "db4", (-2, -1))
    assert torch.allclose(rec, x, atol=1e-5)


def test_inference_mode_and_no_grad_share_nothing():
    x = torch.randn(4, 2, 64, 128)
    ref = W.waverecn(W.wavedecn(x, "db4", 2), "db4")
    with torch.inference_mode():
        inf = W.waverecn(W.wavedecn(x, "db4", 2), "db4")
    with torch.no_grad():
        again = W.waverecn(W.wavedecn(x, "db4", 2), "db4")
    assert torch.equal(ref, inf) and torch.equal(ref, again)
    clear_scratch()  # frees the reused buffers; the next call allocates them again
    assert torch.equal(W.waverecn(W.wavedecn(x, "db4", 2), "db4"), ref)
