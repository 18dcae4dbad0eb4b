"""Frames of trajectory files as point clouds, padded batches, and the cached latent dataset."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import h5py
import numpy as np
import torch

from genphys.data import open_trajectories
from genphys.errors import DataFormatError

if TYPE_CHECKING:
    from genphys.autoencoder.model import MeshAutoencoder


@dataclass
class PointTrajectory:
    """One trajectory as a point cloud: ``points (N, d)`` and ``fields (T, N, C)`` (float32)."""

    points: np.ndarray
    fields: np.ndarray
    seed: int
    shape: tuple[int, ...] | None = None  # grid files: the spatial shape the N points came from


def grid_points(coords: dict[str, np.ndarray]) -> np.ndarray:
    """Row-major node coordinates ``(prod(n), d)`` of a grid given per-axis coordinates."""
    mesh = np.meshgrid(*[np.asarray(v, np.float64) for v in coords.values()], indexing="ij")
    return np.stack(mesh, -1).reshape(-1, len(coords))  # (N, d)


def read_trajectories(path: str | os.PathLike, limit: int | None = None) -> list[PointTrajectory]:
    """Every trajectory of a grid or mesh file as a :class:`PointTrajectory`."""
    out = []
    with open_trajectories(path) as f:
        for i in range(len(f) if limit is None else min(limit, len(f))):
            item = f[i]
            if f.kind == "mesh":
                out.append(PointTrajectory(item["points"].astype(np.float32),
                                           item["fields"].astype(np.float32), int(item["seed"])))
                continue
            x = item["fields"]  # (C, T, *space)
            c, t, *space = x.shape
            fields = np.moveaxis(x.reshape(c, t, -1), 0, -1)  # (T, N, C)
            out.append(PointTrajectory(grid_points(item["coords"]).astype(np.float32),
                                       np.ascontiguousarray(fields, np.float32),
                                       int(item["seed"]), tuple(space)))
    if not out:
        raise DataFormatError(f"{path} holds no trajectories.")
    return out


def pad(points: list[torch.Tensor], fields: list[torch.Tensor]
        ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Pad point clouds of different sizes: coords ``(B, N, d)``, fields ``(B, N, C)``, mask."""
    n = max(len(p) for p in points)
    b, d, c = len(points), points[0].shape[-1], fields[0].shape[-1]
    coords = torch.zeros(b, n, d, dtype=points[0].dtype)
    vals = torch.zeros(b, n, c, dtype=fields[0].dtype)
    mask = torch.zeros(b, n, dtype=torch.bool)
    for i, (p, f) in enumerate(zip(points, fields)):
        coords[i, :len(p)], vals[i, :len(p)], mask[i, :len(p)] = p, f, True
    return coords, vals, mask


def field_stats(trajs: list[PointTrajectory]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std ``(C,)`` over every node and frame of ``trajs``."""
    flat = np.concatenate([t.fields.reshape(-1, t.fields.shape[-1]) for t in trajs])  # (M, C)
    return torch.from_numpy(flat.mean(0)), torch.from_numpy(flat.std(0))


@torch.no_grad()
def fit_latent_stats(model: MeshAutoencoder, trajs: list[PointTrajectory],
                     frames: int = 8) -> None:
    """Latent normalization from ``frames`` evenly spaced frames of every training trajectory."""
    z = []
    for tr in trajs:
        ts = np.linspace(0, len(tr.fields) - 1, min(frames, len(tr.fields))).astype(int)
        coords = torch.from_numpy(tr.points)[None].expand(len(ts), -1, -1)  # (F, N, d)
        z.append(model.encode(coords, torch.from_numpy(tr.fields[ts]), normalize=False))
    model.set_latent_stats(torch.cat(z))


def _fingerprint(model: torch.nn.Module, path: Path) -> str:
    h = hashlib.sha256(json.dumps(dict(model.config), sort_keys=True, default=str).encode())
    for v in model.state_dict().values():
        h.update(v.detach().cpu().numpy().tobytes())
    st = path.stat()
    h.update(f"{path.resolve()}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()


@torch.no_grad()
def encode_file(model: torch.nn.Module, path: str | os.PathLike, out: str | os.PathLike,
                overwrite: bool = False) -> Path:
    """Encode every trajectory of ``path`` once to ``out`` (HDF5 ``latents (n, T, C_lat, *g)``).

    The file carries a fingerprint of the model weights and the source file; when ``out``
    already matches it is returned untouched (the cache), so diffusion training never
    re-runs the encoder.
    """
    path, out = Path(path), Path(out)
    key = _fingerprint(model, path)
    if out.is_file() and not overwrite:
        with h5py.File(out, "r") as f:
            if f.attrs.get("fingerprint", "") == key:
                return out
    trajs = read_trajectories(path)
    model.eval()
    lat = []
    for tr in trajs:
        coords = torch.from_numpy(tr.points)[None].to(model.lo)  # (1, N, d)
        lat.append(model.encode_trajectory(coords, torch.from_numpy(tr.fields)[None])[0])
    tmp = out.with_suffix(out.suffix + ".tmp")
    with h5py.File(tmp, "w") as f:
        f.create_dataset("latents", data=torch.stack(lat).cpu().numpy())  # (n, T, C_lat, *g)
        f.create_dataset("seeds", data=np.array([t.seed for t in trajs], np.int64))
        f.attrs.update({"fingerprint": key, "source": str(path),
                        "model_config": json.dumps(dict(model.config), default=str),
                        "latent_mean": model.latent_mean.cpu().numpy(),
                        "latent_std": model.latent_std.cpu().numpy()})
    os.replace(tmp, out)
    return out
