"""Concatenate trajectory files of one system (shards generated with different run seeds).

``genphys data ns2d --num 144 --seed 6`` and ``--seed 7`` on two machines (or two cores)
give two shards whose trajectories are all distinct (trajectory ``i`` of run seed ``s`` is
seeded by ``(s, i)``); :func:`merge_trajectories` joins them into one file of the same
schema, atomically, after checking that they describe the same system on the same grid or
with the same fields and contain no trajectory twice.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np

from genphys.data.reader import TrajectoryFile, open_trajectories
from genphys.data.writer import _grid_batches, check_target, write_trajectories
from genphys.errors import UserInputError
from genphys.physics.base import MeshTrajectory

# per-run metadata that may differ between shards; everything else in genphys_attrs must match
_PER_RUN_KEYS = ("seed", "overrides", "merged_from")
# solver options that change speed, not the data (ns2d's torch threads)
_PERFORMANCE_KEYS = ("threads",)
_OUR_LAYOUTS = ("well (genphys)", "genphys mesh")


def _signature(f: TrajectoryFile) -> dict[str, Any]:
    """What must be equal for two files to be merged."""
    sig: dict[str, Any] = {"kind": f.kind, "system": f.system, "fields": f.field_names,
                           "params": f.param_names}
    first = f[0]
    sig["time"] = np.asarray(first["time"]).tolist()
    if f.kind == "grid":
        sig["coords"] = {k: np.asarray(v).tolist() for k, v in first["coords"].items()}
        sig["boundary"] = f.info()["boundary"]
    meta = _meta(f)
    sig["config"] = {k: v for k, v in meta.items() if k not in _PER_RUN_KEYS}
    if isinstance(sig["config"].get("config"), dict):
        sig["config"]["config"] = {k: v for k, v in sig["config"]["config"].items()
                                   if k not in _PERFORMANCE_KEYS}
    return sig


def _meta(f: TrajectoryFile) -> dict[str, Any]:
    meta = f.attrs.get("genphys_attrs", {})
    return meta if isinstance(meta, dict) else {}


def _mesh_batches(src: TrajectoryFile, batch_size: int) -> Iterator[list[MeshTrajectory]]:
    for start in range(0, len(src), batch_size):
        yield [MeshTrajectory(points=it["points"], cells=it["cells"], fields=it["fields"],
                              field_names=list(it["field_names"]), time=it["time"],
                              params=dict(it["params"]), seed=int(it["seed"]),
                              captions=list(it["captions"]), attrs=dict(it["attrs"]))
               for it in (src[i] for i in range(start, min(start + batch_size, len(src))))]


def merge_trajectories(path_out: str | os.PathLike, inputs: Sequence[str | os.PathLike], *,
                       overwrite: bool = False, batch_size: int = 32) -> Path:
    """Write every trajectory of ``inputs`` (in order) to ``path_out``; returns its path.

    The inputs must be files written by genphys holding the same system with the same fields,
    parameters, time axis and solver config (grids: also coordinates and boundary; options
    that only change speed, like ns2d's ``threads``, may differ), and no trajectory seed twice
    — a repeated seed means one run seed was generated twice. ``--set`` overrides may differ
    (e.g. shards over different parameter ranges). The root metadata keeps the first input's
    config and records every source under ``merged_from`` (resolved path, run seed,
    overrides, count, genphys version, and its own ``merged_from`` for merged inputs).
    """
    if isinstance(inputs, (str, os.PathLike)):
        raise UserInputError("inputs must be a list of files, not one path; pass [path].")
    if len(inputs) < 1:
        raise UserInputError("give at least one input file to merge.")
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise UserInputError(f"batch_size={batch_size!r} is not allowed; use a positive integer.")
    out = check_target(path_out, overwrite)
    resolved = [Path(p).resolve() for p in inputs]
    if out.resolve() in resolved:
        raise UserInputError(f"the output {out} is also an input; write to a new file.")
    with ExitStack() as stack:
        files = [stack.enter_context(open_trajectories(p)) for p in inputs]
        for path, f in zip(inputs, files):
            if f.layout not in _OUR_LAYOUTS:
                raise UserInputError(f"{path} is a {f.layout} file; merge joins only files "
                                     "written by `genphys data`.")
            if not len(f):
                raise UserInputError(f"{path} holds no trajectories.")
        ref = _signature(files[0])
        seen: dict[int, str] = {}
        sources = []
        for path, full, f in zip(inputs, resolved, files):
            sig = _signature(f)
            diff = sorted(k for k in set(ref) | set(sig) if ref.get(k) != sig.get(k))
            if diff:
                raise UserInputError(
                    f"cannot merge {path} with {inputs[0]}: they differ in "
                    f"{', '.join(diff)} (merge only shards of one system and configuration).")
            for seed in f.seeds().tolist():
                if seed in seen:
                    raise UserInputError(
                        f"trajectory seed {seed} is in both {seen[seed]} and {path}: the shards "
                        "overlap (one run seed used twice, or a rare 32-bit seed collision); "
                        "regenerate one shard with another --seed.")
                seen[seed] = str(path)
            meta = _meta(f)
            src = {"path": str(full), "n": len(f), "seed": meta.get("seed"),
                   "overrides": meta.get("overrides", []),
                   "genphys_version": f.attrs.get("genphys_version")}
            if "merged_from" in meta:
                src["merged_from"] = meta["merged_from"]
            sources.append(src)

        base = _meta(files[0])
        attrs = {**{k: v for k, v in base.items() if k not in _PER_RUN_KEYS},
                 "merged_from": sources}

        def batches() -> Iterator[Any]:
            for f in files:
                if f.kind == "grid":
                    periodic = "PERIODIC" in f.info()["boundary"]
                    for b in _grid_batches(f, batch_size, 1, 1, periodic):
                        b.attrs = {}  # provenance is in merged_from
                        yield b
                else:
                    yield from _mesh_batches(f, batch_size)

        return write_trajectories(out, batches(), system_name=files[0].system,
                                  overwrite=overwrite, attrs=attrs)
