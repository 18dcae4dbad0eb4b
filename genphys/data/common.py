"""Small helpers shared by the HDF5 readers and writers: attribute conversion, JSON, strings."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from genphys.errors import DataFormatError

STR_DTYPE = h5py.string_dtype("utf-8")  # variable-length UTF-8 strings (captions, names)


def to_py(value: Any) -> Any:
    """An HDF5 attribute value as plain Python (str, int, float, bool, list)."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.ndarray):
        return [to_py(v) for v in value.tolist()] if value.ndim else to_py(value.item())
    if isinstance(value, (list, tuple)):
        return [to_py(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def str_list(value: Any) -> list[str]:
    """An attribute holding one name or a list of names, as a list of str."""
    v = to_py(value)
    if v is None:
        return []
    if isinstance(v, str):
        return [v]
    return [str(x) for x in v]


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    return repr(obj)


def dumps(obj: Any) -> str:
    """JSON text of metadata (numpy scalars/arrays become numbers/lists)."""
    return json.dumps(obj, default=_json_default, sort_keys=True)


def loads(text: Any, where: str) -> Any:
    """Parse a JSON attribute; a broken one is a :class:`DataFormatError`."""
    try:
        return json.loads(to_py(text))
    except (TypeError, ValueError):
        raise DataFormatError(f"{where} is not valid JSON text.") from None


def root_attrs(f: h5py.File) -> dict[str, Any]:
    """The root attributes as a plain dict (``genphys_attrs`` JSON is parsed)."""
    out = {k: to_py(v) for k, v in f.attrs.items()}
    if "genphys_attrs" in out:
        out["genphys_attrs"] = loads(out["genphys_attrs"], "root attribute genphys_attrs")
    return out


def read_captions(ds: h5py.Dataset, i: int) -> list[str]:
    """Row ``i`` of a ``[B, K]`` caption dataset, without the empty padding strings."""
    row = ds[i]  # (K,) bytes or str
    return [s for s in (to_py(x) for x in row) if s]


def generic_captions(system: str, params: dict[str, float]) -> list[str]:
    """Plain captions for files that carry none (foreign Well files, PDEBench imports)."""
    from genphys.physics.captions import fmt

    name = system.replace("_", " ")
    if not params:
        return [f"A {name} simulation.", f"{name} trajectory.", f"Simulation of {name}."]
    ps = ", ".join(f"{k}={fmt(v, 3)}" for k, v in params.items())
    return [f"A {name} simulation with {ps}.", f"{name} trajectory, {ps}.",
            f"Simulation of {name} at {ps}."]
