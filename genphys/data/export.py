"""Export a mesh trajectory for ParaView through meshio: XDMF time series or VTU frames."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import meshio
import numpy as np

from genphys.data.reader import open_trajectories
from genphys.data.writer import check_target
from genphys.errors import UserInputError

EXPORT_SUFFIXES = (".xdmf", ".vtu")


def export_mesh(path_in: str | os.PathLike, index: int, path_out: str | os.PathLike, *,
                overwrite: bool = False) -> list[Path]:
    """Write trajectory ``index`` of a mesh file to ``.xdmf`` (one file) or ``.vtu`` (per frame).

    For ``out.vtu`` the frames go to ``out_0000.vtu``, ``out_0001.vtu``, ... Returns the
    written paths (for XDMF: the ``.xdmf`` file and its heavy-data sibling ``<stem>.h5``).
    """
    out = Path(path_out)
    suffix = out.suffix.lower()
    if suffix not in EXPORT_SUFFIXES:
        raise UserInputError(f"cannot export to {out.name}: the extension must be one of "
                             f"{', '.join(EXPORT_SUFFIXES)}.")
    with open_trajectories(path_in) as f:
        if f.kind != "mesh":
            raise UserInputError(f"{path_in} holds grid trajectories; export_mesh needs a mesh "
                                 "file.")
        if not -len(f) <= int(index) < len(f):
            raise UserInputError(f"trajectory index {index} is out of range: the file has "
                                 f"{len(f)} trajectories.")
        tr = f[int(index)]
    points = np.column_stack([tr["points"], np.zeros(len(tr["points"]))])  # (N, 3) for VTK
    cells = [("triangle", tr["cells"])]

    def frame(t: int) -> dict[str, np.ndarray]:
        return {n: tr["fields"][t, :, c] for c, n in enumerate(tr["field_names"])}

    if suffix == ".xdmf":
        return _write_xdmf(out, points, cells, tr["time"], frame, overwrite)
    paths = [out.with_name(f"{out.stem}_{t:04d}.vtu") for t in range(len(tr["time"]))]
    for p in paths:  # check every target before writing any frame
        check_target(p, overwrite)
    for t, p in enumerate(paths):
        meshio.write(p, meshio.Mesh(points, cells, point_data=frame(t)))
    return paths


def _write_xdmf(out: Path, points: np.ndarray, cells: list, times: np.ndarray,
                frame: Callable[[int], dict[str, np.ndarray]], overwrite: bool) -> list[Path]:
    """XDMF time series; meshio puts the heavy data ``<stem>.h5`` in the *current* directory,
    so we write from inside the target directory."""
    out = out.resolve()
    check_target(out, overwrite)
    check_target(out.with_suffix(".h5"), overwrite)
    cwd = os.getcwd()
    os.chdir(out.parent)
    try:
        with meshio.xdmf.TimeSeriesWriter(out.name) as w:
            w.write_points_cells(points, cells)
            for t, time in enumerate(times):
                w.write_data(float(time), point_data=frame(t))
    finally:
        os.chdir(cwd)
    return [out, out.with_suffix(".h5")]
