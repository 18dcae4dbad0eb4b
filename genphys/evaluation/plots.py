"""Figures of an evaluation (matplotlib Agg): error vs time, spectra, sample vs truth."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from genphys.evaluation.metrics import rel_l2  # noqa: E402
from genphys.viz.plot import save_figure  # noqa: E402


def plot_error_vs_time(time: np.ndarray, curves: dict[str, np.ndarray],
                       out: str | os.PathLike) -> Path:
    """Relative L2 and nRMSE per frame (mean, 10-90 % band over trajectories) and the
    conservation drift of the samples vs the truth; ``curves``: name -> (N, T)."""
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(10, 3.8), constrained_layout=True)
    same = np.allclose(curves["rel_l2"], curves["nrmse"])  # one channel: the two coincide
    rows = [("rel_l2", "relative L2 = nRMSE (one channel)")] if same else [
        ("rel_l2", "relative L2"), ("nrmse", "nRMSE")]
    for name, label in rows:
        v = curves[name]  # (N, T)
        ax.semilogy(time, v.mean(0), label=f"{label}, mean")
        ax.fill_between(time, np.percentile(v, 10, 0), np.percentile(v, 90, 0), alpha=0.25)
    ax.set(xlabel="t", ylabel="error per frame", title="error vs time (band: 10-90 %)")
    ax.legend()
    for name, label in (("drift_pred", "samples"), ("drift_true", "solver data")):
        v = curves[name]  # (N, T)
        bx.plot(time, v.mean(0), label=label)
        bx.fill_between(time, np.percentile(v, 10, 0), np.percentile(v, 90, 0), alpha=0.25)
    bx.set(xlabel="t", ylabel="(mean_x u_t - mean_x u_0) / RMS(u_0)",
           title="conservation drift of the spatial mean")
    bx.legend()
    return save_figure(fig, out)


def plot_spectra(truth: np.ndarray, pred: np.ndarray, field_names: list[str],
                 out: str | os.PathLike) -> Path:
    """Time-averaged power per radial mode of the truth and the samples, ``(C, S)`` each."""
    c = truth.shape[0]
    fig, axes = plt.subplots(1, c, figsize=(5 * c, 3.8), constrained_layout=True, squeeze=False)
    k = np.arange(truth.shape[1])
    for j, ax in enumerate(axes[0]):
        # mode 0 (the mean) is drawn too; a floor keeps an exactly-zero power on the log axis
        floor = max(float(truth[j].max()) * 1e-16, np.finfo(float).tiny)
        ax.semilogy(k, np.maximum(truth[j], floor), "k-", label="solver data")
        ax.semilogy(k, np.maximum(pred[j], floor), "C1--", label="samples")
        if len(k) > 1:  # the axis follows modes >= 1: a zero-mean field has ~0 power at k = 0
            ax.set_ylim(bottom=0.1 * max(min(truth[j, 1:].min(), pred[j, 1:].min()), floor))
        ax.set(xlabel="mode |k|", ylabel="power", title=f"spectrum of {field_names[j]}")
        ax.legend()
    return save_figure(fig, out)


def plot_sample_vs_truth(truth: np.ndarray, sample: np.ndarray, time: np.ndarray,
                         out: str | os.PathLike, field: str = "u", title: str = "") -> Path:
    """Truth, sample and difference of one channel: x-t images (1D, ``(T, X)``) or the last
    frame (2D, ``(T, H, W)``)."""
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8), constrained_layout=True)
    last = truth.ndim == 3  # 2D: compare the final frame
    imgs = [truth[-1].T, sample[-1].T] if last else [truth, sample]
    vmax = float(max(np.abs(imgs[0]).max(), np.abs(imgs[1]).max(), 1e-300))
    diff = imgs[1] - imgs[0]
    dmax = float(max(np.abs(diff).max(), 1e-300))
    n_x = truth.shape[-1]
    extent = (0, 1, 0, 1) if last else (0, 1, float(time[0]), float(time[-1]))
    for ax, img, name, lim in zip(axes, [*imgs, diff], ["solver data", "sample", "sample - data"],
                                  [vmax, vmax, dmax]):
        im = ax.imshow(img, origin="lower", aspect="auto", extent=extent, cmap="RdBu_r",
                       vmin=-lim, vmax=lim, interpolation="nearest")
        fig.colorbar(im, ax=ax)
        ylabel = "y" if last else "t"
        ax.set(xlabel=f"x ({n_x} cells)", ylabel=ylabel, title=f"{name}: {field}"
               + (f" at t={time[-1]:.3g}" if last else ""))
    fig.suptitle(title, fontsize="medium")
    return save_figure(fig, out)


def write_plots(ev: Any, out_dir: str | os.PathLike, index: int = 0) -> list[Path]:
    """The three figures of an :class:`~genphys.evaluation.harness.Evaluation` in ``out_dir``."""
    out, rep = Path(out_dir), ev.report
    names = rep["field_names"]
    spec = rep["spectra"]
    row = rep["per_trajectory"][index]
    params = ", ".join(f"{k}={v:.3g}" for k, v in row["params"].items())
    err = rel_l2(ev.samples[index, :1], ev.data.truth[index][None])[0]  # sample 0 only
    title = f"{rep['split']} trajectory {row['index']} ({params}), sample 0: relative L2 {err:.3g}"
    return [
        plot_error_vs_time(ev.data.time, ev.per_time, out / "error_vs_time.png"),
        plot_spectra(np.stack([spec["truth"][n] for n in names]),
                     np.stack([spec["pred"][n] for n in names]), names, out / "spectra.png"),
        plot_sample_vs_truth(ev.data.truth[index, 0], ev.samples[index, 0, 0], ev.data.time,
                             out / "sample_vs_truth.png", names[0], title),
    ]
