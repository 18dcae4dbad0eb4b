"""PDEBench layouts written here in PDEBench's own format, read back and imported."""

import h5py
import numpy as np
import pytest

from genphys.data import import_pdebench, open_trajectories
from genphys.errors import DataFormatError, UserInputError


def _single_1d(path, n=4, t=6, x=12, nu=0.001):
    """PDEBench 1D Burgers layout: tensor [N, T, X], t-coordinate has T+1 entries."""
    rng = np.random.default_rng(0)
    tensor = rng.standard_normal((n, t, x)).astype(np.float32)
    with h5py.File(path, "w") as f:
        f["tensor"] = tensor
        f["x-coordinate"] = ((np.arange(x) + 0.5) / x).astype(np.float32)
        f["t-coordinate"] = np.linspace(0, 0.01 * t, t + 1).astype(np.float32)
        f.attrs["Nu"] = nu
    return tensor


def _per_seed_2d(path, n=3, t=5, x=6, y=4, c=2):
    """PDEBench 2D per-seed layout: groups "0000".. with data [t, x, y, c] and grid/x,y,t."""
    rng = np.random.default_rng(1)
    datas = []
    with h5py.File(path, "w") as f:
        for s in range(n):
            g = f.create_group(f"{s:04d}")
            d = rng.standard_normal((t, x, y, c)).astype(np.float32)
            g["data"] = d
            g["grid/x"] = np.linspace(-1, 1, x)
            g["grid/y"] = np.linspace(-1, 1, y)
            g["grid/t"] = np.linspace(0, 1, t)
            datas.append(d)
    return datas


def test_single_tensor_1d(tmp_path):
    p = tmp_path / "1D_Burgers_Sols_Nu0.001.hdf5"
    tensor = _single_1d(p)
    with open_trajectories(p) as f:
        assert f.layout == "pdebench single-tensor" and f.kind == "grid"
        assert f.system == "pdebench:1D_Burgers_Sols_Nu0.001" and len(f) == 4
        it = f[2]
        assert it["fields"].shape == (1, 6, 12) and it["field_names"] == ["u"]
        np.testing.assert_array_equal(it["fields"][0], tensor[2])
        assert it["time"].shape == (6,)  # the extra t-coordinate entry is sliced off
        np.testing.assert_allclose(it["time"], np.linspace(0, 0.06, 7)[:6], rtol=1e-6)
        assert it["params"] == {"Nu": pytest.approx(0.001)}
        assert it["coords"]["x"].shape == (12,)


def test_single_cfd_2d(tmp_path):
    """2D CFD variant: density/pressure/Vx/Vy [N, T, X, Y] with x/y/t coordinates."""
    p = tmp_path / "2D_CFD_Rand_M0.1.hdf5"
    rng = np.random.default_rng(2)
    arrs = {k: rng.standard_normal((2, 3, 4, 5)).astype(np.float32)
            for k in ("density", "pressure", "Vx", "Vy")}
    with h5py.File(p, "w") as f:
        for k, v in arrs.items():
            f[k] = v
        f["x-coordinate"], f["y-coordinate"] = np.linspace(0, 1, 4), np.linspace(0, 1, 5)
        f["t-coordinate"] = np.linspace(0, 1, 4)
        f.attrs["M"] = 0.1
    with open_trajectories(p) as f:
        assert f.field_names == ["density", "pressure", "Vx", "Vy"]
        it = f[1]
        assert it["fields"].shape == (4, 3, 4, 5)
        for c, k in enumerate(arrs):
            np.testing.assert_array_equal(it["fields"][c], arrs[k][1])
        assert set(it["coords"]) == {"x", "y"} and it["params"] == {"M": 0.1}


def test_per_seed_2d(tmp_path):
    p = tmp_path / "2D_diff-react_NA_NA.h5"
    datas = _per_seed_2d(p)
    with open_trajectories(p) as f:
        assert f.layout == "pdebench per-seed" and len(f) == 3
        assert f.field_names == ["u0", "u1"]
        np.testing.assert_array_equal(f.seeds(), [0, 1, 2])
        it = f[1]
        assert it["fields"].shape == (2, 5, 6, 4)  # [t, x, y, c] -> (c, t, x, y)
        np.testing.assert_array_equal(it["fields"], np.moveaxis(datas[1], -1, 0))
        np.testing.assert_allclose(it["time"], np.linspace(0, 1, 5))
        np.testing.assert_allclose(it["coords"]["y"], np.linspace(-1, 1, 4))


def test_per_seed_1d_without_channel(tmp_path):
    p = tmp_path / "1D_seed.h5"
    with h5py.File(p, "w") as f:
        g = f.create_group("0007")
        g["data"] = np.arange(15, dtype=np.float32).reshape(3, 5)  # [t, x]
        g["grid/x"], g["grid/t"] = np.arange(5.0), np.arange(3.0)
    with open_trajectories(p) as f:
        it = f[0]
        assert it["fields"].shape == (1, 3, 5) and it["seed"] == 7 and f.field_names == ["u"]
        np.testing.assert_array_equal(it["fields"][0], np.arange(15).reshape(3, 5))


def test_bad_time_axis(tmp_path):
    p = tmp_path / "bad.hdf5"
    with h5py.File(p, "w") as f:
        f["tensor"] = np.zeros((1, 4, 3), np.float32)
        f["x-coordinate"] = np.arange(3.0)
        f["t-coordinate"] = np.arange(9.0)
    with pytest.raises(DataFormatError, match="t-coordinate has 9 entries for 4 snapshots"):
        open_trajectories(p)


def test_import_single_with_strides(tmp_path):
    src = tmp_path / "1D_Burgers_Sols_Nu0.001.hdf5"
    tensor = _single_1d(src, n=5, t=11, x=16)
    out = import_pdebench(src, tmp_path / "burgers.hdf5", batch_size=2, time_stride=5,
                          space_stride=4, system_name="burgers1d")
    with open_trajectories(out) as f:
        assert f.layout == "well (genphys)" and f.system == "burgers1d" and len(f) == 5
        assert f.attrs["genphys_attrs"]["time_stride"] == 5
        it = f[3]
        np.testing.assert_array_equal(it["fields"][0], tensor[3][::5, ::4])
        assert it["time"].shape == (3,) and it["coords"]["x"].shape == (4,)
        assert it["params"] == {"Nu": pytest.approx(0.001)} and it["seed"] == 3
        assert "Nu=0.001" in it["captions"][0]
    with pytest.raises(UserInputError, match="already exists"):
        import_pdebench(src, out)
    with pytest.raises(UserInputError, match="time_stride=0"):
        import_pdebench(src, tmp_path / "z.hdf5", time_stride=0)


def test_import_per_seed_is_readable_by_the_well(tmp_path):
    src = tmp_path / "2D_diff-react_NA_NA.h5"
    datas = _per_seed_2d(src)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    import_pdebench(src, out_dir / "dr.hdf5")
    with open_trajectories(out_dir / "dr.hdf5") as f:
        np.testing.assert_array_equal(f[2]["fields"], np.moveaxis(datas[2], -1, 0))
    well_data = pytest.importorskip("the_well.data")
    ds = well_data.WellDataset(path=str(out_dir), n_steps_input=4, n_steps_output=1)
    assert len(ds) == 3  # one window (4 in + 1 out) per 5-step trajectory
    np.testing.assert_array_equal(ds[1]["input_fields"].numpy(), datas[1][0:4])
    np.testing.assert_array_equal(ds[1]["output_fields"].numpy(), datas[1][4:5])
