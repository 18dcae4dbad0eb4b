"""Held-out reconstruction metrics: on-mesh error, 50%-subset encoding, finer query sets.

The relative L2 of a trajectory is ``||pred - true||_2 / ||true||_2`` over all its frames,
nodes and channels; tables report the mean over trajectories. Finer query references:
mesh data — the coarse P1 finite-element solution evaluated at the nodes of a finer mesh
of the same geometry (the function the data actually represents; a re-solve on the fine
mesh is reported too, but it also contains the coarse solver's discretization error);
periodic grid data — exact trigonometric (Fourier) interpolation to a 2× finer grid.
"""

from __future__ import annotations

import os

import numpy as np
import torch

from genphys.autoencoder.data import PointTrajectory, read_trajectories
from genphys.autoencoder.model import MeshAutoencoder
from genphys.data import open_trajectories


def rel_l2(pred: np.ndarray, true: np.ndarray) -> float:
    """``||pred - true||_2 / ||true||_2`` over every entry."""
    return float(np.linalg.norm(pred - true) / max(np.linalg.norm(true), 1e-12))


@torch.no_grad()
def reconstruct(model: MeshAutoencoder, tr: PointTrajectory, keep: np.ndarray | None = None,
                query: np.ndarray | None = None) -> np.ndarray:
    """Encode ``tr`` (from nodes ``keep``, default all) and decode at ``query`` → ``(T, Q, C)``."""
    pts = tr.points if keep is None else tr.points[keep]
    vals = tr.fields if keep is None else tr.fields[:, keep]
    z = model.encode_trajectory(torch.from_numpy(pts)[None], torch.from_numpy(vals)[None])
    q = torch.from_numpy(tr.points if query is None else query.astype(np.float32))[None]
    return model.decode_trajectory(z, q)[0].numpy()


def compression(model: MeshAutoencoder, trajs: list[PointTrajectory]) -> float:
    """Mean values per frame (N·C) divided by latent values per frame."""
    n_vals = np.mean([t.fields.shape[1] * t.fields.shape[2] for t in trajs])
    return float(n_vals / np.prod(model.latent_shape))


def evaluate(model: MeshAutoencoder, trajs: list[PointTrajectory], seed: int = 0) -> dict:
    """On-mesh relative L2 (mean over trajectories, its standard error, max, each trajectory's
    value), per-frame mean, and the error when encoding from 50% of the nodes."""
    rng = np.random.default_rng(seed)
    full, frame, half = [], [], []
    for tr in trajs:
        pred = reconstruct(model, tr)
        full.append(rel_l2(pred, tr.fields))
        norms = np.linalg.norm(tr.fields.reshape(len(tr.fields), -1), axis=1)  # (T,)
        ok = norms > 1e-3 * norms.max()  # skip all-zero initial frames
        frame.append(np.mean([rel_l2(p, t) for p, t, k in zip(pred, tr.fields, ok) if k]))
        keep = np.sort(rng.choice(len(tr.points), len(tr.points) // 2, replace=False))
        half.append(rel_l2(reconstruct(model, tr, keep=keep), tr.fields))
    sem = float(np.std(full, ddof=1) / np.sqrt(len(full))) if len(full) > 1 else float("nan")
    out = {"rel_l2": float(np.mean(full)), "rel_l2_max": float(np.max(full)),
           "rel_l2_sem": sem, "rel_l2_per_trajectory": [float(e) for e in full],
           "rel_l2_per_frame": float(np.mean(frame)), "rel_l2_subset50": float(np.mean(half)),
           "compression": compression(model, trajs), "latent_shape": list(model.latent_shape),
           "n_trajectories": len(trajs)}
    out["subset50_ratio"] = out["rel_l2_subset50"] / out["rel_l2"]
    return out


def p1_interpolate(points: np.ndarray, cells: np.ndarray, values: np.ndarray,
                   query: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """P1 interpolant of nodal ``values (T, N)`` at ``query (Q, 2)``; also the inside mask."""
    import matplotlib.tri as mtri

    tri = mtri.Triangulation(points[:, 0], points[:, 1], cells)
    finder = tri.get_trifinder()
    inside = finder(query[:, 0], query[:, 1]) >= 0  # (Q,)
    out = np.empty((len(values), len(query)), np.float64)
    for t, v in enumerate(values):
        out[t] = mtri.LinearTriInterpolator(tri, v)(query[:, 0], query[:, 1]).filled(np.nan)
    return out, inside


def fine_mesh_errors(model: MeshAutoencoder, coarse: str | os.PathLike,
                     fine: str | os.PathLike) -> dict:
    """Decode coarse encodings at the nodes of finer meshes of the same geometry (same seeds)."""
    err_p1, err_solve, err_on, outside, sizes, gap = [], [], [], [], [], []
    with open_trajectories(coarse) as fc, open_trajectories(fine) as ff:
        for i in range(len(fc)):
            c, f = fc[i], ff[i]
            if int(c["seed"]) != int(f["seed"]):
                raise ValueError(f"trajectory {i}: seeds differ between {coarse} and {fine}.")
            tr = PointTrajectory(c["points"].astype(np.float32), c["fields"].astype(np.float32),
                                 int(c["seed"]))
            on = rel_l2(reconstruct(model, tr), tr.fields)
            ref, inside = p1_interpolate(c["points"], c["cells"], c["fields"][..., 0],
                                         f["points"])  # (T, Qf)
            q = f["points"][inside]  # fine nodes outside the coarse mesh have no P1 value
            outside.append(1 - inside.mean())
            pred = reconstruct(model, tr, query=q)[..., 0]  # (T, Q)
            err_on.append(on)
            err_p1.append(rel_l2(pred, ref[:, inside]))
            err_solve.append(rel_l2(pred, f["fields"][:, inside, 0]))
            sizes.append(len(f["points"]))
            gap.append(rel_l2(ref[:, inside], f["fields"][:, inside, 0]))  # solver's own
    return {"rel_l2_on_mesh": float(np.mean(err_on)),
            "rel_l2_fine_vs_p1": float(np.mean(err_p1)),
            "rel_l2_fine_vs_resolve": float(np.mean(err_solve)),
            "fine_ratio": float(np.mean(err_p1) / np.mean(err_on)),
            "fine_nodes_outside_coarse_mesh": float(np.mean(outside)),
            "fine_nodes_mean": float(np.mean(sizes)),
            "coarse_p1_vs_resolve": float(np.mean(gap))}


def fourier_upsample(x: np.ndarray, factor: int = 2) -> np.ndarray:
    """Exact trigonometric interpolation of periodic ``x (..., n, n)`` to ``factor``× points."""
    n = x.shape[-1]
    m = n * factor
    xh = np.fft.fft2(x)
    out = np.zeros((*x.shape[:-2], m, m), complex)
    h = n // 2
    idx = np.r_[0:h, m - h:m]
    src = np.r_[0:h, n - h:n]
    out[..., idx[:, None], idx[None, :]] = xh[..., src[:, None], src[None, :]]
    out[..., h, :] = out[..., m - h, :] = 0  # drop the ambiguous Nyquist row/column
    out[..., :, h] = out[..., :, m - h] = 0
    return np.real(np.fft.ifft2(out)) * factor**2


def fine_grid_errors(model: MeshAutoencoder, path: str | os.PathLike, factor: int = 2) -> dict:
    """Decode encodings of a periodic n×n grid at a ``factor``× finer grid (Fourier reference)."""
    trajs = read_trajectories(path)
    on, fine = [], []
    for tr in trajs:
        n = tr.shape[0]
        axis = np.arange(n * factor) / (n * factor)
        q = np.stack(np.meshgrid(axis, axis, indexing="ij"), -1).reshape(-1, 2)  # (Q, 2)
        x = tr.fields[..., 0].reshape(len(tr.fields), n, n)  # (T, n, n)
        # zero the Nyquist mode of the reference too, so both sides hold the same function
        ref = fourier_upsample(x, factor).reshape(len(x), -1)  # (T, Q)
        on.append(rel_l2(reconstruct(model, tr), tr.fields))
        fine.append(rel_l2(reconstruct(model, tr, query=q)[..., 0], ref))
    return {"rel_l2_on_grid": float(np.mean(on)), "rel_l2_fine": float(np.mean(fine)),
            "fine_ratio": float(np.mean(fine) / np.mean(on))}


def fourier_truncation_errors(path: str | os.PathLike, modes: int = 16) -> dict:
    """Linear baseline: keep the ``modes``² lowest Fourier modes ``[-m/2, m/2)²`` of each frame.

    About ``modes``² real numbers per frame (Hermitian symmetry), i.e. the same budget as a
    latent of ``modes``² values; reported as trajectory relative L2 like :func:`evaluate`.
    """
    errs = []
    for tr in read_trajectories(path):
        n = tr.shape[0]
        x = tr.fields[..., 0].reshape(len(tr.fields), n, n)  # (T, n, n)
        k = np.fft.fftfreq(n, 1 / n)
        keep = (k >= -modes // 2) & (k < modes // 2)  # (n,)
        low = np.real(np.fft.ifft2(np.fft.fft2(x) * (keep[:, None] & keep[None, :])))
        errs.append(rel_l2(low, x))
    return {"modes": modes, "rel_l2": float(np.mean(errs)), "rel_l2_max": float(np.max(errs))}


def main(argv: list[str] | None = None) -> int:
    """CLI: ``python -m genphys.autoencoder.evaluate MODEL_DIR TEST.h5 [--fine FINE.h5]``."""
    import argparse
    import json

    ap = argparse.ArgumentParser(description="Held-out metrics of a saved mesh autoencoder.")
    ap.add_argument("model")
    ap.add_argument("test")
    ap.add_argument("--fine", help="mesh file re-generated with the same seeds and smaller "
                    "max_area (mesh data); grid data use a 2x Fourier-interpolated grid")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    model = MeshAutoencoder.from_pretrained(args.model).eval()
    trajs = read_trajectories(args.test)
    out = evaluate(model, trajs)
    if args.fine:
        out["fine"] = fine_mesh_errors(model, args.test, args.fine)
    elif trajs[0].shape is not None:
        out["fine"] = fine_grid_errors(model, args.test)
        side = int(round(float(np.prod(model.latent_shape)) ** 0.5))
        out["fourier_baseline"] = fourier_truncation_errors(args.test, side)
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
