"""Mesh export through meshio: XDMF time series and per-frame VTU, read back by meshio."""

import meshio
import numpy as np
import pytest

from genphys.data import export_mesh, write_trajectories
from genphys.data.synthetic import toy_grid, toy_mesh
from genphys.errors import UserInputError


@pytest.fixture
def mesh_file(tmp_path):
    trs = toy_mesh(3, n_t=3)
    return write_trajectories(tmp_path / "m.h5", [trs], system_name="toymesh"), trs


def test_export_xdmf_time_series(tmp_path, mesh_file):
    p, trs = mesh_file
    out, heavy = export_mesh(p, 1, tmp_path / "traj.xdmf")
    assert heavy == tmp_path / "traj.h5" and heavy.exists()
    tr = trs[1]
    with meshio.xdmf.TimeSeriesReader(out) as r:
        points, cells = r.read_points_cells()
        np.testing.assert_allclose(points[:, :2], tr.points)
        np.testing.assert_array_equal(cells[0].data, tr.cells)
        assert r.num_steps == len(tr.time)
        for k in range(r.num_steps):
            t, point_data, _ = r.read_data(k)
            assert t == pytest.approx(tr.time[k])
            np.testing.assert_array_equal(point_data["c"], tr.fields[k, :, 0])
            np.testing.assert_array_equal(point_data["p"], tr.fields[k, :, 1])


def test_export_vtu_frames(tmp_path, mesh_file):
    p, trs = mesh_file
    paths = export_mesh(p, -1, tmp_path / "frame.vtu")
    tr = trs[-1]
    assert [q.name for q in paths] == [f"frame_{k:04d}.vtu" for k in range(3)]
    for k, q in enumerate(paths):
        m = meshio.read(q)
        np.testing.assert_allclose(m.points[:, :2], tr.points)
        np.testing.assert_array_equal(m.cells_dict["triangle"], tr.cells)
        np.testing.assert_array_equal(m.point_data["p"], tr.fields[k, :, 1])
    with pytest.raises(UserInputError, match="already exists"):
        export_mesh(p, -1, tmp_path / "frame.vtu")


def test_export_errors(tmp_path, mesh_file):
    p, _ = mesh_file
    (tmp_path / "busy.h5").write_text("someone else's file")
    with pytest.raises(UserInputError, match="busy.h5 already exists"):
        export_mesh(p, 0, tmp_path / "busy.xdmf")
    with pytest.raises(UserInputError, match="extension must be one of"):
        export_mesh(p, 0, tmp_path / "x.obj")
    with pytest.raises(UserInputError, match="index 3 is out of range"):
        export_mesh(p, 3, tmp_path / "x.vtu")
    g = write_trajectories(tmp_path / "g.hdf5", [toy_grid(1)], system_name="toy")
    with pytest.raises(UserInputError, match="needs a mesh file"):
        export_mesh(g, 0, tmp_path / "x.vtu")
