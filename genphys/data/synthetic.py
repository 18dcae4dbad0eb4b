"""Tiny synthetic trajectories (seeded random fields) for tests, examples and docs.

They are not solutions of any PDE: they only exercise the storage layer with known values.
"""

from __future__ import annotations

import numpy as np

from genphys.physics.base import GridTrajectories, MeshTrajectory, trajectory_seeds


def toy_grid(num: int, *, start: int = 0, seed: int = 0, space: tuple[int, ...] = (16,),
             n_t: int = 5, fields: tuple[str, ...] = ("u",), system: str = "toy1d",
             periodic: bool = True) -> GridTrajectories:
    """``num`` random grid trajectories ``start..start+num-1``; each depends only on its seed."""
    seeds = trajectory_seeds(seed, num, start)
    rngs = [np.random.default_rng(int(s)) for s in seeds]
    data = {f: np.stack([1.5 * r.standard_normal((n_t, *space)) + 0.3 * (c + 1)
                         for r in rngs]).astype(np.float32)  # (B, T, *space)
            for c, f in enumerate(fields)}
    nu = np.array([r.uniform(1e-3, 1e-1) for r in rngs])
    amp = np.array([r.uniform(0.5, 2.0) for r in rngs])
    axes = ("x", "y", "z")[: len(space)]
    return GridTrajectories(
        system=system, fields=data, time=np.linspace(0.0, 1.0, n_t),
        coords={a: (np.arange(n) + 0.5) / n for a, n in zip(axes, space)},
        params={"nu": nu, "amplitude": amp}, seeds=seeds,
        captions=[[f"Toy flow {int(s)} with viscosity {v:.3g}.", f"Toy caption B {int(s)}.",
                   f"Toy caption C, amplitude {a:.3g}."] for s, v, a in zip(seeds, nu, amp)],
        periodic=periodic, attrs={"solver": "toy", "n_t": n_t},
    )


def toy_mesh(num: int, *, start: int = 0, seed: int = 0, n_t: int = 4,
             system: str = "toymesh") -> list[MeshTrajectory]:
    """``num`` random trajectories on small structured triangulations of varying size."""
    out = []
    for s in trajectory_seeds(seed, num, start):
        r = np.random.default_rng(int(s))
        n = int(r.integers(3, 6))  # nodes per side
        xs, ys = np.meshgrid(np.linspace(0, 1, n), np.linspace(0, 2, n), indexing="ij")
        points = np.column_stack([xs.ravel(), ys.ravel()])  # (n*n, 2)
        idx = np.arange(n * n).reshape(n, n)
        a, b, c, d = idx[:-1, :-1].ravel(), idx[1:, :-1].ravel(), idx[1:, 1:].ravel(), \
            idx[:-1, 1:].ravel()
        cells = np.concatenate([np.column_stack([a, b, c]), np.column_stack([a, c, d])])
        out.append(MeshTrajectory(
            points=points, cells=cells.astype(np.int64),
            fields=r.standard_normal((n_t, n * n, 2)).astype(np.float32),
            field_names=["c", "p"], time=np.linspace(0, 0.5, n_t),
            params={"kappa": float(r.uniform(0.01, 0.1))}, seed=int(s),
            captions=[f"Mesh toy {int(s)}.", "Second caption.", "Third caption."],
            attrs={"holes": [[0.5, 1.0, 0.1]], "n": n},
        ))
    return out
