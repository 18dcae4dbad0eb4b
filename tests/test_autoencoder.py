"""Mesh autoencoder: shapes in 1D–3D, masks, gradients, permutation invariance, fast path,
save/load, latent cache, neighbour search against brute force, a tiny overfit."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch

from genphys.autoencoder import MeshAutoencoder, build_plan, interpolate, kernel_integral
from genphys.autoencoder.data import PointTrajectory, encode_file, pad, read_trajectories
from genphys.autoencoder.evaluate import (
    evaluate,
    fourier_upsample,
    p1_interpolate,
    reconstruct,
    rel_l2,
)
from genphys.autoencoder.task import reconstruction_loss
from genphys.errors import UserInputError

GRIDS = {1: (8,), 2: (8, 4), 3: (4, 4, 4)}


def tiny(dim: int = 2, **kw) -> MeshAutoencoder:
    """A small autoencoder on the unit box (2×1 box in 2D)."""
    torch.manual_seed(0)
    hi = (2.0, 1.0) if dim == 2 else (1.0,) * dim
    args = dict(in_channels=2, dim=dim, grid=GRIDS[dim], levels=1, latent_channels=3,
                width=8, domain_lo=(0.0,) * dim, domain_hi=hi, n_freq=2)
    return MeshAutoencoder(**{**args, **kw}).double()


def cloud(b: int, n: int, dim: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Random points in the box and smooth two-channel fields on them."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(b, n, dim, generator=g, dtype=torch.float64)
    if dim == 2:
        x[..., 0] *= 2
    f = torch.stack([torch.sin(3 * x.sum(-1)), torch.cos(2 * x[..., 0])], -1)
    return x, f


@pytest.mark.parametrize("dim", [1, 2, 3])
def test_shapes_and_every_parameter_gets_a_gradient(dim):
    model = tiny(dim)
    x, f = cloud(2, 50, dim)
    z = model.encode(x, f)
    assert z.shape == (2, 3, *(g // 2 for g in GRIDS[dim])) and z.shape[1:] == model.latent_shape
    y = model.decode(z, x[:, :17])
    assert y.shape == (2, 17, 2)
    model(x, f).square().mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert not missing


@pytest.mark.parametrize("dim", [1, 2, 3])
def test_padding_nodes_change_nothing(dim):
    model = tiny(dim)
    x, f = cloud(1, 40, dim)
    x_pad = torch.cat([x, 5 * torch.rand(1, 13, dim, dtype=x.dtype) - 2], 1)  # (1, 53, d)
    f_pad = torch.cat([f, torch.full((1, 13, 2), float("nan"), dtype=f.dtype)], 1)
    mask = torch.arange(53)[None] < 40
    torch.testing.assert_close(model.encode(x_pad, f_pad, mask), model.encode(x, f),
                               rtol=1e-12, atol=1e-12)


def test_batch_of_different_meshes_equals_one_by_one():
    model = tiny(2)
    (x1, f1), (x2, f2) = cloud(1, 30, 2, 1), cloud(1, 45, 2, 2)
    coords, vals, mask = pad([x1[0], x2[0]], [f1[0], f2[0]])
    z = model.encode(coords.double(), vals.double(), mask)
    torch.testing.assert_close(z[0], model.encode(x1, f1)[0], rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(z[1], model.encode(x2, f2)[0], rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("dim", [1, 2, 3])
def test_encoder_is_permutation_invariant(dim):
    model = tiny(dim)
    x, f = cloud(2, 60, dim)
    perm = torch.randperm(60, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(model.encode(x[:, perm], f[:, perm]), model.encode(x, f),
                               rtol=1e-10, atol=1e-10)


def test_kernel_integral_matches_brute_force_pairs():
    """The bucketed search finds exactly the (node, cell) pairs within the radius."""
    x, _ = cloud(1, 200, 2, 5)
    v = torch.randn(1, 200, 3, dtype=x.dtype)
    grid, radius = (8, 4), 1.3
    lo, hi = torch.zeros(2, dtype=x.dtype), torch.tensor([2.0, 1.0], dtype=x.dtype)
    mom, wsum = kernel_integral(build_plan(x, None, grid, lo, hi, radius, False), v)
    delta = (hi - lo) / torch.tensor(grid)
    ii, jj = torch.meshgrid(torch.arange(8), torch.arange(4), indexing="ij")
    centres = (torch.stack([ii, jj], -1).reshape(-1, 2) + 0.5) * delta  # (G, 2)
    rel = (x[0, None] - centres[:, None]) / (delta * radius)  # (G, N, 2) dense reference
    w = (1 - rel.square().sum(-1)).clamp_min(0) ** 2  # (G, N)
    torch.testing.assert_close(wsum, w.sum(1), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(mom[:, :3], w @ v[0], rtol=1e-12, atol=1e-12)
    first = torch.einsum("gn,gnk,nf->gkf", w, rel, v[0]).reshape(32, -1)  # (G, d*F)
    torch.testing.assert_close(mom[:, 3:], first, rtol=1e-12, atol=1e-12)


def test_periodic_neighbours_wrap_around():
    lo, hi = torch.zeros(1, dtype=torch.float64), torch.ones(1, dtype=torch.float64)
    x = torch.tensor([[[0.01]]], dtype=torch.float64)  # next to the left edge
    _, wsum = kernel_integral(build_plan(x, None, (10,), lo, hi, 1.0, True),
                              torch.ones(1, 1, 1, dtype=torch.float64))
    assert wsum[9] > 0 and wsum[0] > 0 and wsum[2:9].abs().sum() == 0
    _, wsum = kernel_integral(build_plan(x, None, (10,), lo, hi, 1.0, False),
                              torch.ones(1, 1, 1, dtype=torch.float64))
    assert wsum[9] == 0 and wsum[0] > 0


def test_interpolate_is_exact_for_linear_functions():
    feat_grid = (torch.arange(8, dtype=torch.float64) + 0.5) / 8  # cell centres of [0, 1]
    feat = (2 * feat_grid[:, None] + 3 * feat_grid[None, :] / 2)[None, None]  # (1, 1, 8, 8)
    q = torch.rand(1, 50, 2, dtype=torch.float64) * (7 / 8) + 1 / 16  # inside the centres' hull
    lo, hi = torch.zeros(2, dtype=torch.float64), torch.ones(2, dtype=torch.float64)
    val, local = interpolate(feat, q, lo, hi, False)
    torch.testing.assert_close(val[0, :, 0], 2 * q[0, :, 0] + 1.5 * q[0, :, 1])
    assert local.abs().max() <= 0.5


def test_grid_fast_path_equals_general_path():
    model = tiny(2, periodic=True, domain_hi=(1.0, 1.0))
    fields = torch.randn(3, 2, 16, 16, dtype=torch.float64)
    z_fast = model.encode_grid(fields)
    coords = model.grid_coords((16, 16))[None].expand(3, -1, -1)  # (3, 256, 2)
    z = model.encode(coords, fields.flatten(2).transpose(1, 2))
    torch.testing.assert_close(z_fast, z, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(model.encode_grid(fields), z_fast, rtol=0, atol=0)  # cached


def test_trajectory_encode_decode_shapes():
    model = tiny(2)
    x, f = cloud(2, 30, 2)
    frames = torch.stack([f, 2 * f, -f], 1)  # (2, 3, 30, 2)
    z = model.encode_trajectory(x, frames)
    assert z.shape == (2, 3, *model.latent_shape)
    torch.testing.assert_close(z[:, 1], model.encode(x, 2 * f))
    assert model.decode_trajectory(z, x[:, :11]).shape == (2, 3, 11, 2)


def test_latent_normalization_round_trip():
    model = tiny(2)
    x, f = cloud(4, 40, 2)
    raw = model.encode(x, f, normalize=False)
    model.set_latent_stats(raw)
    z = model.encode(x, f)
    flat = z.transpose(0, 1).flatten(1)  # (C_lat, B*G)
    torch.testing.assert_close(flat.mean(1), torch.zeros(3, dtype=z.dtype), atol=1e-10, rtol=0)
    torch.testing.assert_close(flat.std(1), torch.ones(3, dtype=z.dtype), atol=1e-10, rtol=0)
    torch.testing.assert_close(model.decode(z, x), model(x, f))


def test_save_load_round_trip(tmp_path):
    model = tiny(3)
    x, f = cloud(2, 30, 3)
    model.set_field_stats(torch.tensor([0.5, -1.0]), torch.tensor([2.0, 3.0]))
    model.set_latent_stats(model.encode(x, f, normalize=False))
    model.save_pretrained(tmp_path / "ae")
    back = MeshAutoencoder.from_pretrained(tmp_path / "ae").double()
    assert tuple(back.config.grid) == GRIDS[3] and back.latent_shape == model.latent_shape
    torch.testing.assert_close(back.latent_std, model.latent_std)
    torch.testing.assert_close(back(x, f), model(x, f), rtol=0, atol=0)


def test_bad_inputs_are_one_sentence_errors():
    with pytest.raises(UserInputError, match="divisible"):
        MeshAutoencoder(grid=(10, 6), levels=2)
    with pytest.raises(UserInputError, match="dim=4"):
        MeshAutoencoder(dim=4)
    model = tiny(2)
    with pytest.raises(UserInputError, match=r"expected \(B, N, 2\)"):
        model.encode(torch.zeros(1, 5, 3), torch.zeros(1, 5, 2))
    with pytest.raises(UserInputError, match="latent of shape"):
        model.decode(torch.zeros(1, 3, 5, 5), torch.zeros(1, 4, 2))


def test_tiny_overfit_reaches_low_error():
    """Adam on one frame of a smooth 2D field: relative L2 below 10% in 100 steps."""
    torch.manual_seed(0)
    model = MeshAutoencoder(in_channels=1, dim=2, grid=(8, 8), levels=1, latent_channels=2,
                            width=8, domain_lo=(0.0, 0.0), domain_hi=(1.0, 1.0), n_freq=2)
    g = torch.Generator().manual_seed(1)
    x = torch.rand(1, 200, 2, generator=g)
    f = (torch.sin(2 * torch.pi * x[..., 0]) * torch.cos(torch.pi * x[..., 1]))[..., None]
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    mask = torch.ones(1, 200, dtype=torch.bool)
    first = None
    for _ in range(100):
        y = model(x, f, mask, physical=False)
        loss = reconstruction_loss(y, f, mask, model.field_mean, model.field_std)
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        err = rel_l2(model(x, f).numpy(), f.numpy())
    assert err < 0.1 and loss.item() < 0.02 * first


def test_evaluate_reports_each_trajectory_and_the_standard_error():
    """The summary is the mean of the per-trajectory errors; sem = sample std / sqrt(n)."""
    torch.manual_seed(0)
    model = MeshAutoencoder(in_channels=1, dim=2, grid=(8, 8), levels=1, latent_channels=2,
                            width=8, domain_lo=(0.0, 0.0), domain_hi=(1.0, 1.0)).eval()
    rng = np.random.default_rng(0)
    trajs = [PointTrajectory(rng.random((n, 2), dtype=np.float32),
                             rng.standard_normal((3, n, 1)).astype(np.float32), i)
             for i, n in enumerate((40, 55, 70))]
    out = evaluate(model, trajs)
    per = [rel_l2(reconstruct(model, tr), tr.fields) for tr in trajs]
    np.testing.assert_allclose(out["rel_l2_per_trajectory"], per, rtol=1e-6)
    assert out["rel_l2"] == pytest.approx(np.mean(per)) and out["rel_l2_max"] == max(per)
    assert out["rel_l2_sem"] == pytest.approx(np.std(per, ddof=1) / np.sqrt(3))
    assert out["n_trajectories"] == 3 and np.isnan(evaluate(model, trajs[:1])["rel_l2_sem"])


def test_fourier_upsample_keeps_samples_and_is_exact_for_trig_polynomials():
    n = 16
    t = np.arange(n) / n
    x = np.sin(2 * np.pi * (t[:, None] + 2 * t[None, :])) + np.cos(2 * np.pi * 3 * t)[:, None]
    up = fourier_upsample(x, 2)
    s = np.arange(2 * n) / (2 * n)
    exact = np.sin(2 * np.pi * (s[:, None] + 2 * s[None, :])) + np.cos(6 * np.pi * s)[:, None]
    np.testing.assert_allclose(up, exact, atol=1e-12)
    np.testing.assert_allclose(up[::2, ::2], x, atol=1e-12)


def test_p1_interpolation_is_exact_for_linear_fields():
    pts = np.array([[0, 0], [1, 0], [0, 1], [1, 1]], float)
    cells = np.array([[0, 1, 2], [1, 3, 2]])
    vals = (3 * pts[:, 0] - pts[:, 1] + 1)[None]  # (1, 4)
    q = np.array([[0.2, 0.3], [0.9, 0.8], [1.5, 0.5]])
    out, inside = p1_interpolate(pts, cells, vals, q)
    assert inside.tolist() == [True, True, False]
    np.testing.assert_allclose(out[0, :2], 3 * q[:2, 0] - q[:2, 1] + 1, atol=1e-12)


def test_encode_file_writes_and_reuses_cached_latents(tmp_path):
    from genphys.data.writer import write_trajectories
    from genphys.physics import get_system

    system = get_system("ns2d", resolution=16, nt=3, t_final=0.2)
    path = tmp_path / "ns.h5"
    write_trajectories(path, [system.generate(2, seed=0)], system_name="ns2d")
    model = MeshAutoencoder(in_channels=1, grid=(8, 8), levels=1, latent_channels=2, width=8,
                            domain_hi=(1.0, 1.0), periodic=True)
    out = encode_file(model, path, tmp_path / "lat.h5")
    with h5py.File(out, "r") as f:
        lat = f["latents"][...]
        stamp = f.attrs["fingerprint"]
    assert lat.shape == (2, 3, 2, 4, 4)
    tr = read_trajectories(path)[1]
    z = model.encode_trajectory(torch.from_numpy(tr.points)[None],
                                torch.from_numpy(tr.fields)[None])
    np.testing.assert_allclose(lat[1], z[0].detach().numpy(), rtol=1e-5, atol=1e-6)
    mtime = out.stat().st_mtime_ns
    assert encode_file(model, path, out) == out and out.stat().st_mtime_ns == mtime
    with torch.no_grad():
        model.latent_std.mul_(2)
    encode_file(model, path, out)  # new weights: the cache is rebuilt
    with h5py.File(out, "r") as f:
        assert f.attrs["fingerprint"] != stamp
