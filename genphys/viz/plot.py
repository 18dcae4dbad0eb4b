"""Trajectory plots written atomically (a failed plot never leaves a half-written image)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.tri as mtri  # noqa: E402
import numpy as np  # noqa: E402

from genphys.errors import UserInputError  # noqa: E402

FORMATS = (".png", ".pdf", ".svg", ".jpg", ".jpeg")


def _title(item: dict, field: str) -> str:
    params = ", ".join(f"{k}={v:.3g}" for k, v in item.get("params", {}).items())
    if len(params) > 60:  # keep the title on one line
        params = params[:57] + "..."
    return f"{field}  ({params})" if params else field


def _frame_ids(n_time: int, frames: int) -> np.ndarray:
    return np.unique(np.linspace(0, n_time - 1, min(frames, n_time)).round().astype(int))


def plot_grid_1d(u: np.ndarray, x: np.ndarray, t: np.ndarray, title: str = "") -> plt.Figure:
    """x–t image of one 1D field ``u (T, X)``, time upwards."""
    fig, ax = plt.subplots(figsize=(6, 4.2), constrained_layout=True)
    im = ax.pcolormesh(x, t, u, shading="nearest", cmap="RdBu_r",
                       vmin=-np.abs(u).max(), vmax=np.abs(u).max())
    fig.colorbar(im, ax=ax)
    ax.set(xlabel="x", ylabel="t", title=title)
    return fig


def plot_grid_2d(w: np.ndarray, t: np.ndarray, frames: int = 5, title: str = "") -> plt.Figure:
    """A row of frames of one 2D field ``w (T, H, W)`` (first axis x, second y)."""
    ids = _frame_ids(len(t), frames)
    fig, axes = plt.subplots(1, len(ids), figsize=(2.6 * len(ids), 2.9),
                             constrained_layout=True, squeeze=False)
    vmax = np.abs(w[ids]).max()
    for ax, i in zip(axes[0], ids):
        im = ax.imshow(w[i].T, origin="lower", extent=(0, 1, 0, 1), cmap="RdBu_r",
                       vmin=-vmax, vmax=vmax)
        ax.set(title=f"t={t[i]:.3g}", xticks=[], yticks=[])
    fig.colorbar(im, ax=axes[0].tolist(), shrink=0.8)
    fig.suptitle(title)
    return fig


def plot_mesh(points: np.ndarray, cells: np.ndarray, c: np.ndarray, t: np.ndarray,
              frames: int = 5, title: str = "") -> plt.Figure:
    """Tripcolor frames of one nodal field ``c (T, N)`` on a triangular mesh, two per row."""
    ids = _frame_ids(len(t), frames)
    tri = mtri.Triangulation(points[:, 0], points[:, 1], cells)
    span = np.ptp(points, axis=0)
    aspect = span[1] / max(span[0], 1e-12)
    ncols = 1 if len(ids) == 1 else 2
    nrows = -(-len(ids) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols + 1, 0.6 + 4.2 * aspect * nrows),
                             constrained_layout=True, squeeze=False)
    lo, hi = float(c[ids].min()), float(c[ids].max())
    for ax in axes.flat:
        ax.set_axis_off()
    for ax, i in zip(axes.flat, ids):
        im = ax.tripcolor(tri, c[i], shading="gouraud", cmap="viridis", vmin=lo, vmax=hi)
        ax.triplot(tri, lw=0.1, color="k", alpha=0.2)
        ax.set(aspect="equal", title=f"t={t[i]:.3g}")
    fig.colorbar(im, ax=axes.ravel().tolist(), shrink=0.8)
    fig.suptitle(title, fontsize="medium")
    return fig


def save_figure(fig: plt.Figure, out: str | os.PathLike) -> Path:
    """Save to a temporary file beside ``out`` and rename, so ``out`` is complete or absent."""
    out = Path(out)
    if out.suffix.lower() not in FORMATS:
        raise UserInputError(f"cannot write {out}: image format must be one of "
                             f"{', '.join(FORMATS)}.")
    if not out.parent.exists() or not os.access(out.parent, os.W_OK):
        raise UserInputError(f"cannot write {out}: directory {out.parent} is missing or "
                             "not writable.")
    fd, tmp = tempfile.mkstemp(prefix=f".{out.stem}.", suffix=out.suffix, dir=out.parent)
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=120)
        os.replace(tmp, out)
    finally:
        plt.close(fig)
        if os.path.exists(tmp):
            os.remove(tmp)
    return out


def plot_file(path: str | os.PathLike, index: int, out: str | os.PathLike,
              field: str | None = None, frames: int = 5) -> Path:
    """Plot trajectory ``index`` of a trajectory file (any layout ``open_trajectories`` reads)."""
    from genphys.data import open_trajectories

    with open_trajectories(path) as f:
        n = len(f)
        if not 0 <= index < n:
            raise UserInputError(f"--index {index} is out of range: the file has {n} trajectories "
                                 f"(0..{n - 1}).")
        item = f[index]
    names = list(item["field_names"])
    field = field or names[0]
    if field not in names:
        raise UserInputError(f"unknown field {field!r}; the file has {', '.join(names)}.")
    k = names.index(field)
    t = np.asarray(item["time"])
    if "points" in item:  # mesh: fields (T, N, C)
        fig = plot_mesh(item["points"], item["cells"], item["fields"][..., k], t, frames,
                        _title(item, field))
    else:  # grid: fields (C, T, *space)
        u = item["fields"][k]
        coords = item["coords"]
        if u.ndim == 2:
            fig = plot_grid_1d(u, np.asarray(next(iter(coords.values()))), t, _title(item, field))
        elif u.ndim == 3:
            fig = plot_grid_2d(u, t, frames, _title(item, field))
        else:
            raise UserInputError(f"cannot plot a field with {u.ndim - 1} spatial dimensions.")
    return save_figure(fig, out)
