"""``advdiff_mesh2d``: a passive scalar in a channel with random circular obstacles (P1 FEM).

Solves ``c_t + v·∇c = κΔc + s`` on ``[0, L] × [0, H]`` minus 1–3 random discs, meshed per
trajectory with Triangle, P1 elements (scikit-fem), SUPG stabilisation (Brooks & Hughes 1982)
and BDF2 in time. Boundary conditions: Dirichlet inflow profile at the inlet, natural
(zero diffusive flux) at the outlet, no flux on walls and obstacles. The carrier flow is
either potential flow around the obstacles or a uniform flow through porous, tracer-filtering
obstacles (see ``docs/systems/advdiff_mesh2d.md``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from genphys.physics import fem, mesh2d
from genphys.physics.base import MeshTrajectory, ParamSpec, PDESystem, register, trajectory_seeds
from genphys.physics.captions import compose_captions, fmt

FORCINGS = ("inflow", "source", "inflow+source", "puff")
NUMBER_WORDS = ("no", "one", "two", "three", "four", "five")


@dataclass(frozen=True)
class Config:
    """Discretisation and geometry options of ``advdiff_mesh2d``."""

    length: float = 2.0  # channel length L (flow along x)
    height: float = 1.0  # channel height H
    max_area: float = 6e-4  # Triangle area bound; about 2–3k nodes at the defaults
    min_angle: float = 30.0  # Triangle minimum angle in degrees (quality switch q)
    min_holes: int = 1  # fewest obstacles per trajectory
    max_holes: int = 3  # most obstacles per trajectory
    nt: int = 41  # saved frames, including t = 0 (same key as the grid systems)
    t_final: float = 2.0  # end time
    dt: float = 0.01  # time step; t_final/dt must be a multiple of nt - 1
    scheme: str = "bdf2"  # time scheme: bdf2, cn or be
    supg: bool = True  # streamline-upwind Petrov–Galerkin stabilisation
    uniform_prob: float = 0.25  # probability of a uniform flow through filtering obstacles

    def __post_init__(self) -> None:
        if not (self.length > 0 and self.height > 0):
            raise ValueError(f"length={self.length}, height={self.height} must be positive.")
        if not (0 <= self.min_holes <= self.max_holes <= 3):
            raise ValueError(f"min_holes={self.min_holes}, max_holes={self.max_holes} are "
                             "invalid; allowed: 0 <= min_holes <= max_holes <= 3.")
        if self.nt < 2 or self.t_final <= 0 or self.dt <= 0:
            raise ValueError(f"nt={self.nt}, t_final={self.t_final}, dt={self.dt} are "
                             "invalid; allowed: nt >= 2, t_final > 0, dt > 0.")
        steps = self.t_final / self.dt
        if abs(steps - round(steps)) > 1e-6 or round(steps) % (self.nt - 1):
            raise ValueError(f"t_final/dt={steps:g} must be an integer multiple of "
                             f"nt-1={self.nt - 1}.")
        if self.scheme not in fem.SCHEMES:
            raise ValueError(f"scheme={self.scheme!r} is unknown; allowed: "
                             + ", ".join(fem.SCHEMES) + ".")
        if not (0.0 <= self.uniform_prob <= 1.0):
            raise ValueError(f"uniform_prob={self.uniform_prob} is invalid; allowed: [0, 1].")


def _gauss(x: np.ndarray, centre: tuple[float, float], width: float) -> np.ndarray:
    """exp(−|x − centre|²/(2 width²)) for points ``x (2, ...)``."""
    return np.exp(-((x[0] - centre[0]) ** 2 + (x[1] - centre[1]) ** 2) / (2 * width**2))


def _ramp(t: float, t_ramp: float) -> float:
    """Smooth switch-on 0 → 1 over ``[0, t_ramp]`` (avoids an impulsive start)."""
    return 0.5 * (1.0 - np.cos(np.pi * min(t / t_ramp, 1.0)))


def draw_setup(rng: np.random.Generator, cfg: Config) -> dict:
    """Seeded geometry, flow kind, direction and forcing of one trajectory (JSON-able)."""
    n = int(rng.integers(cfg.min_holes, cfg.max_holes + 1))
    centres, radii = mesh2d.sample_holes(rng, n, cfg.length, cfg.height)
    direction = 1 if rng.random() < 0.5 else -1
    uniform = bool(rng.random() < cfg.uniform_prob)
    forcing = FORCINGS[int(rng.integers(len(FORCINGS)))]
    inlet = 0.0 if direction > 0 else cfg.length
    return {
        "hole_centres": centres.tolist(), "hole_radii": radii.tolist(),
        "direction": direction, "velocity": "uniform" if uniform else "potential",
        "forcing": forcing,
        "inflow_y": float(rng.uniform(0.2, 0.8) * cfg.height),
        "inflow_width": float(rng.uniform(0.05, 0.15) * cfg.height),
        # source / puff centre: 0.1–0.6 L downstream of the inlet, clear of the obstacles
        "blob_xy": _free_point(rng, cfg, centres, radii, inlet),
        "blob_width": float(rng.uniform(0.04, 0.08) * cfg.height),
    }


def _free_point(rng: np.random.Generator, cfg: Config, centres: np.ndarray, radii: np.ndarray,
                inlet: float) -> list[float]:
    """A point 0.1–0.6 L downstream of the inlet, at least 0.08 from every obstacle."""
    for _ in range(100):
        s = rng.uniform(0.1, 0.6) * cfg.length
        p = np.array([abs(inlet - s), rng.uniform(0.2, 0.8) * cfg.height])
        if all(np.hypot(*(p - c)) > r + 0.08 for c, r in zip(centres, radii)):
            return p.tolist()
    # fallback: obstacles keep 0.3 from the inlet, so this point is clear of them
    return [abs(inlet - 0.05 * cfg.length), 0.5 * cfg.height]


def simulate(cfg: Config, params: dict[str, float], setup: dict) -> dict:
    """Mesh, flow and time integration of one trajectory; returns points, cells, c (T, N)."""
    centres, radii = np.array(setup["hole_centres"]).reshape(-1, 2), np.array(setup["hole_radii"])
    points, cells = mesh2d.channel_mesh(centres, radii, cfg.max_area, cfg.length, cfg.height,
                                        cfg.min_angle)
    basis = fem.p1_basis(points, cells)
    facets = mesh2d.boundary_facets(basis.mesh, centres, radii, cfg.length, cfg.height)
    d = setup["direction"]
    inlet, outlet = ("left", "right") if d > 0 else ("right", "left")
    if setup["velocity"] == "potential":
        _, vel = fem.potential_flow(basis, facets[inlet], facets[outlet], params["speed"])
    else:
        vel = np.tile([d * params["speed"], 0.0], (len(cells), 1))  # (M, 2)
    mass, stiff, tau = fem.advdiff_operators(basis, params["kappa"], vel, cfg.supg)
    dofs, g = _dirichlet(basis, facets[inlet], points, centres, setup, params, cfg)
    c0, load = _forcing(basis, points, vel, tau, setup, params, cfg)
    steps = round(cfg.t_final / cfg.dt)
    c = fem.integrate_in_time(mass, stiff, c0, cfg.dt, steps, save_every=steps // (cfg.nt - 1),
                              scheme=cfg.scheme, dirichlet=dofs, g=g, load=load)
    pe = fem.mesh_peclet(points, cells, vel, params["kappa"])
    return {"points": points, "cells": cells, "c": c, "velocity": vel,
            "mesh_peclet_max": float(pe.max()), "mesh_peclet_median": float(np.median(pe))}


def _dirichlet(basis, inlet_facets, points, centres, setup, params, cfg):
    """Dirichlet dofs and values: inflow profile at the inlet; c = 0 behind filtering holes."""
    dofs = basis.get_dofs(inlet_facets).all()
    amp = params["amplitude"] if "inflow" in setup["forcing"] else 0.0
    prof = amp * np.exp(-(points[dofs, 1] - setup["inflow_y"]) ** 2
                        / (2 * setup["inflow_width"] ** 2))
    if setup["velocity"] == "uniform" and len(centres):
        # uniform flow enters the domain through the downstream half of each hole: clean fluid
        bnd = basis.mesh.boundary_nodes()
        lab = mesh2d.classify_points(points[bnd], centres, np.array(setup["hole_radii"]),
                                     cfg.length, cfg.height, tol=1e-9)
        on_hole, k = bnd[lab >= 4], lab[lab >= 4] - 4
        behind = on_hole[(points[on_hole, 0] - centres[k, 0]) * setup["direction"] > 0]
        behind = np.setdiff1d(behind, dofs)
        dofs, prof = np.concatenate([dofs, behind]), np.concatenate([prof, np.zeros(len(behind))])
    t_ramp = 0.05 * cfg.t_final
    return dofs, (lambda t: prof * _ramp(t, t_ramp))


def _forcing(basis, points, vel, tau, setup, params, cfg):
    """Initial state (a puff or zero) and the source load ``F(t)`` (Gaussian, switched on)."""
    xy, width = setup["blob_xy"], setup["blob_width"]
    c0 = np.zeros(basis.N)
    if setup["forcing"] == "puff":
        c0 = params["amplitude"] * _gauss(points.T, xy, width)
    load = None
    if "source" in setup["forcing"]:
        f0 = fem.load_vector(basis, lambda x: params["source_rate"] * _gauss(x, xy, width),
                             vel, tau)
        t_ramp = 0.05 * cfg.t_final
        load = lambda t: f0 * _ramp(t, t_ramp)  # noqa: E731
    return c0, load


# ------------------------------------------------------------------ features and captions
def node_areas(points: np.ndarray, cells: np.ndarray) -> np.ndarray:
    """Lumped (barycentric dual) area of every node ``(N,)``: a third of each adjacent triangle."""
    _, area = fem.element_gradients(points, cells)
    return np.bincount(cells.ravel(), weights=np.repeat(area / 3.0, 3), minlength=len(points))


def plume_features(points: np.ndarray, cells: np.ndarray, values: np.ndarray,
                   centres: np.ndarray, radii: np.ndarray, direction: int = 1,
                   length: float = 2.0, rel_threshold: float = 0.1) -> dict:
    """Where a scalar field ``values (N,)`` exceeds ``rel_threshold·max``: reach and obstacles.

    Returns ``reach_x`` (furthest downstream x inside the plume), ``reach_frac`` (that
    distance from the inlet over L), ``exits`` (plume at the outlet), ``coverage`` (area
    fraction of the plume), ``touched``/``wrapped`` (indices of obstacles whose rim the plume
    meets / meets on both the upper and the lower flank), ``peak`` and ``peak_xy``.
    """
    centres = np.asarray(centres, dtype=np.float64).reshape(-1, 2)
    radii = np.asarray(radii, dtype=np.float64)
    peak = float(values.max())
    inside = values > rel_threshold * peak if peak > 0 else np.zeros(len(values), dtype=bool)
    out = {"peak": peak, "peak_xy": points[int(np.argmax(values))].tolist(),
           "reach_x": None, "reach_frac": 0.0, "exits": False, "coverage": 0.0,
           "touched": [], "wrapped": []}
    if not inside.any():
        return out
    s = points[inside, 0] if direction > 0 else length - points[inside, 0]  # downstream distance
    out["reach_frac"] = float(s.max() / length)
    out["reach_x"] = float(points[inside, 0].max() if direction > 0 else points[inside, 0].min())
    out["exits"] = bool(s.max() >= length * (1 - 1e-9))
    area = node_areas(points, cells)
    out["coverage"] = float(area[inside].sum() / area.sum())
    for k, ((cx, cy), r) in enumerate(zip(centres, radii)):
        ring = np.hypot(points[:, 0] - cx, points[:, 1] - cy) < r + max(0.03, 0.3 * r)
        hit = ring & inside
        if hit.any():
            out["touched"].append(k)
            if (points[hit, 1] > cy + 0.5 * r).any() and (points[hit, 1] < cy - 0.5 * r).any():
                out["wrapped"].append(k)
    return out


def _where_y(y: float, height: float) -> str:
    """Vertical position in words."""
    if y < 0.35 * height:
        return "near the lower wall"
    if y > 0.65 * height:
        return "near the upper wall"
    return "mid-channel"


def _hole_facts(centres: np.ndarray, radii: np.ndarray, height: float) -> list[str]:
    """Phrasings of the obstacle count and positions."""
    n = len(radii)
    if n == 0:
        return ["no obstacles", "an empty channel"]
    each = [f"{_where_y(c[1], height)} at x≈{fmt(c[0])}" for c in centres]
    sizes = [f"radius {fmt(r)} {_where_y(c[1], height)} at x≈{fmt(c[0])}"
             for c, r in zip(centres, radii)]
    noun = "obstacle" if n == 1 else "obstacles"
    if n == 1:
        return [f"one circular obstacle {each[0]}", f"a single cylinder of {sizes[0]}"]
    lst = ", ".join(f"one {e}" for e in each[:-1]) + f" and one {each[-1]}"
    return [f"{NUMBER_WORDS[n]} {noun}, {lst}",
            f"{NUMBER_WORDS[n]} circular {noun} ({'; '.join(sizes)})"]


def _regime(pe: float) -> str:
    """Péclet number in words."""
    if pe < 20:
        return "diffusion-dominated"
    return "advection-dominated" if pe < 100 else "strongly advection-dominated"


def caption_facts(params: dict, setup: dict, feats: dict, cfg: Config) -> list[list[str]]:
    """The facts of one trajectory, each a list of alternative phrasings."""
    centres = np.array(setup["hole_centres"]).reshape(-1, 2)
    way = "left to right" if setup["direction"] > 0 else "right to left"
    u, kappa = params["speed"], params["kappa"]
    pe = u * cfg.height / kappa
    if setup["velocity"] == "potential":
        flow = [f"potential flow from {way} at speed {fmt(u)} going around the obstacles",
                f"an irrotational stream moving {way} (inflow speed {fmt(u)})"]
    else:
        flow = [f"a uniform flow from {way} at speed {fmt(u)} that passes through porous "
                "obstacles which filter out the tracer",
                f"uniform {way} flow of speed {fmt(u)} through tracer-absorbing obstacles"]
    pe_s = f"{pe:.0f}" if pe >= 10 else fmt(pe)
    regime = _regime(pe)
    article = "an" if regime[0] in "aeiou" else "a"
    diff = [f"diffusivity {fmt(kappa)} (Péclet number {pe_s}, {regime})",
            f"{article} {regime} regime with Péclet number about {pe_s}"]
    x, y = setup["blob_xy"]
    forcing = {
        "inflow": [f"a band of tracer entering at the inlet around y≈{fmt(setup['inflow_y'])}"],
        "source": [f"a Gaussian source at ({fmt(x)}, {fmt(y)}) releasing tracer"],
        "puff": [f"an initial puff of tracer at ({fmt(x)}, {fmt(y)})"],
    }
    force = [" plus ".join(forcing[k][0] for k in setup["forcing"].split("+"))]
    return [_hole_facts(centres, np.array(setup["hole_radii"]), cfg.height), flow, diff, force,
            _feature_facts(feats, centres)]


def _feature_facts(feats: dict, centres: np.ndarray) -> list[str]:
    """Phrasings of what the solution did (reach, coverage, obstacles met)."""
    if feats["reach_x"] is None:
        return ["no visible plume"]
    reach = ("leaves through the outlet" if feats["exits"]
             else f"reaches x≈{fmt(feats['reach_x'])}")
    if feats["wrapped"]:
        xs = " and ".join(f"x≈{fmt(centres[k, 0])}" for k in feats["wrapped"])
        meet = f"wraps around the {_noun(feats['wrapped'])} at {xs}"
    elif feats["touched"]:
        xs = " and ".join(f"x≈{fmt(centres[k, 0])}" for k in feats["touched"])
        meet = f"brushes the {_noun(feats['touched'])} at {xs}"
    else:
        meet = "never touches an obstacle"
    cover = f"covers about {round(100 * feats['coverage'])}% of the channel"
    return [f"a plume that {reach} and {meet}", f"a plume that {reach}, {cover} and {meet}"]


def _noun(items: list) -> str:
    """Singular or plural "obstacle"."""
    return "obstacle" if len(items) == 1 else "obstacles"


def relative_envelope(c: np.ndarray) -> np.ndarray:
    """Max over time of ``c_t / max(c_t)`` ``(N,)`` for frames ``c (T, N)``: where it went."""
    peak = c.max(axis=1, keepdims=True)  # (T, 1)
    rel = np.divide(c, peak, out=np.zeros_like(c), where=peak > 1e-12)
    return rel.max(axis=0)


# ------------------------------------------------------------------ the system
@register
class AdvDiffMesh2D(PDESystem):
    """Advection–diffusion of a tracer in a channel with random obstacles, per-sample meshes."""

    name = "advdiff_mesh2d"
    description = ("Tracer advection-diffusion c_t + v.grad c = kappa lap c + s in a 2x1 channel "
                   "with 1-3 random circular obstacles; P1 FEM + SUPG + BDF2 on a new "
                   "unstructured Triangle mesh per trajectory.")
    param_specs = (
        ParamSpec("kappa", 1e-2, 2e-3, 5e-2, log=True, doc="diffusivity"),
        ParamSpec("speed", 0.5, 0.25, 1.0, doc="inflow speed U"),
        ParamSpec("amplitude", 1.0, 0.2, 1.0, doc="inflow concentration / puff peak"),
        ParamSpec("source_rate", 2.0, 0.5, 5.0, doc="peak release rate of the Gaussian source"),
    )
    field_names = ("concentration",)
    Config = Config
    default_batch_size = 4

    def generate(self, num: int, seed: int = 0, *, start: int = 0,
                 batch_size: int | None = None,
                 progress: Callable[[int], None] | None = None) -> list[MeshTrajectory]:
        """Trajectories ``start .. start+num-1`` of run ``seed`` (each from its own seed)."""
        out = []
        for s in trajectory_seeds(seed, num, start):
            out.append(self.trajectory(int(s)))
            if progress is not None:
                progress(1)
        return out

    def trajectory(self, seed: int) -> MeshTrajectory:
        """One trajectory from its per-trajectory seed."""
        cfg = self.config
        rng = np.random.default_rng(seed)
        params = self.sample_params(rng)
        setup = draw_setup(rng, cfg)
        sol = simulate(cfg, params, setup)
        c = sol["c"]  # (T, N)
        feats = plume_features(sol["points"], sol["cells"], relative_envelope(c),
                               np.array(setup["hole_centres"]), np.array(setup["hole_radii"]),
                               setup["direction"], cfg.length)
        captions = compose_captions(
            np.random.default_rng([seed, 1]),
            ["Tracer advection-diffusion in a channel", "A scalar plume in a 2D channel flow",
             "Passive scalar transport on an unstructured mesh"],
            caption_facts(params, setup, feats, cfg), k=3, min_facts=4)
        attrs = dict(setup, n_nodes=len(sol["points"]), n_holes=len(setup["hole_radii"]),
                     mesh_peclet_max=sol["mesh_peclet_max"],
                     mesh_peclet_median=sol["mesh_peclet_median"],
                     peclet=params["speed"] * cfg.height / params["kappa"],
                     peak_concentration=float(c.max()),
                     scheme=cfg.scheme, supg=cfg.supg, dt=cfg.dt, features=feats)
        return MeshTrajectory(
            points=sol["points"], cells=sol["cells"],
            fields=c[:, :, None].astype(np.float32),  # (T, N, 1)
            field_names=list(self.field_names),
            time=np.linspace(0.0, cfg.t_final, cfg.nt), params=params, seed=seed,
            captions=captions, attrs=attrs)
