"""Interoperability with The Well: its WellDataset reads our files; we read its files."""

import numpy as np
import pytest

from genphys.data import open_trajectories, write_trajectories
from genphys.data.synthetic import toy_grid

well_data = pytest.importorskip("the_well.data")


@pytest.mark.parametrize("space", [(8, 6), (16,)])
def test_welldataset_reads_our_file(tmp_path, space):
    b = toy_grid(3, space=space, fields=("u", "v"), n_t=5)
    write_trajectories(tmp_path / "toy.hdf5", [b], system_name="toy")
    ds = well_data.WellDataset(path=str(tmp_path), n_steps_input=2, n_steps_output=1,
                               use_normalization=False)
    assert ds.metadata.n_spatial_dims == len(space)
    assert ds.metadata.spatial_resolution == space
    assert ds.metadata.field_names[0] == ["u", "v"]
    assert ds.metadata.constant_scalar_names == ["nu", "amplitude"]
    assert ds.metadata.boundary_condition_types == ["PERIODIC"]
    windows = 5 - 3 + 1  # t0 positions for 2 input + 1 output steps
    assert len(ds) == 3 * windows
    for traj in range(3):
        for t0 in range(windows):
            s = ds[traj * windows + t0]
            # the_well returns channels-last (T, *space, C)
            want = np.stack([b.fields["u"][traj], b.fields["v"][traj]], -1)  # (T, *space, 2)
            np.testing.assert_array_equal(s["input_fields"].numpy(), want[t0:t0 + 2])
            np.testing.assert_array_equal(s["output_fields"].numpy(), want[t0 + 2:t0 + 3])
            np.testing.assert_allclose(s["constant_scalars"].numpy(),
                                       [b.params["nu"][traj], b.params["amplitude"][traj]])
    s = ds[0]
    assert (s["boundary_conditions"] == 2).all()  # BoundaryCondition.PERIODIC
    grid = s["space_grid"].numpy()  # (*space, ndim)
    np.testing.assert_allclose(grid[(slice(None),) + (0,) * (len(space) - 1) + (0,)],
                               b.coords["x"])


def test_welldataset_split_directory_layout(tmp_path):
    """The Well's own layout <root>/data/<split>/*.hdf5 with well_split_name."""
    root = tmp_path / "toyset"
    (root / "data" / "train").mkdir(parents=True)
    b = toy_grid(2, space=(4, 4), n_t=4)
    write_trajectories(root / "data" / "train" / "part0.hdf5", [b], system_name="toy")
    ds = well_data.WellDataset(path=str(root), well_split_name="train",
                               full_trajectory_mode=True, n_steps_input=1)
    assert len(ds) == 2
    s = ds[1]
    np.testing.assert_array_equal(s["input_fields"][..., 0].numpy(), b.fields["u"][1][:1])
    np.testing.assert_array_equal(s["output_fields"][..., 0].numpy(), b.fields["u"][1][1:])


def test_we_read_a_foreign_well_file(tmp_path):
    """A file written by the_well's own dummy writer (t1 vector field, constant scalars)."""
    from the_well.utils.dummy_data import write_dummy_data

    p = tmp_path / "dummy.hdf5"
    np.random.seed(0)
    write_dummy_data(str(p))
    import h5py

    with h5py.File(p) as h:
        want = h["t1_fields/field"][()]  # (B, T, X, Y, 2)
    with open_trajectories(p) as f:
        assert f.layout == "well (foreign)" and f.system == "dummy_dataset"
        assert len(f) == 2 and f.kind == "grid"
        assert f.field_names == ["field_x", "field_y"]  # constant t0 field is skipped
        it = f[1]
        assert it["fields"].shape == (2, 10, 32, 32)
        np.testing.assert_array_equal(it["fields"][0], want[1, ..., 0])
        np.testing.assert_array_equal(it["fields"][1], want[1, ..., 1])
        assert it["params"] == {"a": 0.25, "b": 0.75}
        assert it["seed"] == 1 and len(it["captions"]) == 3
        assert "a=0.25" in it["captions"][0]
        assert f.param_ranges() == {"a": (0.25, 0.25), "b": (0.75, 0.75)}
        np.testing.assert_allclose(it["coords"]["y"], np.linspace(0, 1, 32), rtol=1e-6)
