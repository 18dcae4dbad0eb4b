"""genphys.wavelets: exactness vs pywavelets, reconstruction, gradients, whiteness, packing."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import pywt
import torch

import genphys.wavelets as W
from genphys.errors import UserInputError

WAVELETS = ["haar", "db2", "db4", "sym4", "coif2", "bior2.4", "rbio2.2"]
ORTHOGONAL = ["haar", "db2", "db4", "sym4", "coif2"]
# pywt's sym4 taps satisfy orthonormality only to ~7e-12 (pywt itself reconstructs with
# that error); every other wavelet here is exact to ~1e-15
TAP_TOL = {"sym4": 1e-10}
MODES = ["periodization", "symmetric", "zero"]
# (shape, axes): 1D, 2D, 3D, non-contiguous and reversed axes, a long last axis (blocked
# GEMM path, > 32 samples) and a long inner axis (blocked path after a permutation, > 128)
CASES = [
    ((3, 16), (-1,)),
    ((2, 3, 8, 16), (-2, -1)),
    ((2, 8, 8, 16), (1, 2, 3)),
    ((8, 3, 16), (0, 2)),
    ((8, 3, 16), (2, 0)),
    ((2, 72), (-1,)),
    ((3, 264, 2), (1,)),
]


def _pywt(fn, *args, **kw):
    with warnings.catch_warnings():  # pywt warns (only) when a level exceeds dwt_max_level
        warnings.simplefilter("ignore", UserWarning)
        return fn(*args, **kw)


def _max_err(ours: list, ref: list) -> float:
    err = float(np.abs(ours[0].numpy() - ref[0]).max())
    for d, r in zip(ours[1:], ref[1:]):
        assert list(d) == list(r)  # same keys, same order
        err = max(err, max(float(np.abs(d[k].numpy() - r[k]).max()) for k in r))
    return err


@pytest.mark.parametrize("case", range(len(CASES)))
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("wavelet", WAVELETS)
def test_matches_pywt_float64(wavelet, mode, case):
    shape, axes = CASES[case]
    x = np.random.default_rng(case).standard_normal(shape)
    for level in (1, 2, 3):
        ref = _pywt(pywt.wavedecn, x, wavelet, mode=mode, level=level, axes=axes)
        ours = W.wavedecn(torch.from_numpy(x), wavelet, level=level, axes=axes, mode=mode)
        assert [c.shape for c in ours[1:][0].values()] == [c.shape for c in ref[1].values()]
        assert _max_err(ours, ref) <= 1e-12
        rec = W.waverecn(ours, wavelet, axes=axes, mode=mode).numpy()
        rec_ref = _pywt(pywt.waverecn, ref, wavelet, mode=mode, axes=axes)
        assert rec.shape == rec_ref.shape
        assert np.abs(rec - rec_ref).max() <= 1e-12


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("wavelet", WAVELETS)
def test_matches_pywt_float32(wavelet, mode):
    x = np.random.default_rng(1).standard_normal((2, 3, 16, 40)).astype(np.float32)
    ref = _pywt(pywt.wavedecn, x, wavelet, mode=mode, level=2, axes=(-2, -1))
    ours = W.wavedecn(torch.from_numpy(x), wavelet, level=2, axes=(-2, -1), mode=mode)
    assert ours[0].dtype == torch.float32
    assert _max_err(ours, ref) <= 1e-5
    rec = W.waverecn(ours, wavelet, axes=(-2, -1), mode=mode)
    rec_ref = _pywt(pywt.waverecn, ref, wavelet, mode=mode, axes=(-2, -1))
    assert np.abs(rec.numpy() - rec_ref).max() <= 1e-5


@pytest.mark.parametrize("mode", ["symmetric", "zero"])
@pytest.mark.parametrize("wavelet", ["db2", "bior2.4"])
def test_odd_lengths_match_pywt(wavelet, mode):
    x = np.random.default_rng(2).standard_normal((2, 9, 13))
    ref = _pywt(pywt.wavedecn, x, wavelet, mode=mode, level=2, axes=(1, 2))
    ours = W.wavedecn(torch.from_numpy(x), wavelet, level=2, axes=(1, 2), mode=mode)
    assert _max_err(ours, ref) <= 1e-12
    rec = W.waverecn(ours, wavelet, axes=(1, 2), mode=mode).numpy()
    rec_ref = _pywt(pywt.waverecn, ref, wavelet, mode=mode, axes=(1, 2))
    assert rec.shape == rec_ref.shape == (2, 10, 14)  # pywt returns the even length, as we do
    assert np.abs(rec - rec_ref).max() <= 1e-12
    assert np.abs(rec[:, :9, :13] - x).max() <= 1e-12  # perfect reconstruction of the data


def test_dwtn_idwtn_match_pywt():
    x = np.random.default_rng(3).standard_normal((4, 8, 6))
    ref = pywt.dwtn(x, "sym4", mode="symmetric", axes=(0, 2))
    ours = W.dwtn(torch.from_numpy(x), "sym4", axes=(0, 2), mode="symmetric")
    assert list(ours) == list(ref)
    assert max(np.abs(ours[k].numpy() - ref[k]).max() for k in ref) <= 1e-12
    partial = {k: (v if k != "dd" else None) for k, v in ours.items()}  # None = zeros, as pywt
    ref_partial = {k: (v if k != "dd" else None) for k, v in ref.items()}
    rec = W.idwtn(partial, "sym4", axes=(0, 2), mode="symmetric").numpy()
    rec_ref = pywt.idwtn(ref_partial, "sym4", mode="symmetric", axes=(0, 2))
    assert np.abs(rec - rec_ref).max() <= 1e-12


@pytest.mark.parametrize("wavelet", WAVELETS + ["db10", "coif5"])
def test_perfect_reconstruction_periodization(wavelet):
    x = torch.randn(2, 3, 16, 64, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    coeffs = W.wavedecn(x, wavelet, level=3, axes=(-2, -1))
    err = (W.waverecn(coeffs, wavelet, axes=(-2, -1)) - x).abs().max().item()
    xn = x.numpy()
    ref = _pywt(pywt.waverecn, _pywt(pywt.wavedecn, xn, wavelet, "periodization", 3, (-2, -1)),
                wavelet, "periodization", (-2, -1))
    assert err <= TAP_TOL.get(wavelet, 1e-12)
    assert err <= max(1e-14, 1.01 * np.abs(ref - xn).max())  # never worse than pywt


@pytest.mark.parametrize("mode", ["periodization", "symmetric"])
def test_gradcheck(mode):
    x = torch.randn(1, 2, 8, 8, dtype=torch.float64, requires_grad=True)

    def fn(x):
        coeffs = W.wavedecn(x, "db2", level=2, axes=(-2, -1), mode=mode)
        flat = [coeffs[0].reshape(-1)] + [v.reshape(-1) for d in coeffs[1:] for v in d.values()]
        return torch.cat(flat)

    assert torch.autograd.gradcheck(fn, (x,))
    y = torch.randn(1, 2, 8, 8, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda y: W.waverecn(W.wavedecn(y, "bior2.4", 2), "bior2.4"),
                                    (y,))


def _matrix(fn, n: int) -> torch.Tensor:
    """The matrix of a linear map on R^n (columns: images of the basis vectors)."""
    return torch.stack([fn(e) for e in torch.eye(n, dtype=torch.float64)], dim=1)


@pytest.mark.parametrize("wavelet", ORTHOGONAL)
def test_orthonormal_matrix(wavelet):
    m = W.WaveletChannels(wavelet, level=2, axes=(-2, -1))
    mat = _matrix(lambda e: m(e.view(1, 1, 8, 8)).reshape(-1), 64)  # (64, 64)
    eye, tol = torch.eye(64, dtype=torch.float64), TAP_TOL.get(wavelet, 1e-12)
    assert torch.allclose(mat.T @ mat, eye, atol=tol, rtol=0)
    assert torch.allclose(mat @ mat.T, eye, atol=tol, rtol=0)


def test_biorthogonal_is_not_orthonormal_but_invertible():
    m = W.WaveletChannels("bior2.4", level=1, axes=(-1,))
    mat = _matrix(lambda e: m(e.view(1, 1, 16)).reshape(-1), 16)
    inv = _matrix(lambda e: m.inverse(e.view(1, 2, 8)).reshape(-1), 16)
    assert (mat.T @ mat - torch.eye(16, dtype=torch.float64)).abs().max() > 1e-2
    assert torch.allclose(inv @ mat, torch.eye(16, dtype=torch.float64), atol=1e-12, rtol=0)


def test_white_noise_stays_white():
    n = 20000
    x = torch.randn(n, 1, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    y = W.WaveletChannels("db4", level=2, axes=(-2, -1))(x).reshape(n, -1)  # (n, 64)
    cov = y.T @ y / n
    assert (cov - torch.eye(64, dtype=torch.float64)).abs().max() < 6 / n**0.5


@pytest.mark.parametrize("level", [1, 2, 3])
def test_pack_round_trip_and_layout(level):
    x = torch.randn(2, 3, 16, 32, dtype=torch.float64)
    coeffs = W.wavedecn(x, "db2", level=level)
    y = W.pack(coeffs)
    assert y.shape == (2, 3 * 4**level, 16 // 2**level, 32 // 2**level)
    back = W.unpack(y, level)
    assert torch.equal(back[0], coeffs[0])
    assert all(torch.equal(b[k], c[k]) for b, c in zip(back[1:], coeffs[1:]) for k in c)
    assert torch.equal(W.pack(back), y)
    assert torch.allclose(y.norm(), x.norm(), rtol=1e-13)  # a permutation of an orthonormal map
    assert torch.equal(y[:, :3], coeffs[0])  # approx first: the coarse field
    d1 = coeffs[-1]
    for band, key in enumerate(["ad", "da", "dd"]):  # finest level: s2d applied level-1 times
        for c in range(3):
            t = band * 3 + c
            if level == 1:
                assert torch.equal(y[:, 3 + t], d1[key][:, c])
            if level == 2:  # channel 3 + 9 (coarser details) + 4 t + offset(i, j)
                for i in range(2):
                    for j in range(2):
                        ch = 12 + 4 * t + 2 * i + j
                        assert torch.equal(y[:, ch], d1[key][:, c, i::2, j::2])


def test_space_to_depth_round_trip_any_axes():
    x = torch.randn(4, 3, 6, 8)
    y = W.space_to_depth(x, axes=(0, 3), channel_dim=1)
    assert y.shape == (2, 12, 6, 4)
    assert torch.equal(y[1, 1 * 4 + 2 * 1 + 0], x[3, 1, :, 0::2])  # k=1, (i0, i3) = (1, 0)
    assert torch.equal(W.depth_to_space(y, axes=(0, 3), channel_dim=1), x)


def test_channels_last_layout_round_trip():
    x = torch.randn(2, 8, 16, 3, dtype=torch.float64)  # (B, T, X, C): channels last
    m = W.WaveletChannels("haar", level=2, axes=(1, 2), channel_dim=-1)
    y = m(x)
    assert y.shape == (2, 2, 4, 3 * 16)
    assert torch.allclose(y[..., :3], W.wavedecn(x, "haar", 2, axes=(1, 2))[0])
    assert torch.allclose(m.inverse(y), x, atol=1e-12, rtol=0)
    assert torch.allclose(y.norm(), x.norm(), rtol=1e-13)


def test_channels_module_3d_round_trip_and_gradients():
    m = W.WaveletChannels("sym4", level=2, axes=(-3, -2, -1))
    x = torch.randn(2, 2, 8, 8, 16, requires_grad=True)
    y = m(x)
    assert y.shape == (2, 2 * 64, 2, 2, 4)
    assert torch.allclose(m.inverse(y), x, atol=1e-5)
    y.square().sum().backward()
    assert torch.allclose(x.grad, 2 * x, atol=1e-4)  # orthonormal: d|Wx|^2/dx = 2x
    assert list(m.parameters()) == [] and m.state_dict() == {}


@pytest.mark.parametrize("wavelet", ["haar", "db4", "bior2.4"])
@pytest.mark.parametrize("axes", [(-1,), (-2, -1), (-3, -2, -1)])
def test_upsample_then_downsample_is_identity(wavelet, axes):
    x = torch.randn(2, 1, 4, 4, 8, dtype=torch.float64)
    for levels in (1, 2):
        fine = W.upsample(x, wavelet, levels, axes)
        assert [fine.shape[a] for a in axes] == [x.shape[a] * 2**levels for a in axes]
        assert torch.allclose(W.downsample(fine, wavelet, levels, axes), x, atol=1e-12, rtol=0)


def test_multires_preserves_constant_amplitude():
    c = torch.full((1, 1, 16, 32), 2.5, dtype=torch.float64)
    assert torch.allclose(W.downsample(c, "db4", 2), torch.full((1, 1, 4, 8), 2.5,
                                                                 dtype=torch.float64))
    assert torch.allclose(W.upsample(c, "db4", 1), torch.full((1, 1, 32, 64), 2.5,
                                                               dtype=torch.float64))
    assert W.amplitude_gain(2, 3) == 8.0


def test_drop_and_zero_levels():
    x = torch.randn(1, 2, 16, 16, dtype=torch.float64)
    coeffs = W.wavedecn(x, "db2", level=3)
    coarse = W.waverecn(W.drop_levels(coeffs, 1), "db2")  # level-1 approximation
    assert torch.allclose(coarse, W.wavedecn(x, "db2", 1)[0], atol=1e-12)
    refilled = W.zero_levels(W.drop_levels(coeffs, 2), 2)
    zeroed = [coeffs[0], coeffs[1]] + [{k: torch.zeros_like(v) for k, v in d.items()}
                                       for d in coeffs[2:]]
    assert [d["dd"].shape for d in refilled[1:]] == [d["dd"].shape for d in coeffs[1:]]
    assert torch.allclose(W.waverecn(refilled, "db2"), W.waverecn(zeroed, "db2"), atol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_dtype_and_device_preserved(dtype):
    x = torch.randn(2, 2, 8, 16).to(dtype)
    coeffs = W.DWT("db2", level=2).to(dtype)(x)
    assert all(c.dtype == dtype and c.device == x.device for c in
               [coeffs[0], *(v for d in coeffs[1:] for v in d.values())])
    rec = W.IDWT("db2", level=2)(coeffs)
    assert rec.dtype == dtype
    tol = {torch.float16: 1e-2, torch.bfloat16: 5e-2}.get(dtype, 1e-5)
    assert torch.allclose(rec.float(), x.float(), atol=tol * 4)
    assert W.DWT("db2").to(dtype).filters.dtype == torch.float64  # exact taps kept


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu():
    x = torch.randn(2, 3, 16, 64, dtype=torch.float64)
    m = W.WaveletChannels("db4", level=2).cuda()
    y = m(x.cuda())
    assert y.device.type == "cuda" and m.filters.device.type == "cuda"
    assert torch.allclose(y.cpu(), W.WaveletChannels("db4", level=2)(x), atol=1e-12)


def test_batch_dims_untouched_and_deterministic():
    x = torch.randn(5, 3, 8, 16, dtype=torch.float64)
    whole = W.wavedecn(x, "coif2", 2, mode="symmetric")
    one = W.wavedecn(x[3:4], "coif2", 2, mode="symmetric")
    assert torch.allclose(whole[0][3:4], one[0], atol=1e-13, rtol=0)
    again = W.wavedecn(x, "coif2", 2, mode="symmetric")
    assert torch.equal(whole[1]["dd"], again[1]["dd"])


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"wavelet": "db99"}, r"Unknown wavelet 'db99'.*haar.*db2"),
    ({"wavelet": "morl"}, r"Unknown wavelet 'morl'"),
    ({"shape": (1, 12, 16), "level": 3}, r"length 12, not divisible by 2\*\*level = 8"),
    ({"shape": (1, 8, 8), "level": 4}, r"level=4 is too large for axis 1 of length 8"),
    ({"level": 0}, r"level=0 is invalid"),
    ({"mode": "reflect"}, r"mode='reflect' is not supported; use one of periodization"),
    ({"axes": (1, -2)}, r"repeats an axis"),
    ({"axes": (5,)}, r"axes=\(5,\) is invalid"),
])
def test_clear_errors(kwargs, match):
    args = {"wavelet": "db2", "shape": (1, 8, 16), "level": 1, "mode": "periodization",
            "axes": (-2, -1), **kwargs}
    with pytest.raises(UserInputError, match=match) as err:
        W.wavedecn(torch.zeros(args["shape"]), args["wavelet"], args["level"], args["axes"],
                   args["mode"])
    msg = str(err.value)
    assert "\n" not in msg and msg.endswith(".")


def test_module_and_packing_errors():
    with pytest.raises(UserInputError, match="Unknown wavelet 'nope'"):
        W.DWT("nope")
    with pytest.raises(UserInputError, match="needs mode='periodization'"):
        W.WaveletChannels("db2", mode="symmetric")
    with pytest.raises(UserInputError, match="Cannot unpack 10 channels"):
        W.unpack(torch.zeros(1, 10, 4, 4), level=1)
    with pytest.raises(UserInputError, match="floating-point"):
        W.wavedecn(torch.zeros(1, 8, 8, dtype=torch.long), "haar")
