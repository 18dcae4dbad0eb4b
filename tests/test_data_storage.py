"""Writing and reading trajectory files: exact round trips, streaming, atomicity, errors."""

import os

import h5py
import numpy as np
import pytest

from genphys.data import describe, open_trajectories, write_trajectories
from genphys.data.synthetic import toy_grid, toy_mesh
from genphys.errors import DataFormatError, UserInputError
from genphys.physics.base import GridTrajectories


def _one_sentence(msg: str) -> bool:
    return msg.count(". ") == 0 and msg.endswith(".") and len(msg) < 300


@pytest.mark.parametrize("space", [(16,), (8, 6)])
def test_grid_round_trip_exact(tmp_path, space):
    b = toy_grid(5, space=space, fields=("u", "v"), system="toy")
    p = write_trajectories(tmp_path / "g.hdf5", [b], system_name="toy", attrs={"run": 7})
    with open_trajectories(p) as f:
        assert (f.kind, f.system, len(f), f.field_names) == ("grid", "toy", 5, ["u", "v"])
        assert f.layout == "well (genphys)"
        assert f.attrs["genphys_attrs"] == {"solver": "toy", "n_t": 5, "run": 7}
        assert f.attrs["n_spatial_dims"] == len(space)
        for i in range(5):
            it = f[i]
            assert it["fields"].dtype == np.float32
            assert it["fields"].shape == (2, 5, *space)
            np.testing.assert_array_equal(it["fields"][0], b.fields["u"][i])
            np.testing.assert_array_equal(it["fields"][1], b.fields["v"][i])
            np.testing.assert_array_equal(it["time"], b.time)
            for a in b.coords:
                np.testing.assert_array_equal(it["coords"][a], b.coords[a])
            assert it["params"] == {k: b.params[k][i] for k in b.params}
            assert it["captions"] == b.captions[i]
            assert it["seed"] == b.seeds[i]
        assert f[-1]["seed"] == b.seeds[-1]
        with pytest.raises(IndexError):
            f[5]
        lo, hi = f.param_ranges()["nu"]
        assert (lo, hi) == (b.params["nu"].min(), b.params["nu"].max())


def test_streaming_batches_equal_one_batch(tmp_path):
    parts = [toy_grid(n, start=s, space=(6, 4)) for s, n in [(0, 3), (3, 1), (4, 4)]]
    seen = []

    def gen():  # the writer must consume batches one at a time
        for b in parts:
            seen.append(len(b))
            yield b

    p = write_trajectories(tmp_path / "s.hdf5", gen(), system_name="toy2d")
    full = toy_grid(8, space=(6, 4))
    with open_trajectories(p) as f:
        assert len(f) == 8 and seen == [3, 1, 4]
        for i in range(8):
            np.testing.assert_array_equal(f[i]["fields"][0], full.fields["u"][i])
            assert f[i]["seed"] == full.seeds[i]
    with h5py.File(p) as h:
        assert h["t0_fields/u"].chunks == (1, 5, 6, 4)  # one trajectory per chunk
        assert h.attrs["nu"] != h.attrs["nu"]  # varies per trajectory -> NaN at file level


def test_ragged_caption_counts_are_padded_and_stripped(tmp_path):
    a, b = toy_grid(2), toy_grid(2, start=2)
    a.captions = [["one"], ["two", "three"]]
    b.captions = [["x", "y", "z", "w"], []]
    p = write_trajectories(tmp_path / "c.hdf5", [a, b], system_name="toy")
    with open_trajectories(p) as f:
        assert [f[i]["captions"] for i in range(4)] == [["one"], ["two", "three"],
                                                        ["x", "y", "z", "w"], []]


def test_mesh_round_trip_exact(tmp_path):
    trs = toy_mesh(5)
    p = write_trajectories(tmp_path / "m.h5", [trs[:2], trs[2:]], system_name="toymesh")
    with open_trajectories(p) as f:
        assert (f.kind, len(f), f.field_names, f.system) == ("mesh", 5, ["c", "p"], "toymesh")
        for i, tr in enumerate(trs):
            it = f[i]
            np.testing.assert_array_equal(it["points"], tr.points)
            np.testing.assert_array_equal(it["cells"], tr.cells)
            np.testing.assert_array_equal(it["fields"], tr.fields)
            np.testing.assert_array_equal(it["time"], tr.time)
            assert it["params"] == tr.params and it["seed"] == tr.seed
            assert it["captions"] == tr.captions and it["attrs"] == tr.attrs
        np.testing.assert_array_equal(f.seeds(), [t.seed for t in trs])
        assert f.param_ranges()["kappa"] == (min(t.params["kappa"] for t in trs),
                                             max(t.params["kappa"] for t in trs))


class Boom(RuntimeError):
    pass


@pytest.mark.parametrize("exc", [Boom, KeyboardInterrupt])
def test_interrupted_write_leaves_nothing(tmp_path, exc):
    def gen():
        yield toy_grid(2)
        raise exc("stop")

    with pytest.raises(exc):
        write_trajectories(tmp_path / "x.hdf5", gen(), system_name="toy")
    assert os.listdir(tmp_path) == []


def test_interrupted_overwrite_keeps_old_file(tmp_path):
    p = write_trajectories(tmp_path / "x.hdf5", [toy_grid(3)], system_name="toy")

    def gen():
        yield toy_grid(1)
        raise Boom("stop")

    with pytest.raises(Boom):
        write_trajectories(p, gen(), system_name="toy", overwrite=True)
    assert os.listdir(tmp_path) == ["x.hdf5"]
    with open_trajectories(p) as f:
        assert len(f) == 3


def test_overwrite_protection_and_bad_targets(tmp_path):
    p = write_trajectories(tmp_path / "x.hdf5", [toy_grid(2)], system_name="toy")
    with pytest.raises(UserInputError, match="already exists") as e:
        write_trajectories(p, [toy_grid(1)], system_name="toy")
    assert _one_sentence(str(e.value))
    write_trajectories(p, [toy_grid(1)], system_name="toy", overwrite=True)
    with open_trajectories(p) as f:
        assert len(f) == 1
    with pytest.raises(UserInputError, match="does not exist"):
        write_trajectories(tmp_path / "nope" / "x.hdf5", [toy_grid(1)], system_name="toy")
    with pytest.raises(UserInputError, match="no trajectories"):
        write_trajectories(tmp_path / "e.hdf5", [], system_name="toy")
    with pytest.raises(UserInputError, match="cannot write a batch"):
        write_trajectories(tmp_path / "e.hdf5", [np.zeros(3)], system_name="toy")
    assert sorted(os.listdir(tmp_path)) == ["x.hdf5"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_unwritable_directory(tmp_path):
    d = tmp_path / "ro"
    d.mkdir()
    d.chmod(0o500)
    with pytest.raises(UserInputError, match="not writable"):
        write_trajectories(d / "x.hdf5", [toy_grid(1)], system_name="toy")


def test_incompatible_batches_rejected(tmp_path):
    a, b = toy_grid(2), toy_grid(2, start=2, n_t=6)
    with pytest.raises(UserInputError, match="differs from the first batch"):
        write_trajectories(tmp_path / "x.hdf5", [a, b], system_name="toy")
    bad = GridTrajectories(**{**a.__dict__, "seeds": a.seeds[:1]})
    with pytest.raises(UserInputError, match="different length"):
        write_trajectories(tmp_path / "x.hdf5", [bad], system_name="toy")
    assert os.listdir(tmp_path) == []


def test_read_errors_are_one_sentence(tmp_path):
    cases = {}
    cases["missing"] = tmp_path / "missing.hdf5"
    (tmp_path / "text.hdf5").write_text("hello, not hdf5")
    cases["not HDF5"] = tmp_path / "text.hdf5"
    with h5py.File(tmp_path / "foreign.h5", "w") as h:
        h["stuff"] = np.arange(3)
    cases["none of the layouts"] = tmp_path / "foreign.h5"
    good = write_trajectories(tmp_path / "good.hdf5", [toy_grid(40, space=(32,))],
                              system_name="toy")
    raw = good.read_bytes()
    (tmp_path / "trunc.hdf5").write_bytes(raw[: len(raw) // 3])
    cases["corrupt"] = tmp_path / "trunc.hdf5"
    with h5py.File(tmp_path / "broken.hdf5", "w") as h:  # Well-looking but no dimensions attrs
        h.attrs["n_trajectories"] = 1
        h.create_group("t0_fields")
        h.create_group("dimensions")
    cases["broken"] = tmp_path / "broken.hdf5"
    expect = {"missing": "does not exist", "not HDF5": "is not an HDF5 file",
              "none of the layouts": "none of the layouts", "corrupt": "corrupt",
              "broken": "layout is broken"}
    for name, path in cases.items():
        with pytest.raises(DataFormatError) as e:
            open_trajectories(path)
        msg = str(e.value)
        assert expect[name] in msg and str(path) in msg, msg
        assert "\n" not in msg


def test_describe_mentions_everything(tmp_path):
    p = write_trajectories(tmp_path / "g.hdf5", [toy_grid(4, space=(8, 6), fields=("u", "v"))],
                           system_name="toy2d")
    text = describe(p)
    for needle in ["well (genphys)", "toy2d", "trajectories: 4", "u, v", "(2, 5, 8, 6)",
                   "PERIODIC", "nu", "amplitude", "Toy flow", "KiB", "time:"]:
        assert needle in text, (needle, text)
    pm = write_trajectories(tmp_path / "m.h5", [toy_mesh(3)], system_name="toymesh")
    text = describe(pm)
    for needle in ["genphys mesh", "toymesh", "trajectories: 3", "c, p", "kappa", "Mesh toy",
                   "triangles"]:
        assert needle in text, (needle, text)


def test_streaming_memory_does_not_grow_with_batches(tmp_path):
    import tracemalloc

    def gen(n):
        for k in range(n):
            yield toy_grid(4, start=4 * k, space=(32, 32), n_t=8)  # 128 KiB of fields each

    def peak(n):
        tracemalloc.start()
        write_trajectories(tmp_path / f"m{n}.hdf5", gen(n), system_name="toy")
        out = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return out

    batch_bytes = 4 * 8 * 32 * 32 * 4
    peak(2)  # warm-up: first-use allocations of h5py/numpy
    p6, p24 = peak(6), peak(24)
    assert p24 < p6 + batch_bytes, (p6, p24)  # 18 more batches, no more memory
    assert p24 < 8 * batch_bytes  # a few batches' worth of temporaries at most (24 written)
    with open_trajectories(tmp_path / "m24.hdf5") as f:
        assert len(f) == 96
        np.testing.assert_array_equal(f[95]["fields"][0],
                                      toy_grid(1, start=95, space=(32, 32), n_t=8).fields["u"][0])
