"""Grid trajectories in The Well's HDF5 schema: a streaming writer and a reader.

Schema (Ohana et al., "The Well", NeurIPS 2024 Datasets & Benchmarks; checked against the
``the_well`` 1.2.0 reader): root attrs ``dataset_name``, ``grid_type``, ``n_spatial_dims``,
``n_trajectories``, ``simulation_parameters`` (+ one attr each); ``dimensions/``,
``boundary_conditions/``, ``scalars/``, ``t0_fields/``, ``t1_fields/``, ``t2_fields/``.
genphys adds ``captions [B, K]``, ``seeds [B]`` and root attrs ``genphys_*``.
See ``docs/data.md`` for the full layout.
"""

from __future__ import annotations

import itertools
from typing import Any

import h5py
import numpy as np

import genphys
from genphys.data.common import (
    STR_DTYPE,
    dumps,
    generic_captions,
    read_captions,
    root_attrs,
    str_list,
    to_py,
)
from genphys.errors import DataFormatError, UserInputError
from genphys.physics.base import GridTrajectories

_FLAGS = ("sample_varying", "time_varying")


class WellWriter:
    """Append :class:`GridTrajectories` batches to an open HDF5 file in The Well's schema."""

    def __init__(self, f: h5py.File, system_name: str, attrs: dict[str, Any] | None = None):
        self.f = f
        self.system = system_name
        self.user_attrs = dict(attrs or {})
        self.n = 0
        self.first: GridTrajectories | None = None  # first batch's metadata only (no fields)
        self.pmin: dict[str, float] = {}
        self.pmax: dict[str, float] = {}

    def append(self, batch: GridTrajectories) -> None:
        """Write one batch at the end of every resizable dataset."""
        if not isinstance(batch, GridTrajectories):
            raise UserInputError(f"expected a GridTrajectories batch, got {type(batch).__name__}.")
        _check_batch_sizes(batch)
        if self.first is None:
            self._create(batch)
            self.first = _signature(batch)
        else:
            _check_compatible(self.first, batch, self.n)
        n0, n1 = self.n, self.n + len(batch)
        for name, arr in batch.fields.items():
            _append(self.f["t0_fields"][name], n0, n1, np.asarray(arr, np.float32))
        for name, arr in batch.params.items():
            vals = np.asarray(arr, np.float64)
            _append(self.f["scalars"][name], n0, n1, vals)
            self.pmin[name] = min(self.pmin.get(name, np.inf), float(vals.min()))
            self.pmax[name] = max(self.pmax.get(name, -np.inf), float(vals.max()))
        _append(self.f["seeds"], n0, n1, np.asarray(batch.seeds, np.int64))
        _append_captions(self.f["captions"], n0, n1, batch.captions)
        self.n = n1

    def finish(self) -> None:
        """Set the attributes that depend on all batches (count, constant parameter values)."""
        self.f.attrs["n_trajectories"] = self.n
        for name in self.pmin:
            # The Well stores one value per file; ours vary per trajectory (see scalars/<name>).
            same = self.pmin[name] == self.pmax[name]
            self.f.attrs[name] = self.pmin[name] if same else np.nan

    def _create(self, b: GridTrajectories) -> None:
        f = self.f
        dims = list(b.coords)
        f.attrs.update({
            "dataset_name": self.system, "grid_type": "cartesian",
            "n_spatial_dims": len(dims), "n_trajectories": 0,
            "simulation_parameters": np.array(list(b.params), dtype=STR_DTYPE),
            "genphys_format": "well", "genphys_system": self.system,
            "genphys_version": genphys.__version__,
            "genphys_attrs": dumps({**b.attrs, **self.user_attrs}),
        })
        g = f.create_group("dimensions")
        g.attrs["spatial_dims"] = np.array(dims, dtype=STR_DTYPE)
        _dataset(g, "time", np.asarray(b.time, np.float64), sample_varying=False, time_varying=True)
        for d in dims:
            _dataset(g, d, np.asarray(b.coords[d], np.float64), sample_varying=False,
                     time_varying=False)
        _write_bcs(f.create_group("boundary_conditions"), b)
        g = f.create_group("scalars")
        g.attrs["field_names"] = np.array(list(b.params), dtype=STR_DTYPE)
        for name in b.params:
            ds = g.create_dataset(name, shape=(0,), maxshape=(None,), dtype=np.float64)
            ds.attrs.update({"sample_varying": True, "time_varying": False})
        g = f.create_group("t0_fields")
        g.attrs["field_names"] = np.array(list(b.fields), dtype=STR_DTYPE)
        for name, arr in b.fields.items():
            shape = arr.shape[1:]  # (T, *space)
            ds = g.create_dataset(name, shape=(0, *shape), maxshape=(None, *shape),
                                  dtype=np.float32, chunks=(1, *shape))
            ds.attrs.update({"dim_varying": np.ones(len(dims), bool), "sample_varying": True,
                             "time_varying": True})
        for order in (1, 2):
            f.create_group(f"t{order}_fields").attrs["field_names"] = np.array([], STR_DTYPE)
        f.create_dataset("seeds", shape=(0,), maxshape=(None,), dtype=np.int64)
        f.create_dataset("captions", shape=(0, 0), maxshape=(None, None), dtype=STR_DTYPE,
                         chunks=(64, 4))


def _dataset(g: h5py.Group, name: str, data: np.ndarray, **flags: bool) -> None:
    ds = g.create_dataset(name, data=data)
    ds.attrs.update(flags)


def _write_bcs(g: h5py.Group, b: GridTrajectories) -> None:
    """One boundary-condition group per axis; mask marks the two boundary points."""
    for d, x in b.coords.items():
        sub = g.create_group(f"{d}_{'periodic' if b.periodic else 'open'}")
        sub.attrs.update({
            "associated_dims": np.array([d], dtype=STR_DTYPE),
            "associated_fields": np.array([], dtype=STR_DTYPE),
            "bc_type": "PERIODIC" if b.periodic else "OPEN",
            "sample_varying": False, "time_varying": False,
        })
        mask = np.zeros(len(x), bool)
        mask[[0, -1]] = True
        sub.create_dataset("mask", data=mask)


def _append(ds: h5py.Dataset, n0: int, n1: int, data: np.ndarray) -> None:
    ds.resize(n1, axis=0)
    ds[n0:n1] = data


def _append_captions(ds: h5py.Dataset, n0: int, n1: int, captions: list[list[str]]) -> None:
    k = max([len(c) for c in captions] + [ds.shape[1]])
    ds.resize((n1, k))
    rows = np.array([list(c) + [""] * (k - len(c)) for c in captions], dtype=object)
    ds[n0:n1] = rows.reshape(n1 - n0, k)  # (b, K), padded with ""


def _check_batch_sizes(b: GridTrajectories) -> None:
    n = len(b.seeds)
    bad = [k for k, v in {**b.fields, **b.params}.items() if np.shape(v)[0] != n]
    if bad or len(b.captions) != n:
        raise UserInputError(
            f"batch has {n} seeds but entries {bad or ['captions']} have a different length.")
    for k, v in b.fields.items():
        if np.ndim(v) != 2 + len(b.coords) or np.shape(v)[1] != len(b.time):
            raise UserInputError(f"field {k!r} has shape {np.shape(v)}; expected (B, T, *space) "
                                 f"with T={len(b.time)} and {len(b.coords)} space axes.")


def _signature(b: GridTrajectories) -> GridTrajectories:
    """A copy of ``b`` without data: one trajectory slot per field (keeps memory flat)."""
    return GridTrajectories(
        system=b.system, fields={k: np.asarray(v[:1]) for k, v in b.fields.items()},
        time=np.array(b.time), coords={k: np.array(v) for k, v in b.coords.items()},
        params={k: np.asarray(v[:1]) for k, v in b.params.items()}, seeds=b.seeds[:1],
        captions=b.captions[:1], periodic=b.periodic)


def _check_compatible(a: GridTrajectories, b: GridTrajectories, n: int) -> None:
    """Later batches must have the same fields, shapes, parameters, time and grid."""
    same = (list(a.fields) == list(b.fields) and list(a.params) == list(b.params)
            and all(a.fields[k].shape[1:] == b.fields[k].shape[1:] for k in a.fields)
            and np.array_equal(a.time, b.time) and list(a.coords) == list(b.coords)
            and all(np.array_equal(a.coords[k], b.coords[k]) for k in a.coords))
    if not same:
        raise UserInputError(f"the batch starting at trajectory {n} differs from the first "
                             "batch in its fields, parameters, time or grid; all must match.")


class WellReader:
    """Read trajectories lazily from a Well-schema file (ours or a foreign one)."""

    kind = "grid"

    def __init__(self, f: h5py.File, path: str):
        self.f, self.path = f, path
        self.attrs = root_attrs(f)
        self.ours = "genphys_system" in self.attrs
        self.layout = "well (genphys)" if self.ours else "well (foreign)"
        self.system = str(self.attrs.get("genphys_system", self.attrs.get("dataset_name", "?")))
        try:
            self._parse()
        except (KeyError, IndexError, ValueError) as e:
            raise DataFormatError(
                f"{path} looks like a Well file but its layout is broken ({e}).") from None

    def _parse(self) -> None:
        f = self.f
        self.dims = str_list(f["dimensions"].attrs["spatial_dims"])
        self.n = int(self.attrs["n_trajectories"])
        self.fields: list[tuple[str, str, int]] = []  # (name, h5 path, component index)
        for order in range(3):
            grp = f.get(f"t{order}_fields")
            if grp is None:
                continue
            for name in str_list(grp.attrs.get("field_names", [])):
                if not bool(grp[name].attrs["time_varying"]):
                    continue  # constant fields are not part of a trajectory
                comps = ["".join(c) for c in itertools.product(self.dims, repeat=order)]
                for j, c in enumerate(comps):
                    self.fields.append((f"{name}_{c}" if c else name, f"t{order}_fields/{name}", j))
        self.field_names = [n for n, _, _ in self.fields]
        sc = f.get("scalars")
        names = str_list(sc.attrs.get("field_names", [])) if sc is not None else []
        self.param_names = [p for p in names if not bool(sc[p].attrs.get("time_varying", False))]
        if not self.fields:
            raise ValueError("no time-varying fields")

    def __len__(self) -> int:
        return self.n

    def _varying(self, ds: h5py.Dataset, i: int) -> np.ndarray:
        return ds[i] if bool(ds.attrs.get("sample_varying", False)) else ds[()]

    def space_shape(self) -> tuple[int, ...]:
        """Grid size per spatial axis."""
        return tuple(self.f["dimensions"][d].shape[-1] for d in self.dims)

    def item(self, i: int) -> dict[str, Any]:
        """Trajectory ``i`` as the documented grid dict (fields ``(C, T, *space)`` float32)."""
        dimg = self.f["dimensions"]
        space = self.space_shape()
        cache: dict[str, np.ndarray] = {}
        chans = []
        for _, h5path, j in self.fields:
            if h5path not in cache:
                arr = self._varying(self.f[h5path], i)  # (T, *space[, D^order])
                order = int(h5path[1])
                cache[h5path] = arr.reshape(*arr.shape[: arr.ndim - order], -1)  # (T, *space, Dc)
            a = cache[h5path]
            chans.append(np.broadcast_to(a[..., j], (a.shape[0], *space)))
        params = {p: float(self._varying(self.f["scalars"][p], i)) for p in self.param_names}
        caps = (read_captions(self.f["captions"], i) if "captions" in self.f
                else generic_captions(self.system, params))
        return {
            "fields": np.stack(chans).astype(np.float32),  # (C, T, *space)
            "field_names": list(self.field_names),
            "time": np.asarray(self._varying(dimg["time"], i), np.float64),
            "coords": {d: np.asarray(self._varying(dimg[d], i), np.float64) for d in self.dims},
            "params": params,
            "captions": caps,
            "seed": int(self.f["seeds"][i]) if "seeds" in self.f else i,
        }

    def seeds(self) -> np.ndarray:
        """All per-trajectory seeds (the index for foreign files)."""
        return self.f["seeds"][: self.n] if "seeds" in self.f else np.arange(self.n)

    def params_table(self) -> dict[str, np.ndarray]:
        """Parameter name -> values ``(n,)`` for every trajectory."""
        out = {}
        for p in self.param_names:
            ds = self.f["scalars"][p]
            v = ds[: self.n] if bool(ds.attrs.get("sample_varying", False)) else ds[()]
            out[p] = np.broadcast_to(np.asarray(v, np.float64), (self.n,))
        return out

    def info(self) -> dict[str, Any]:
        """Shapes and extents for :func:`describe`."""
        t = self.f["dimensions"]["time"][()]
        ext = {d: (float(np.min(self.f["dimensions"][d][()])),
                   float(np.max(self.f["dimensions"][d][()]))) for d in self.dims}
        bcs = sorted({to_py(g.attrs.get("bc_type", "?"))
                      for g in self.f.get("boundary_conditions", {}).values()})
        return {"shape": (len(self.fields), t.shape[-1], *self.space_shape()),
                "time": (float(np.min(t)), float(np.max(t))), "space": ext,
                "boundary": ", ".join(bcs) or "unknown"}
