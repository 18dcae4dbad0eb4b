"""Channel geometry with circular holes: seeded sampler, quality triangulation, boundary tags.

The domain is the rectangle ``[0, L] × [0, H]`` minus 1–3 discs. Meshes come from Shewchuk's
Triangle (conforming constrained Delaunay with a minimum-angle bound; Shewchuk 1996, "Triangle:
Engineering a 2D quality mesh generator", via the ``triangle`` package). Each hole is a
polygon whose edge length matches the interior mesh size, so refinement also refines the
hole boundaries.
"""

from __future__ import annotations

import math

import numpy as np
import triangle

from genphys.errors import UserInputError


def sample_holes(rng: np.random.Generator, n: int, length: float = 2.0, height: float = 1.0,
                 r_range: tuple[float, float] = (0.06, 0.16), gap: float = 0.08,
                 end_gap: float = 0.3, tries: int = 200) -> tuple[np.ndarray, np.ndarray]:
    """Rejection-sample ``n`` non-overlapping discs: centres ``(k, 2)`` and radii ``(k,)``.

    Every disc keeps ``gap`` from the walls and from the other discs, and ``end_gap`` from
    the inflow/outflow ends. If a disc does not fit after ``tries`` draws, fewer are returned.
    """
    if n < 0:
        raise UserInputError(f"number of holes n={n} is negative; allowed: n >= 0.")
    centres: list[tuple[float, float]] = []
    radii: list[float] = []
    for _ in range(n):
        for _ in range(tries):
            r = float(rng.uniform(*r_range))
            x = float(rng.uniform(end_gap + r, length - end_gap - r))
            y = float(rng.uniform(gap + r, height - gap - r))
            if all(math.hypot(x - cx, y - cy) >= r + rc + gap
                   for (cx, cy), rc in zip(centres, radii)):
                centres.append((x, y))
                radii.append(r)
                break
    return np.array(centres, dtype=np.float64).reshape(-1, 2), np.array(radii, dtype=np.float64)


def mesh_size(max_area: float) -> float:
    """Edge length of an equilateral triangle of area ``max_area`` (target boundary spacing)."""
    return math.sqrt(4.0 * max_area / math.sqrt(3.0))


def channel_mesh(centres: np.ndarray, radii: np.ndarray, max_area: float,
                 length: float = 2.0, height: float = 1.0,
                 min_angle: float = 30.0) -> tuple[np.ndarray, np.ndarray]:
    """Quality triangulation of the channel minus the discs: points ``(N, 2)``, cells ``(M, 3)``.

    Triangle switches: ``p`` (planar straight-line graph), ``q<min_angle>`` (quality),
    ``a<max_area>`` (area bound), ``Q`` (quiet). Cells are counter-clockwise.
    """
    if not (0 < max_area < length * height):
        raise UserInputError(
            f"max_area={max_area!r} is invalid; allowed: 0 < max_area < {length * height:g}.")
    if not (0 < min_angle <= 34):
        raise UserInputError(f"min_angle={min_angle!r} is invalid; allowed: (0, 34] degrees.")
    h = mesh_size(max_area)
    verts = [[0.0, 0.0], [length, 0.0], [length, height], [0.0, height]]
    segs = [[0, 1], [1, 2], [2, 3], [3, 0]]
    for (cx, cy), r in zip(centres, radii):
        m = max(12, math.ceil(2 * math.pi * r / h))
        theta = 2 * math.pi * np.arange(m) / m
        base = len(verts)
        verts += np.c_[cx + r * np.cos(theta), cy + r * np.sin(theta)].tolist()
        segs += [[base + i, base + (i + 1) % m] for i in range(m)]
    geom = {"vertices": np.array(verts), "segments": np.array(segs)}
    if len(radii):
        geom["holes"] = np.asarray(centres, dtype=np.float64)
    # Triangle cannot parse exponents ("a3e-05"): write the area bound in fixed notation
    out = triangle.triangulate(geom, f"pq{min_angle:.6f}a{max_area:.15f}Q")
    return out["vertices"].astype(np.float64), out["triangles"].astype(np.int64)


def boundary_edges(cells: np.ndarray) -> np.ndarray:
    """Edges ``(E, 2)`` that belong to exactly one triangle (sorted node pairs)."""
    e = np.concatenate([cells[:, [0, 1]], cells[:, [1, 2]], cells[:, [2, 0]]])
    e = np.sort(e, axis=1)
    uniq, count = np.unique(e, axis=0, return_counts=True)
    return uniq[count == 1]


def classify_points(xy: np.ndarray, centres: np.ndarray, radii: np.ndarray,
                    length: float = 2.0, height: float = 1.0,
                    tol: float = 1e-9) -> np.ndarray:
    """Boundary label of points ``(P, 2)`` on ∂Ω: 0 left, 1 right, 2 bottom, 3 top, 4+k hole k."""
    lab = np.full(len(xy), -1, dtype=np.int64)
    lab[np.abs(xy[:, 1]) < tol] = 2
    lab[np.abs(xy[:, 1] - height) < tol] = 3
    lab[np.abs(xy[:, 0]) < tol] = 0  # corners count as inflow/outflow ends
    lab[np.abs(xy[:, 0] - length) < tol] = 1
    rest = lab < 0
    if rest.any():
        if not len(radii):
            raise UserInputError("a boundary point is on no wall and there are no holes.")
        d = np.linalg.norm(xy[rest, None, :] - centres[None], axis=2) - radii[None]  # (P', k)
        lab[rest] = 4 + np.argmin(np.abs(d), axis=1)
    return lab


def boundary_facets(mesh, centres: np.ndarray, radii: np.ndarray, length: float = 2.0,
                    height: float = 1.0) -> dict[str, np.ndarray]:
    """Boundary facet indices of a scikit-fem mesh by name: left, right, walls, holes, hole<k>."""
    facets = mesh.boundary_facets()
    mid = mesh.p[:, mesh.facets[:, facets]].mean(axis=1).T  # (F, 2) facet midpoints
    lab = classify_points(mid, centres, radii, length, height, tol=1e-9)
    out = {"left": facets[lab == 0], "right": facets[lab == 1],
           "walls": facets[(lab == 2) | (lab == 3)], "holes": facets[lab >= 4]}
    for k in range(len(radii)):
        out[f"hole{k}"] = facets[lab == 4 + k]
    return out
