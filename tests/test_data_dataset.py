"""TrajectoryDataset: seed-hash splits, normalization statistics, lazy multi-worker reading."""

import json

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from genphys.data import TrajectoryDataset, seed_split, write_trajectories
from genphys.data.normalize import channel_stats, sidecar_path
from genphys.data.synthetic import toy_grid, toy_mesh
from genphys.data.well import WellReader
from genphys.errors import UserInputError


@pytest.fixture
def grid_file(tmp_path):
    b = toy_grid(40, space=(8,), fields=("u", "v"), n_t=4)
    return write_trajectories(tmp_path / "g.hdf5", [b], system_name="toy"), b


def _seeds(ds):
    return [int(ds.seeds[i]) for i in ds.indices]


def test_split_by_seed_is_deterministic_disjoint_and_complete(grid_file):
    p, b = grid_file
    parts = {s: _seeds(TrajectoryDataset(p, split=s, normalize=False))
             for s in ("train", "val", "test", "all")}
    assert sorted(parts["train"] + parts["val"] + parts["test"]) == sorted(parts["all"])
    assert len(set(parts["train"]) & set(parts["val"] + parts["test"])) == 0
    assert not set(parts["val"]) & set(parts["test"])
    assert 24 <= len(parts["train"]) <= 38  # ~80% of 40
    again = _seeds(TrajectoryDataset(p, split="train", normalize=False))
    assert again == parts["train"]
    assert all(seed_split(s) == "train" for s in parts["train"])


def test_split_is_stable_when_trajectories_are_appended(tmp_path, grid_file):
    p, b = grid_file
    bigger = write_trajectories(tmp_path / "big.hdf5", [b, toy_grid(60, start=40, space=(8,),
                                                                    fields=("u", "v"), n_t=4)],
                                system_name="toy")
    for split in ("train", "val", "test"):
        old = set(_seeds(TrajectoryDataset(p, split=split, normalize=False)))
        new = set(_seeds(TrajectoryDataset(bigger, split=split, normalize=False)))
        assert old <= new and new - old  # old ones stay put, some new ones join


def test_stats_match_numpy_and_are_cached(grid_file, monkeypatch):
    p, b = grid_file
    ds = TrajectoryDataset(p, split="val")
    train = [i for i, s in enumerate(b.seeds) if seed_split(int(s)) == "train"]
    for c, name in enumerate(("u", "v")):
        vals = b.fields[name][train].astype(np.float64)
        assert ds.stats.mean[c] == pytest.approx(vals.mean(), rel=1e-12, abs=1e-14)
        assert ds.stats.std[c] == pytest.approx(vals.std(), rel=1e-12)
    assert ds.stats.count == len(train) * 4 * 8
    side = sidecar_path(p)
    assert side.exists() and len(json.loads(side.read_text())["entries"]) == 1

    def boom(*a, **k):
        raise AssertionError("statistics were recomputed instead of reused")

    monkeypatch.setattr(TrajectoryDataset, "_compute_stats", boom)
    for split in ("train", "test"):
        assert TrajectoryDataset(p, split=split).stats == ds.stats
    monkeypatch.undo()
    sub = TrajectoryDataset(p, fields=["v"])  # another field selection -> a second entry
    assert sub.stats.mean == (ds.stats.mean[1],)
    assert len(json.loads(side.read_text())["entries"]) == 2
    # regenerating the file invalidates the cache: new statistics, stale entries dropped
    b2 = toy_grid(40, seed=1, space=(8,), fields=("u", "v"), n_t=4)
    write_trajectories(p, [b2], system_name="toy", overwrite=True)
    ds2 = TrajectoryDataset(p)
    train2 = [i for i, s in enumerate(b2.seeds) if seed_split(int(s)) == "train"]
    assert ds2.stats.mean[0] == pytest.approx(b2.fields["u"][train2].astype(float).mean())
    assert len(json.loads(side.read_text())["entries"]) == 1


def test_normalized_items_and_denormalize(grid_file):
    p, b = grid_file
    ds = TrajectoryDataset(p, split="train")
    raw = TrajectoryDataset(p, split="train", normalize=False)
    assert raw.stats is None
    it, r = ds[3], raw[3]
    assert it["x"].dtype == torch.float32 and it["x"].shape == (2, 4, 8)
    i = ds.indices[3]
    np.testing.assert_array_equal(r["x"][0].numpy(), b.fields["u"][i])
    want = (b.fields["v"][i] - ds.stats.mean[1]) / ds.stats.std[1]
    np.testing.assert_allclose(it["x"][1].numpy(), want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ds.denormalize(it["x"]).numpy(), r["x"].numpy(), atol=1e-5)
    batch = torch.stack([ds[k]["x"] for k in range(3)])  # (B, C, T, X)
    back = ds.denormalize(batch, channel_dim=1)
    np.testing.assert_allclose(back[2].numpy(), raw[2]["x"].numpy(), atol=1e-5)
    assert it["params"].tolist() == pytest.approx([b.params["nu"][i], b.params["amplitude"][i]])
    assert it["seed"] == b.seeds[i] and it["caption"] in b.captions[i]
    # all normalized train data has mean 0 and std 1 per channel
    allx = torch.stack([ds[k]["x"] for k in range(len(ds))]).double()
    assert allx.mean(dim=(0, 2, 3)).abs().max() < 1e-6
    assert (allx.std(dim=(0, 2, 3), unbiased=False) - 1).abs().max() < 1e-5


def test_captions_rotate_with_epoch_or_random(grid_file):
    p, _ = grid_file
    ds = TrajectoryDataset(p, normalize=False)
    caps = []
    for e in range(3):
        ds.set_epoch(e)
        caps.append(ds[0]["caption"])
    assert len(set(caps)) == 3  # three captions, each seen once over three epochs
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    r1 = TrajectoryDataset(p, normalize=False, caption_choice="random", generator=g1)
    r2 = TrajectoryDataset(p, normalize=False, caption_choice="random", generator=g2)
    assert [r1[k % 4]["caption"] for k in range(12)] == [r2[k % 4]["caption"] for k in range(12)]
    first = TrajectoryDataset(p, normalize=False, caption_choice="first")
    assert first[1]["caption"].startswith("Toy flow")


def test_lazy_construction_and_multiworker_loader(grid_file, monkeypatch):
    p, b = grid_file
    ds = TrajectoryDataset(p, split="all")  # stats computed and cached here
    monkeypatch.setattr(WellReader, "item", lambda *a: (_ for _ in ()).throw(
        AssertionError("constructor read trajectory data")))
    lazy = TrajectoryDataset(p, split="all")  # cached stats: no trajectory is read
    assert len(lazy) == 40 and lazy._file is None
    monkeypatch.undo()
    loader = DataLoader(lazy, batch_size=8, num_workers=2, shuffle=False)
    seen = []
    for batch in loader:
        assert batch["x"].shape[1:] == (2, 4, 8)
        seen += batch["seed"].tolist()
        np.testing.assert_allclose(lazy.denormalize(batch["x"], channel_dim=1)[:, 0].numpy(),
                                   b.fields["u"][[list(b.seeds).index(s) for s in
                                                  batch["seed"].tolist()]], atol=1e-5)
    assert seen == [int(s) for s in b.seeds]
    assert lazy._file is None  # the main process never opened the file
    assert ds.stats == lazy.stats
    first = lazy[0]["x"]  # now the parent holds a handle; forked workers must reopen
    again = next(iter(DataLoader(lazy, batch_size=8, num_workers=2)))
    torch.testing.assert_close(again["x"][0], first)


def test_mesh_dataset(tmp_path):
    trs = toy_mesh(12)
    p = write_trajectories(tmp_path / "m.h5", [trs], system_name="toymesh")
    ds = TrajectoryDataset(p, split="all")  # statistics always come from the train split
    train = [t for t in trs if seed_split(t.seed) == "train"]
    assert 0 < len(train) < len(trs)
    vals = np.concatenate([t.fields.reshape(-1, 2) for t in train]).astype(np.float64)  # (M, C)
    np.testing.assert_allclose(ds.stats.mean, vals.mean(0), rtol=1e-12)
    np.testing.assert_allclose(ds.stats.std, vals.std(0), rtol=1e-12)
    it = ds[4]
    assert it["x"].shape == trs[4].fields.shape and it["points"].shape == trs[4].points.shape
    np.testing.assert_allclose(ds.denormalize(it["x"]).numpy(), trs[4].fields, atol=1e-5)


def test_channel_stats_merging_is_exact():
    rng = np.random.default_rng(0)
    chunks = [rng.standard_normal((3, n)) * 1e3 + 1e6 for n in (1, 7, 100, 3)]
    s = channel_stats(chunks, ["a", "b", "c"])
    full = np.concatenate(chunks, axis=1)
    np.testing.assert_allclose(s.mean, full.mean(1), rtol=1e-14)
    np.testing.assert_allclose(s.std, full.std(1), rtol=1e-10)


def test_bad_arguments(grid_file):
    p, _ = grid_file
    with pytest.raises(UserInputError, match="split='dev'"):
        TrajectoryDataset(p, split="dev")
    with pytest.raises(UserInputError, match="split_fractions"):
        TrajectoryDataset(p, split_fractions=(0.5, 0.1, 0.1))
    with pytest.raises(UserInputError, match="available: u, v"):
        TrajectoryDataset(p, fields=["rho"])
    ds = TrajectoryDataset(p)
    with pytest.raises(UserInputError, match="stats are for fields"):
        TrajectoryDataset(p, fields=["u"], stats=ds.stats)
    other = TrajectoryDataset(p, stats=ds.stats.to_dict(), split="test")
    assert other.stats == ds.stats


@pytest.mark.slow
def test_spawn_workers(grid_file):
    p, b = grid_file
    ds = TrajectoryDataset(p, split="all", normalize=False)
    ds[0]  # parent handle must not travel to the spawned workers
    loader = DataLoader(ds, batch_size=10, num_workers=2, multiprocessing_context="spawn")
    xs = torch.cat([batch["x"] for batch in loader])
    np.testing.assert_array_equal(xs[:, 1].numpy(), b.fields["v"])
