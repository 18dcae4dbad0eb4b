"""Readers for PDEBench's two HDF5 layouts and an importer into our Well layout.

PDEBench (Takamoto et al., NeurIPS 2022 Datasets & Benchmarks) ships

- single-tensor files (``*.hdf5``): ``tensor [N, T, X(, Y)]`` (or the CFD fields
  ``density``/``pressure``/``Vx``/``Vy``/``Vz``), ``x-coordinate``, ``y-coordinate``,
  ``t-coordinate`` (often one entry longer than the snapshots: sliced), parameters as
  root attributes (``Nu``, ``beta``, ...);
- per-seed files (``*.h5``): groups ``"0000"``, ``"0001"``, ... each with
  ``data [T, X(, Y), C]`` and ``grid/x``, ``grid/y``, ``grid/t``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import h5py
import numpy as np

from genphys.data.common import generic_captions, root_attrs
from genphys.errors import DataFormatError

CFD_FIELDS = ("density", "pressure", "Vx", "Vy", "Vz")
_AXES = ("x", "y", "z")


def _numeric_attrs(attrs: Any) -> dict[str, float]:
    out = {}
    for k, v in attrs.items():
        a = np.asarray(v)
        if a.ndim == 0 and np.issubdtype(a.dtype, np.number) and not np.issubdtype(
                a.dtype, np.bool_):
            out[str(k)] = float(a)
    return out


def _time_axis(t: np.ndarray | None, n_t: int, path: str) -> np.ndarray:
    """Snapshot times: PDEBench stores one more entry than snapshots in some files."""
    if t is None:
        return np.arange(n_t, dtype=np.float64)
    t = np.asarray(t, np.float64).reshape(-1)
    if len(t) in (n_t, n_t + 1):
        return t[:n_t]
    raise DataFormatError(
        f"{path}: t-coordinate has {len(t)} entries for {n_t} snapshots; expected "
        f"{n_t} or {n_t + 1}.")


def is_single(f: h5py.File) -> bool:
    """Whether ``f`` is a PDEBench single-tensor (or CFD multi-field) file."""
    return "x-coordinate" in f and ("tensor" in f or "density" in f)


def is_per_seed(f: h5py.File) -> bool:
    """Whether ``f`` is a PDEBench per-seed file (numbered groups with data and grid)."""
    keys = list(f.keys())
    return bool(keys) and all(k.isdigit() for k in keys) and \
        isinstance(f[keys[0]], h5py.Group) and "data" in f[keys[0]] and "grid" in f[keys[0]]


class PDEBenchSingleReader:
    """Lazy reader of a PDEBench single-tensor ``.hdf5`` file."""

    kind = "grid"
    layout = "pdebench single-tensor"

    def __init__(self, f: h5py.File, path: str):
        self.f, self.path = f, path
        self.attrs = root_attrs(f)
        self.system = f"pdebench:{Path(path).stem}"
        self.keys = ["tensor"] if "tensor" in f else [k for k in CFD_FIELDS if k in f]
        self.field_names = ["u"] if self.keys == ["tensor"] else list(self.keys)
        shape = f[self.keys[0]].shape  # (N, T, X(, Y))
        if len(shape) not in (3, 4):
            raise DataFormatError(f"{path}: {self.keys[0]} has shape {shape}; expected "
                                  "[N, T, X] or [N, T, X, Y].")
        self.n, self.shape = shape[0], shape[1:]
        self.dims = list(_AXES[: len(shape) - 2])
        self.params = _numeric_attrs(f.attrs)
        self.param_names = list(self.params)
        tc = f["t-coordinate"][()] if "t-coordinate" in f else None
        self.time = _time_axis(tc, shape[1], path)

    def __len__(self) -> int:
        return self.n

    def _coord(self, d: str, n: int) -> np.ndarray:
        key = f"{d}-coordinate"
        return np.asarray(self.f[key][()], np.float64).reshape(-1)[:n] if key in self.f \
            else np.arange(n, dtype=np.float64)

    def item(self, i: int) -> dict[str, Any]:
        """Trajectory ``i`` as the documented grid dict."""
        fields = np.stack([self.f[k][i] for k in self.keys]).astype(np.float32)  # (C, T, *sp)
        return {
            "fields": fields, "field_names": list(self.field_names), "time": self.time.copy(),
            "coords": {d: self._coord(d, n) for d, n in zip(self.dims, self.shape[1:])},
            "params": dict(self.params),
            "captions": generic_captions(self.system, self.params), "seed": i,
        }

    def seeds(self) -> np.ndarray:
        """Trajectory indices (PDEBench stores no seeds)."""
        return np.arange(self.n)

    def params_table(self) -> dict[str, np.ndarray]:
        """Parameter name -> values ``(n,)`` (file-wide constants)."""
        return {k: np.full(self.n, v) for k, v in self.params.items()}

    def info(self) -> dict[str, Any]:
        """Shapes and extents for :func:`describe`."""
        return {"shape": (len(self.keys), *self.shape), "time": (self.time[0], self.time[-1]),
                "space": {d: (float(c.min()), float(c.max())) for d, c in
                          ((d, self._coord(d, n)) for d, n in zip(self.dims, self.shape[1:]))}}


class PDEBenchSeedReader:
    """Lazy reader of a PDEBench per-seed ``.h5`` file (one group per seed)."""

    kind = "grid"
    layout = "pdebench per-seed"

    def __init__(self, f: h5py.File, path: str):
        self.f, self.path = f, path
        self.attrs = root_attrs(f)
        self.system = f"pdebench:{Path(path).stem}"
        self.names = sorted(f.keys())
        g = f[self.names[0]]
        self.dims = [d for d in _AXES if d in g["grid"]]
        data_shape = g["data"].shape
        self.has_channel = len(data_shape) == len(self.dims) + 2
        if len(data_shape) not in (len(self.dims) + 1, len(self.dims) + 2):
            raise DataFormatError(f"{path}: data has shape {data_shape}; expected [t, "
                                  f"{', '.join(self.dims)}(, c)].")
        c = data_shape[-1] if self.has_channel else 1
        self.field_names = ["u"] if c == 1 else [f"u{k}" for k in range(c)]
        self.param_names = list(self._params(0))

    def __len__(self) -> int:
        return len(self.names)

    def _params(self, i: int) -> dict[str, float]:
        return {**_numeric_attrs(self.f.attrs), **_numeric_attrs(self.f[self.names[i]].attrs)}

    def item(self, i: int) -> dict[str, Any]:
        """Trajectory ``i`` as the documented grid dict (``[t, x, y, c]`` -> ``(c, t, x, y)``)."""
        g = self.f[self.names[i]]
        data = np.asarray(g["data"][()], np.float32)
        if not self.has_channel:
            data = data[..., None]  # (T, *space, 1)
        fields = np.moveaxis(data, -1, 0)  # (C, T, *space)
        grid = g["grid"]
        tc = grid["t"][()] if "t" in grid else None
        params = self._params(i)
        return {
            "fields": np.ascontiguousarray(fields), "field_names": list(self.field_names),
            "time": _time_axis(tc, fields.shape[1], self.path),
            "coords": {d: np.asarray(grid[d][()], np.float64).reshape(-1) for d in self.dims},
            "params": params, "captions": generic_captions(self.system, params),
            "seed": int(self.names[i]),
        }

    def seeds(self) -> np.ndarray:
        """Seeds from the group names ("0042" -> 42)."""
        return np.array([int(n) for n in self.names], np.int64)

    def params_table(self) -> dict[str, np.ndarray]:
        """Parameter name -> values ``(n,)``."""
        rows = [self._params(i) for i in range(len(self))]
        return {p: np.array([r.get(p, np.nan) for r in rows]) for p in self.param_names}

    def info(self) -> dict[str, Any]:
        """Shapes and extents for :func:`describe` (from seed 0)."""
        it = self.item(0)
        return {"shape": it["fields"].shape, "time": (it["time"][0], it["time"][-1]),
                "space": {d: (float(c.min()), float(c.max())) for d, c in it["coords"].items()}}
