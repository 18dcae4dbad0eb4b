"""A human-readable summary of a trajectory file (what ``genphys inspect`` prints)."""

from __future__ import annotations

import os
from pathlib import Path

from genphys.data.reader import open_trajectories
from genphys.physics.captions import fmt


def _size(n_bytes: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n_bytes < 1024 or unit == "GiB":
            return f"{n_bytes:.0f} {unit}" if unit == "B" else f"{n_bytes:.1f} {unit}"
        n_bytes /= 1024
    return ""


def _extent(lo: float, hi: float) -> str:
    return f"[{fmt(lo, 4)}, {fmt(hi, 4)}]"


def describe(path: str | os.PathLike, n_captions: int = 3) -> str:
    """Layout, system, counts, field shapes, extents, parameter ranges, sample captions, size."""
    p = Path(path)
    with open_trajectories(p) as f:
        info = f.info()
        lines = [
            f"file:         {p} ({_size(p.stat().st_size)})",
            f"layout:       {f.layout}",
            f"system:       {f.system}",
            f"kind:         {f.kind}",
            f"trajectories: {len(f)}",
            f"fields:       {', '.join(f.field_names)}",
        ]
        if info:
            if f.kind == "grid":
                lines.append(f"shape:        {tuple(info['shape'])} per trajectory (C, T, *space)")
                if "boundary" in info:
                    lines.append(f"boundary:     {info['boundary']}")
            else:
                lines.append(f"shape:        {tuple(info['shape'])} for trajectory 0 (T, N, C), "
                             f"{info['cells']} triangles")
                lines.append(f"nodes:        {info['nodes'][0]}..{info['nodes'][1]} per mesh")
            lines.append(f"time:         {_extent(*info['time'])}")
            for d, (lo, hi) in info["space"].items():
                lines.append(f"{d + ':':<13} {_extent(lo, hi)}")
        ranges = f.param_ranges()
        if ranges:
            lines.append("parameters:")
            lines += [f"  {k:<12}{_extent(lo, hi)}" for k, (lo, hi) in ranges.items()]
        if len(f):
            caps = f[0]["captions"][:n_captions]
            lines.append("captions of trajectory 0:")
            lines += [f"  - {c}" for c in caps] or ["  (none)"]
    return "\n".join(lines)
