"""Mesh trajectories in genphys's HDF5 schema: one group per trajectory (see docs/data.md).

Layout: root attrs ``genphys_format="mesh-trajectories"``, ``genphys_system``,
``genphys_version``, ``n_trajectories``, ``simulation_parameters``, ``field_names``,
``genphys_attrs`` (JSON); groups ``trajectories/000000/`` with ``points [N, 2]``,
``cells [M, 3]``, ``fields [T, N, C]`` (attr ``field_names``), ``time [T]``,
``params`` (one attr per parameter), ``captions [K]``, ``seed`` (scalar) and attr
``attrs`` (JSON).
"""

from __future__ import annotations

from typing import Any

import h5py
import numpy as np

import genphys
from genphys.data.common import STR_DTYPE, dumps, loads, root_attrs, str_list, to_py
from genphys.errors import DataFormatError, UserInputError
from genphys.physics.base import MeshTrajectory

MESH_FORMAT = "mesh-trajectories"


class MeshWriter:
    """Append lists of :class:`MeshTrajectory` to an open HDF5 file, one group each."""

    def __init__(self, f: h5py.File, system_name: str, attrs: dict[str, Any] | None = None):
        self.f = f
        self.n = 0
        self.field_names: list[str] | None = None
        self.param_names: list[str] = []
        f.attrs.update({
            "genphys_format": MESH_FORMAT, "genphys_system": system_name,
            "genphys_version": genphys.__version__, "n_trajectories": 0,
            "genphys_attrs": dumps(dict(attrs or {})),
        })
        self.group = f.create_group("trajectories")

    def append(self, batch: list[MeshTrajectory]) -> None:
        """Write every trajectory of ``batch`` as its own group."""
        for tr in batch:
            if not isinstance(tr, MeshTrajectory):
                raise UserInputError(
                    f"expected MeshTrajectory items in a mesh batch, got {type(tr).__name__}.")
            self._check(tr)
            self._write(self.group.create_group(f"{self.n:06d}"), tr)
            self.n += 1

    def _check(self, tr: MeshTrajectory) -> None:
        n_pts, n_t = len(tr.points), len(tr.time)
        if np.shape(tr.fields) != (n_t, n_pts, len(tr.field_names)):
            raise UserInputError(
                f"mesh trajectory {self.n} has fields of shape {np.shape(tr.fields)}; expected "
                f"(T, N, C) = ({n_t}, {n_pts}, {len(tr.field_names)}).")
        if self.field_names is None:
            self.field_names, self.param_names = list(tr.field_names), list(tr.params)
        elif list(tr.field_names) != self.field_names or list(tr.params) != self.param_names:
            raise UserInputError(
                f"mesh trajectory {self.n} has fields {list(tr.field_names)} and parameters "
                f"{list(tr.params)}; the file has {self.field_names} and {self.param_names}.")

    @staticmethod
    def _write(g: h5py.Group, tr: MeshTrajectory) -> None:
        g.create_dataset("points", data=np.asarray(tr.points, np.float64))
        g.create_dataset("cells", data=np.asarray(tr.cells, np.int64))
        ds = g.create_dataset("fields", data=np.asarray(tr.fields, np.float32))
        ds.attrs["field_names"] = np.array(list(tr.field_names), dtype=STR_DTYPE)
        g.create_dataset("time", data=np.asarray(tr.time, np.float64))
        p = g.create_group("params")
        for k, v in tr.params.items():
            p.attrs[k] = float(v)
        g.create_dataset("captions", data=np.array(list(tr.captions), dtype=STR_DTYPE))
        g.create_dataset("seed", data=np.int64(tr.seed))
        g.attrs["attrs"] = dumps(tr.attrs)

    def finish(self) -> None:
        """Set the root attributes that depend on all trajectories."""
        self.f.attrs["n_trajectories"] = self.n
        self.f.attrs["field_names"] = np.array(self.field_names or [], dtype=STR_DTYPE)
        self.f.attrs["simulation_parameters"] = np.array(self.param_names, dtype=STR_DTYPE)


class MeshReader:
    """Read mesh trajectories lazily (one group per trajectory)."""

    kind = "mesh"
    layout = "genphys mesh"

    def __init__(self, f: h5py.File, path: str):
        self.f, self.path = f, path
        self.attrs = root_attrs(f)
        self.system = str(self.attrs.get("genphys_system", "?"))
        try:
            self.n = int(self.attrs["n_trajectories"])
            self.names = sorted(f["trajectories"].keys())[: self.n]
            self.field_names = str_list(self.attrs.get("field_names", []))
            self.param_names = str_list(self.attrs.get("simulation_parameters", []))
        except KeyError as e:
            raise DataFormatError(f"{path} is a genphys mesh file without {e}.") from None
        if len(self.names) != self.n:
            raise DataFormatError(f"{path} says it holds {self.n} trajectories but has "
                                  f"{len(self.names)} groups under trajectories/.")

    def __len__(self) -> int:
        return self.n

    def _group(self, i: int) -> h5py.Group:
        return self.f["trajectories"][self.names[i]]

    def item(self, i: int) -> dict[str, Any]:
        """Trajectory ``i`` as the documented mesh dict."""
        g = self._group(i)
        try:
            return {
                "points": g["points"][()],
                "cells": g["cells"][()],
                "fields": g["fields"][()],  # (T, N, C)
                "field_names": str_list(g["fields"].attrs["field_names"]),
                "time": g["time"][()],
                "params": {k: float(v) for k, v in g["params"].attrs.items()},
                "captions": [to_py(c) for c in g["captions"][()]],
                "seed": int(g["seed"][()]),
                "attrs": loads(g.attrs.get("attrs", "{}"), f"{self.path} trajectory {i} attrs"),
            }
        except KeyError as e:
            raise DataFormatError(f"{self.path}: trajectory group {self.names[i]} lacks {e}.") \
                from None

    def seeds(self) -> np.ndarray:
        """All per-trajectory seeds."""
        return np.array([int(self._group(i)["seed"][()]) for i in range(self.n)], np.int64)

    def params_table(self) -> dict[str, np.ndarray]:
        """Parameter name -> values ``(n,)``."""
        rows = [dict(self._group(i)["params"].attrs) for i in range(self.n)]
        return {p: np.array([float(r[p]) for r in rows]) for p in self.param_names}

    def info(self) -> dict[str, Any]:
        """Sizes and extents for :func:`describe` (from trajectory 0 plus node-count range)."""
        g = self._group(0)
        pts, t = g["points"][()], g["time"][()]
        sizes = [self._group(i)["points"].shape[0] for i in range(self.n)]
        return {
            "shape": tuple(g["fields"].shape), "cells": g["cells"].shape[0],
            "nodes": (min(sizes), max(sizes)), "time": (float(t.min()), float(t.max())),
            "space": {"x": (float(pts[:, 0].min()), float(pts[:, 0].max())),
                      "y": (float(pts[:, 1].min()), float(pts[:, 1].max()))},
        }
