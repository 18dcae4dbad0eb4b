"""Animated GIFs of trajectories (matplotlib animation, Pillow writer), written atomically.

1D fields are drawn as the line u(x) of each frame, with the frame's time in the title; an
ensemble (several samples of one condition) is drawn as its mean with a mean +- std band.
2D fields are drawn as the image of each frame (the first sample of the batch).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.animation import FuncAnimation, PillowWriter  # noqa: E402

from genphys.errors import UserInputError  # noqa: E402


def check_gif_path(out: str | os.PathLike) -> Path:
    """``out`` as a Path if it ends in .gif and its directory is writable, else one sentence."""
    out = Path(out)
    if out.suffix.lower() != ".gif":
        raise UserInputError(f"cannot write {out}: the animation file must end in .gif.")
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir() or not os.access(parent, os.W_OK):
        raise UserInputError(f"cannot write {out}: directory {parent} is missing or not writable.")
    return out


def _limits(lo: np.ndarray, hi: np.ndarray) -> tuple[float, float]:
    """Fixed y-limits over all frames with a 5 % margin (never an empty range)."""
    a, b = float(np.nanmin(lo)), float(np.nanmax(hi))
    pad = 0.05 * (b - a) if b > a else max(abs(a), 1.0) * 0.05
    return a - pad, b + pad


def animate_1d(u: np.ndarray, x: np.ndarray, t: np.ndarray, name: str = "u") -> FuncAnimation:
    """Line u(x) per frame of ``u (E, T, X)``; E > 1 draws the ensemble mean and a +-std band."""
    u = np.asarray(u, dtype=np.float64)
    if u.ndim == 2:
        u = u[None]  # (1, T, X)
    e = u.shape[0]
    mean, std = u.mean(axis=0), u.std(axis=0)  # (T, X) each; std is 0 for E = 1
    fig, ax = plt.subplots(figsize=(5.5, 3.6), constrained_layout=True)
    ax.set(xlabel="x", ylabel=name, ylim=_limits(mean - std, mean + std),
           xlim=(float(x[0]), float(x[-1])))
    (line,) = ax.plot(x, mean[0], color="C0", lw=1.6,
                      label=f"mean of {e} samples" if e > 1 else None)
    band = [ax.fill_between(x, mean[0] - std[0], mean[0] + std[0], color="C0", alpha=0.25,
                            label="mean ± std")] if e > 1 else []
    if e > 1:
        ax.legend(loc="upper right", fontsize="small")
    head = ax.set_title("")

    def update(i: int):
        line.set_ydata(mean[i])
        if band:  # a PolyCollection cannot be reshaped in place: draw a new one
            band[0].remove()
            band[0] = ax.fill_between(x, mean[i] - std[i], mean[i] + std[i], color="C0",
                                      alpha=0.25)
        head.set_text(f"{name}  t = {t[i]:.3g}")
        return [line, head, *band]

    update(0)
    return FuncAnimation(fig, update, frames=len(t), blit=False)


def animate_2d(w: np.ndarray, t: np.ndarray, name: str = "u") -> FuncAnimation:
    """Image per frame of one 2D field ``w (T, H, W)`` (first axis x, second y)."""
    w = np.asarray(w, dtype=np.float64)
    vmax = float(np.abs(w).max()) or 1.0
    fig, ax = plt.subplots(figsize=(4.4, 3.8), constrained_layout=True)
    im = ax.imshow(w[0].T, origin="lower", extent=(0, 1, 0, 1), cmap="RdBu_r",
                   vmin=-vmax, vmax=vmax)
    fig.colorbar(im, ax=ax, shrink=0.85)
    ax.set(xticks=[], yticks=[])
    head = ax.set_title("")

    def update(i: int):
        im.set_data(w[i].T)
        head.set_text(f"{name}  t = {t[i]:.3g}")
        return [im, head]

    update(0)
    return FuncAnimation(fig, update, frames=len(t), blit=False)


def save_gif(anim: FuncAnimation, out: str | os.PathLike, fps: float = 8.0) -> Path:
    """Write ``anim`` with the Pillow writer to a temporary file beside ``out``, then rename."""
    out = check_gif_path(out)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.stem}.", suffix=".gif", dir=out.parent)
    os.close(fd)
    try:
        anim.save(tmp, writer=PillowWriter(fps=fps), dpi=80)
        os.replace(tmp, out)
    finally:
        plt.close(anim._fig)  # the figure FuncAnimation draws on (no public accessor)
        if os.path.exists(tmp):
            os.remove(tmp)
    return out


def animate_fields(u: np.ndarray, time: np.ndarray, coords: dict[str, np.ndarray],
                   out: str | os.PathLike, name: str = "u", fps: float = 8.0) -> Path:
    """GIF of one field ``u (B, T, *space)``: 1D ensemble band over B, 2D sample 0."""
    u = np.asarray(u)
    if u.ndim == 3:
        anim = animate_1d(u, np.asarray(next(iter(coords.values()))), np.asarray(time), name)
    elif u.ndim == 4:
        anim = animate_2d(u[0], np.asarray(time), name)
    else:
        raise UserInputError(f"cannot animate a field with {u.ndim - 2} spatial dimensions; "
                             "allowed: 1 or 2.")
    return save_gif(anim, out, fps)


def animate_batch(batch, out: str | os.PathLike, field: str | None = None,
                  fps: float = 8.0) -> Path:
    """GIF of one field of a :class:`~genphys.physics.base.GridTrajectories` batch."""
    names = list(batch.fields)
    field = field or names[0]
    if field not in names:
        raise UserInputError(f"unknown field {field!r}; the batch has {', '.join(names)}.")
    return animate_fields(batch.fields[field], batch.time, batch.coords, out, field, fps)
