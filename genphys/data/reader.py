"""Open any trajectory file genphys reads, detecting its layout: :func:`open_trajectories`.

Layouts: our Well grid files, foreign The Well files, our mesh files, PDEBench single-tensor
``.hdf5`` and PDEBench per-seed ``.h5`` files. Items are read lazily from disk.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from genphys.data.mesh_h5 import MESH_FORMAT, MeshReader
from genphys.data.pdebench import (
    PDEBenchSeedReader,
    PDEBenchSingleReader,
    is_per_seed,
    is_single,
)
from genphys.data.well import WellReader
from genphys.errors import DataFormatError

LAYOUTS = ("genphys Well grid file", "The Well file", "genphys mesh file",
           "PDEBench single-tensor .hdf5", "PDEBench per-seed .h5")


def open_h5(path: str | os.PathLike) -> h5py.File:
    """Open ``path`` read-only, turning every failure into one-sentence DataFormatError."""
    p = Path(path)
    if not p.exists():
        raise DataFormatError(f"{p} does not exist; expected an HDF5 trajectory file.")
    if not p.is_file():
        raise DataFormatError(f"{p} is not a file; expected an HDF5 trajectory file.")
    if not h5py.is_hdf5(p):
        raise DataFormatError(f"{p} is not an HDF5 file; expected an HDF5 trajectory file "
                              f"({', '.join(LAYOUTS)}).")
    try:
        return h5py.File(p, "r")
    except OSError as e:
        raise DataFormatError(f"{p} could not be read as HDF5 (corrupt or truncated: "
                              f"{str(e).splitlines()[0]}).") from None


def detect(f: h5py.File, path: str) -> Any:
    """The reader backend matching the file's layout, or DataFormatError."""
    try:
        attrs = f.attrs
        if attrs.get("genphys_format", "") == MESH_FORMAT:
            return MeshReader(f, path)
        if "t0_fields" in f and "dimensions" in f and "n_trajectories" in attrs:
            return WellReader(f, path)
        if is_single(f):
            return PDEBenchSingleReader(f, path)
        if is_per_seed(f):
            return PDEBenchSeedReader(f, path)
    except (OSError, RuntimeError) as e:  # h5py raises these on damaged objects
        raise DataFormatError(f"{path} is corrupt ({str(e).splitlines()[0]}).") from None
    raise DataFormatError(f"{path} is HDF5 but has none of the layouts genphys reads "
                          f"({', '.join(LAYOUTS)}); top-level keys: {sorted(f.keys())[:8]}.")


class TrajectoryFile:
    """An open trajectory file: ``len()``, lazy ``f[i]`` dicts, metadata; a context manager."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._h5 = open_h5(self.path)
        try:
            self._r = detect(self._h5, str(self.path))
        except BaseException:
            self._h5.close()
            raise

    @property
    def kind(self) -> str:
        """``"grid"`` or ``"mesh"``."""
        return self._r.kind

    @property
    def layout(self) -> str:
        """Which on-disk layout was detected (e.g. ``"well (genphys)"``)."""
        return self._r.layout

    @property
    def system(self) -> str:
        """The system name (``genphys_system``, The Well ``dataset_name``, ``pdebench:<stem>``)."""
        return self._r.system

    @property
    def field_names(self) -> list[str]:
        """Names of the channels, in channel order."""
        return list(self._r.field_names)

    @property
    def param_names(self) -> list[str]:
        """Names of the per-trajectory parameters."""
        return list(self._r.param_names)

    @property
    def attrs(self) -> dict[str, Any]:
        """Root metadata as plain Python (``genphys_attrs`` JSON parsed)."""
        return dict(self._r.attrs)

    def __len__(self) -> int:
        return len(self._r)

    def __getitem__(self, i: int) -> dict[str, Any]:
        n = len(self)
        if not isinstance(i, (int, np.integer)) or not -n <= i < n:
            raise IndexError(f"trajectory index {i!r} is out of range for {n} trajectories.")
        return self._r.item(int(i) % n)

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    def seeds(self) -> np.ndarray:
        """Per-trajectory seeds ``(n,)`` (the index where a file stores none)."""
        return np.asarray(self._r.seeds(), np.int64)

    def params_table(self) -> dict[str, np.ndarray]:
        """Parameter name -> values ``(n,)`` of every trajectory."""
        return self._r.params_table()

    def param_ranges(self) -> dict[str, tuple[float, float]]:
        """Parameter name -> (min, max) over the file."""
        return {k: (float(np.nanmin(v)), float(np.nanmax(v))) if len(v) else (np.nan, np.nan)
                for k, v in self.params_table().items()}

    def info(self) -> dict[str, Any]:
        """Shapes and extents (used by :func:`genphys.data.describe`)."""
        return self._r.info() if len(self) else {}

    def close(self) -> None:
        """Close the underlying HDF5 file."""
        self._h5.close()

    def __enter__(self) -> TrajectoryFile:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"TrajectoryFile({str(self.path)!r}, layout={self.layout!r}, "
                f"system={self.system!r}, n={len(self)})")


def open_trajectories(path: str | os.PathLike) -> TrajectoryFile:
    """Open a trajectory file of any supported layout (see :data:`LAYOUTS`)."""
    return TrajectoryFile(path)
