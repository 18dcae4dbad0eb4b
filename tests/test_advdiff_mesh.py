"""advdiff_mesh2d: convergence orders (space, time), potential flow, SUPG, determinism, captions."""

from __future__ import annotations

import json

import numpy as np
import pytest
from skfem import BilinearForm, asm
from skfem.helpers import dot, grad

from genphys.physics import fem, mesh2d
from genphys.physics.advdiff_mesh import (
    AdvDiffMesh2D,
    Config,
    plume_features,
    relative_envelope,
    simulate,
)
from genphys.physics.base import SpecError, get_system, system_class, trajectory_seeds

HOLE_C, HOLE_R = np.array([[0.8, 0.45]]), np.array([0.2])
VEL = np.array([1.0, 0.4])


def _setup(max_area, kappa, supg, centres=HOLE_C, radii=HOLE_R):
    """Mesh, basis, facets and operators for a constant velocity ``VEL``."""
    p, c = mesh2d.channel_mesh(centres, radii, max_area)
    basis = fem.p1_basis(p, c, intorder=4)
    facets = mesh2d.boundary_facets(basis.mesh, centres, radii)
    vel = np.tile(VEL, (len(c), 1))
    mass, stiff, tau = fem.advdiff_operators(basis, kappa, vel, supg)
    return p, basis, facets, vel, mass, stiff, tau


def _solve_mms(exact, grad_exact, source, max_area, kappa, dt, t_end, scheme, supg):
    """Solve with inflow Dirichlet data (x = 0) and exact Neumann flux elsewhere; L2 error."""
    p, basis, facets, vel, mass, stiff, tau = _setup(max_area, kappa, supg)
    neumann = np.concatenate([facets["right"], facets["walls"], facets["holes"]])
    dofs = basis.get_dofs(facets["left"]).all()

    def flux(x, n, t):
        gx, gy = grad_exact(x, t)
        return kappa * (gx * n[0] + gy * n[1])

    def load(t):
        return (fem.load_vector(basis, lambda x: source(x, t), vel, tau)
                + fem.boundary_load(basis, neumann, lambda x, n: flux(x, n, t)))

    steps = round(t_end / dt)
    c = fem.integrate_in_time(mass, stiff, exact(p.T, 0.0), dt, steps, save_every=steps,
                              scheme=scheme, dirichlet=dofs, g=lambda t: exact(p[dofs].T, t),
                              load=load)
    return len(p), fem.l2_error(basis, c[-1], lambda x: exact(x, steps * dt))


# ----------------------------------------------------------------------- space: order 2
KAPPA_S = 0.05


def _exact_s(x, t):
    return np.sin(2 * x[0] + t) * np.cos(1.5 * x[1]) + 0.3 * x[0] * x[1]


def _grad_s(x, t):
    return (2 * np.cos(2 * x[0] + t) * np.cos(1.5 * x[1]) + 0.3 * x[1],
            -1.5 * np.sin(2 * x[0] + t) * np.sin(1.5 * x[1]) + 0.3 * x[0])


def _source_s(x, t):
    gx, gy = _grad_s(x, t)
    lap = -6.25 * np.sin(2 * x[0] + t) * np.cos(1.5 * x[1])
    return np.cos(2 * x[0] + t) * np.cos(1.5 * x[1]) + VEL[0] * gx + VEL[1] * gy - KAPPA_S * lap


@pytest.mark.parametrize("supg", [True, False])
def test_spatial_order_two_on_channel_with_hole(supg):
    """Manufactured solution, BDF2 with dt ∝ h, 3 refinements: L2 error ~ h² (h ~ N^-1/2)."""
    res = [_solve_mms(_exact_s, _grad_s, _source_s, a, KAPPA_S, 0.04 / 2**k, 0.4, "bdf2", supg)
           for k, a in enumerate([4e-3, 1e-3, 2.5e-4])]
    (n, e) = np.array(res).T
    orders = -2 * np.log(e[1:] / e[:-1]) / np.log(n[1:] / n[:-1])
    print(f"supg={supg} nodes={n.astype(int).tolist()} L2={e.tolist()} orders={orders}")
    assert np.all(np.abs(orders - 2.0) < 0.3), orders
    assert e[-1] < 1e-3


# ----------------------------------------------------------------------- time: orders 1, 2
KAPPA_T = 0.02


def _exact_t(x, t):  # linear in space: P1 is exact in space, the error is the time error
    return (1 + x[0] + 2 * x[1]) * np.sin(3 * t) + np.cos(2 * t) * (x[0] - x[1])


def _grad_t(x, t):
    return (np.sin(3 * t) + np.cos(2 * t) + 0 * x[0], 2 * np.sin(3 * t) - np.cos(2 * t) + 0 * x[0])


def _source_t(x, t):
    gx, gy = _grad_t(x, t)
    dt_c = 3 * (1 + x[0] + 2 * x[1]) * np.cos(3 * t) - 2 * np.sin(2 * t) * (x[0] - x[1])
    return dt_c + VEL[0] * gx + VEL[1] * gy


@pytest.mark.parametrize("scheme,order,steps", [("be", 1, [10, 20, 40]),
                                                 ("cn", 2, [10, 20, 40]),
                                                 ("bdf2", 2, [40, 80, 160])])
def test_temporal_order(scheme, order, steps):
    """Exact-in-space solution: error vs dt halving gives order 1 (BE) or 2 (CN, BDF2)."""
    e = np.array([_solve_mms(_exact_t, _grad_t, _source_t, 4e-3, KAPPA_T, 1.0 / n, 1.0, scheme,
                             True)[1] for n in steps])
    orders = np.log2(e[:-1] / e[1:])
    print(f"{scheme}: L2={e.tolist()} orders={orders}")
    assert np.all(np.abs(orders - order) < 0.3), orders


# ----------------------------------------------------------------------- potential flow
def _flux(mesh, vel, facets):
    """Geometric flux Σ_F v_T·n_F |F| of the element-wise velocity through boundary facets."""
    x0, x1 = mesh.p[:, mesh.facets[0, facets]], mesh.p[:, mesh.facets[1, facets]]
    n = np.array([x1[1] - x0[1], x0[0] - x1[0]])  # (2, F) normal of length |F|
    elem = mesh.f2t[0, facets]
    outward = ((0.5 * (x0 + x1) - mesh.p[:, mesh.t[:, elem]].mean(axis=1)) * n).sum(0)
    return float((vel[elem].T * n * np.sign(outward)).sum())


def test_potential_flow_weakly_divergence_free_and_no_flux():
    """∫v·∇w = boundary data for every P1 w; zero variational flux through holes and walls."""
    centres, radii, speed = np.array([[0.8, 0.45], [1.4, 0.6]]), np.array([0.15, 0.1]), 0.7
    p, c = mesh2d.channel_mesh(centres, radii, 1e-3)
    basis = fem.p1_basis(p, c)
    facets = mesh2d.boundary_facets(basis.mesh, centres, radii)
    phi, vel = fem.potential_flow(basis, facets["left"], facets["right"], speed)
    # weak divergence: row i of K φ is ∫ v·∇φ_i; it must equal the Neumann data for every i
    stiff = asm(BilinearForm(lambda u, v, w: dot(grad(u), grad(v))), basis)
    rhs = (fem.boundary_load(basis, facets["left"], lambda x, n: -speed + 0 * x[0])
           + fem.boundary_load(basis, facets["right"], lambda x, n: speed + 0 * x[0]))
    assert np.abs(stiff @ phi - rhs).max() < 1e-10
    # variational fluxes (Hughes et al. 2000): w = 1 on the nodes of one boundary part
    weak = stiff @ phi
    for k in range(2):
        nodes = basis.get_dofs(facets[f"hole{k}"]).all()
        assert abs(weak[nodes].sum()) < 1e-10
    inflow = basis.get_dofs(facets["left"]).all()
    assert abs(weak[inflow].sum() - (-speed * 1.0)) < 1e-10
    # geometric fluxes of the element-wise velocity: in = out = U·H, holes and walls ~ 0
    f_in, f_out = _flux(basis.mesh, vel, facets["left"]), _flux(basis.mesh, vel, facets["right"])
    f_obst = _flux(basis.mesh, vel, np.concatenate([facets["holes"], facets["walls"]]))
    print(f"flux in {f_in:.6f} out {f_out:.6f} holes+walls {f_obst:.2e}")
    assert abs(f_in + speed) < 1e-3 * speed and abs(f_out - speed) < 1e-3 * speed
    assert abs(f_obst) < 0.02 * speed
    # the flow speeds up past the obstacles: max |v| above U, and stays O(U)
    s = np.linalg.norm(vel, axis=1)
    assert speed < s.max() < 4 * speed


def test_potential_flow_without_holes_is_uniform():
    """In an empty channel φ = U x is in the P1 space, so the discrete flow is exactly (U, 0)."""
    p, c = mesh2d.channel_mesh(np.zeros((0, 2)), np.zeros(0), 2e-3)
    basis = fem.p1_basis(p, c)
    facets = mesh2d.boundary_facets(basis.mesh, np.zeros((0, 2)), np.zeros(0))
    _, vel = fem.potential_flow(basis, facets["right"], facets["left"], 0.3)  # right to left
    assert np.allclose(vel, [-0.3, 0.0], atol=1e-10)


# ----------------------------------------------------------------------- SUPG, conservation
def test_supg_tau_limits():
    """τ → h/(2|v|) for Pe → ∞ and → h²/(12κ) for Pe → 0 (1D optimal upwinding)."""
    p = np.array([[0.0, 0.0], [0.1, 0.0], [0.0, 0.1]])
    c = np.array([[0, 1, 2]])
    v = np.array([[1.0, 0.0]])  # along x the streamline length is h = 0.1
    assert fem.supg_tau(p, c, v, 1e-9)[0] == pytest.approx(0.1 / 2, rel=1e-6)
    assert fem.supg_tau(p, c, v, 1e3)[0] == pytest.approx(0.1**2 / (12 * 1e3), rel=1e-6)


def _inflow_step(supg):
    """Sharp inflow band at κ = 1e-4 (mesh Péclet ~ 100): min and max of the final field."""
    p, basis, facets, vel, mass, stiff, tau = _setup(2e-3, 1e-4, supg, np.zeros((0, 2)),
                                                    np.zeros(0))
    dofs = basis.get_dofs(facets["left"]).all()
    band = (np.abs(p[dofs, 1] - 0.5) < 0.2).astype(float)
    c = fem.integrate_in_time(mass, stiff, np.zeros(len(p)), 0.02, 50, save_every=50,
                              dirichlet=dofs, g=lambda t: band)
    return c[-1].min(), c[-1].max(), fem.mesh_peclet(p, basis.mesh.t.T, vel, 1e-4).max()


def test_supg_suppresses_oscillations():
    """At mesh Péclet ≫ 1, Galerkin over/undershoots a sharp front; SUPG cuts that ≥ 2×."""
    lo_g, hi_g, pe = _inflow_step(False)
    lo_s, hi_s, _ = _inflow_step(True)
    print(f"mesh Pe {pe:.0f}: Galerkin [{lo_g:.3f}, {hi_g:.3f}], SUPG [{lo_s:.3f}, {hi_s:.3f}]")
    excess_g, excess_s = max(-lo_g, hi_g - 1), max(-lo_s, hi_s - 1)
    assert pe > 100
    assert excess_g > 0.3  # measured 0.40 (range [-0.37, 1.40])
    assert excess_s < 0.15  # measured 0.12 (range [-0.11, 1.12])
    assert excess_s < 0.5 * excess_g


def test_pure_diffusion_conserves_mass():
    """No flux everywhere and v = 0: ∫c = 1ᵀMc stays constant (to round-off) under BDF2."""
    p, c = mesh2d.channel_mesh(HOLE_C, HOLE_R, 4e-3)
    basis = fem.p1_basis(p, c)
    mass, stiff, _ = fem.advdiff_operators(basis, 0.05, np.zeros((len(c), 2)), supg=False)
    c0 = np.exp(-((p[:, 0] - 0.4) ** 2 + (p[:, 1] - 0.5) ** 2) / 0.01)
    frames = fem.integrate_in_time(mass, stiff, c0, 0.05, 20, save_every=5)
    totals = frames @ (mass.T @ np.ones(len(p)))
    assert np.allclose(totals, totals[0], rtol=1e-10)
    assert frames[-1].max() < 0.5 * c0.max()  # and it does diffuse


def test_bad_scheme_raises():
    with pytest.raises(ValueError, match="scheme='rk4'"):
        fem.integrate_in_time(np.eye(2), np.eye(2), np.zeros(2), 0.1, 1, scheme="rk4")


# ----------------------------------------------------------------------- geometry
def test_hole_sampler_keeps_gaps():
    """Discs stay ≥ gap from the walls and each other and ≥ end_gap from inlet and outlet."""
    for seed in range(50):
        rng = np.random.default_rng(seed)
        centres, radii = mesh2d.sample_holes(rng, 3, gap=0.08, end_gap=0.3)
        assert 1 <= len(radii) <= 3
        assert np.all(centres[:, 1] - radii >= 0.08) and np.all(centres[:, 1] + radii <= 0.92)
        assert np.all(centres[:, 0] - radii >= 0.3) and np.all(centres[:, 0] + radii <= 1.7)
        d = np.linalg.norm(centres[:, None] - centres[None], axis=2)  # (k, k)
        gap = d - radii[:, None] - radii[None]
        assert np.all(gap[~np.eye(len(radii), dtype=bool)] >= 0.08)


def test_mesh_boundary_tags_and_quality():
    """Tagged facets have the right lengths (H, L, polygonal 2πr) and angles are ≥ 30°."""
    centres, radii = np.array([[0.7, 0.4], [1.3, 0.6]]), np.array([0.15, 0.1])
    p, c = mesh2d.channel_mesh(centres, radii, 1e-3)
    basis = fem.p1_basis(p, c)
    f = mesh2d.boundary_facets(basis.mesh, centres, radii)

    def length(facets):
        ends = basis.mesh.p[:, basis.mesh.facets[:, facets]]  # (2, 2, F)
        e = ends[:, 1] - ends[:, 0]
        return np.linalg.norm(e, axis=0).sum()

    assert length(f["left"]) == pytest.approx(1.0) and length(f["right"]) == pytest.approx(1.0)
    assert length(f["walls"]) == pytest.approx(4.0)
    for k, r in enumerate(radii):
        # an inscribed polygon with edges ~ h: perimeter slightly below 2πr
        assert 0.98 * 2 * np.pi * r < length(f[f"hole{k}"]) < 2 * np.pi * r
    assert len(mesh2d.boundary_edges(c)) == len(basis.mesh.boundary_facets())
    # node count ~ 1/area, also for bounds Triangle would misread in exponent notation
    n_fine = len(mesh2d.channel_mesh(centres, radii, 2.5e-5)[0])
    assert 30 < n_fine / len(p) < 50
    pts = p[c]  # (M, 3, 2)
    ang = []
    for i in range(3):
        a, b = pts[:, (i + 1) % 3] - pts[:, i], pts[:, (i + 2) % 3] - pts[:, i]
        cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
        ang.append(np.degrees(np.arccos(cos)))
    assert np.min(ang) >= 30.0 - 1e-6


# ----------------------------------------------------------------------- the system
@pytest.fixture(scope="module")
def trajs():
    return get_system("advdiff_mesh2d").generate(5, seed=0)


def test_registry_and_shapes(trajs):
    assert system_class("advdiff_mesh2d") is AdvDiffMesh2D
    cfg = AdvDiffMesh2D().config
    for tr, s in zip(trajs, trajectory_seeds(0, 5)):
        n = len(tr.points)
        assert tr.seed == s
        assert tr.fields.shape == (cfg.nt, n, 1) and tr.fields.dtype == np.float32
        assert tr.cells.shape[1] == 3 and tr.cells.max() == n - 1
        assert tr.time.shape == (cfg.nt,) and tr.time[-1] == pytest.approx(cfg.t_final)
        assert tr.field_names == ["concentration"]
        assert set(tr.params) == {"kappa", "speed", "amplitude", "source_rate"}
        json.dumps(tr.attrs)  # JSON-able metadata
        assert len(tr.attrs["hole_radii"]) == tr.attrs["n_holes"] >= 1
        assert 1000 <= n <= 5000  # default config: 1–5k nodes
        c = tr.fields[..., 0]
        assert np.isfinite(c).all() and c.max() > 0
        assert c.min() > -0.05 * c.max()  # SUPG keeps under/overshoots small
        assert np.abs(c[0]).max() < 1e-12 or tr.attrs["forcing"] == "puff"


def test_determinism_and_seed_dependence(trajs):
    system = get_system("advdiff_mesh2d")
    again = system.generate(1, seed=0, start=3)[0]  # trajectory 3 alone, other batch
    ref = trajs[3]
    assert np.array_equal(again.points, ref.points) and np.array_equal(again.cells, ref.cells)
    assert np.array_equal(again.fields, ref.fields) and again.captions == ref.captions
    counts = {len(t.points) for t in trajs}
    assert len(counts) > 1  # the meshes differ between seeds
    assert not np.allclose(trajs[0].attrs["hole_centres"][0], trajs[1].attrs["hole_centres"][0])


def test_overrides_and_config_errors():
    system = get_system("advdiff_mesh2d", kappa=0.01, nt=11, t_final=0.5, dt=0.01)
    tr = system.generate(1, seed=1)[0]
    assert tr.params["kappa"] == 0.01 and tr.fields.shape[0] == 11
    with pytest.raises(SpecError, match="nt-1"):
        get_system("advdiff_mesh2d", nt=7)
    with pytest.raises(SpecError, match="kappa"):
        get_system("advdiff_mesh2d", kappa=1.0)
    with pytest.raises(SpecError, match="valid keys"):
        get_system("advdiff_mesh2d", holes=2)
    with pytest.raises(SpecError, match="scheme"):
        get_system("advdiff_mesh2d", scheme="rk4")


@pytest.mark.parametrize("kappa,lowest", [(0.02, 1.7), (0.002, 1.5)])
def test_system_self_convergence(kappa, lowest):
    """The generator's own pipeline (potential flow, inflow + source, SUPG, BDF2) converges.

    Three meshes (area /4, dt /2 each); differences of the final frame at fixed probe points
    shrink like h^p: p ≈ 2 when diffusive, ≥ 1.5 (the SUPG estimate) when advection-dominated.
    """
    setup = {"hole_centres": [[0.8, 0.5]], "hole_radii": [0.15], "direction": 1,
             "velocity": "potential", "forcing": "inflow+source", "inflow_y": 0.4,
             "inflow_width": 0.12, "blob_xy": [0.4, 0.7], "blob_width": 0.06}
    params = {"kappa": kappa, "speed": 0.5, "amplitude": 1.0, "source_rate": 2.0}
    rng = np.random.default_rng(0)
    q = np.c_[rng.uniform(0.05, 1.95, 400), rng.uniform(0.05, 0.95, 400)]  # (P, 2) probes
    q = q[np.hypot(q[:, 0] - 0.8, q[:, 1] - 0.5) > 0.2]
    vals = []
    for k in range(3):
        cfg = Config(max_area=2e-3 / 4**k, dt=0.02 / 2**k, t_final=1.0, nt=11)
        sol = simulate(cfg, params, setup)
        vals.append(fem.p1_basis(sol["points"], sol["cells"]).probes(q.T) @ sol["c"][-1])
    d = [np.sqrt(np.mean((a - b) ** 2)) for a, b in zip(vals, vals[1:])]
    order = np.log2(d[0] / d[1])  # h halves between levels
    print(f"kappa={kappa}: differences {d}, order {order:.2f}")
    assert lowest < order < 2.3


# ----------------------------------------------------------------------- captions, features
def test_captions(trajs):
    words = {1: "one", 2: "two", 3: "three"}
    for tr in trajs:
        caps = tr.captions
        assert len(caps) >= 3 and len(set(caps)) == len(caps)
        text = " ".join(caps).lower()
        n = tr.attrs["n_holes"]
        assert (words[n] in text) or (n == 1 and "single" in text)
        assert "péclet" in text or "diffusivity" in text
        assert ("left to right" in text) == (tr.attrs["direction"] > 0)
        assert "plume" in text
        feats = tr.attrs["features"]
        if feats["exits"]:
            assert "outlet" in text


def _feature_mesh():
    centres, radii = np.array([[1.0, 0.5]]), np.array([0.15])
    p, c = mesh2d.channel_mesh(centres, radii, 1e-3)
    return p, c, centres, radii


def test_plume_features_on_constructed_fields():
    """Reach, exit, coverage and touched/wrapped obstacles on hand-made fields."""
    p, c, centres, radii = _feature_mesh()
    x, y = p[:, 0], p[:, 1]
    f = plume_features(p, c, (x < 0.6).astype(float), centres, radii)
    assert f["reach_x"] == pytest.approx(0.6, abs=0.05)
    assert f["reach_frac"] == pytest.approx(0.3, abs=0.03)
    assert not f["exits"] and f["touched"] == [] and f["wrapped"] == []
    assert f["coverage"] == pytest.approx(0.6 / (2 - np.pi * 0.15**2), abs=0.03)
    band = ((np.abs(y - 0.5) < 0.3) & (x < 1.5)).astype(float)
    f = plume_features(p, c, band, centres, radii)
    assert f["touched"] == [0] and f["wrapped"] == [0]
    f = plume_features(p, c, ((y > 0.55) & (x < 1.5)).astype(float), centres, radii)
    assert f["touched"] == [0] and f["wrapped"] == []
    f = plume_features(p, c, (x > 1.4).astype(float), centres, radii, direction=-1)
    assert f["reach_x"] == pytest.approx(1.4, abs=0.05)
    assert f["reach_frac"] == pytest.approx(0.3, abs=0.03)  # measured from the right inlet
    assert f["touched"] == []  # the rim band ends at x = 1.0 + 0.15 + 0.045 < 1.4
    f = plume_features(p, c, np.ones(len(p)), centres, radii)
    assert f["exits"] and f["coverage"] == pytest.approx(1.0)
    assert plume_features(p, c, np.zeros(len(p)), centres, radii)["reach_x"] is None


def test_relative_envelope_tracks_moving_puff():
    """A decaying puff moving right is 'inside' wherever it was the frame's maximum."""
    x = np.linspace(0, 2, 201)
    frames = np.stack([np.exp(-((x - 0.3 - 0.3 * k) ** 2) / 0.01) * 0.5**k for k in range(5)])
    env = relative_envelope(frames)  # (N,)
    assert env[np.argmin(np.abs(x - 1.5))] == pytest.approx(1.0)
    assert env.max() == pytest.approx(1.0) and env[-1] < 1e-3
    assert np.all(relative_envelope(np.zeros((3, 4))) == 0)
