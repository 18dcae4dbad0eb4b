"""P1 finite elements on triangles (scikit-fem): advection–diffusion operators, SUPG, time stepping.

Weak form of ``c_t + v·∇c = κΔc + s`` with natural (zero diffusive flux) boundaries:

    (c_t, w + τ v·∇w) + κ(∇c, ∇w) + (v·∇c, w + τ v·∇w) = (s, w + τ v·∇w) + ∫_Γ g w

The ``τ`` terms are the streamline-upwind Petrov–Galerkin stabilisation of Brooks & Hughes
(1982, CMAME 32:199); for P1 elements the element-wise ``κΔc`` residual term vanishes, so the
method stays consistent (exact solutions satisfy the stabilised equations). Time stepping is
backward Euler, Crank–Nicolson or BDF2 (started by one Crank–Nicolson step), each with one
sparse LU factorisation (``scipy.sparse.linalg.splu``) reused for every step.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import splu
from skfem import (
    Basis,
    BilinearForm,
    ElementTriP1,
    FacetBasis,
    Functional,
    LinearForm,
    MeshTri,
    asm,
)
from skfem.helpers import dot, grad

from genphys.errors import UserInputError

SCHEMES = ("be", "cn", "bdf2")


def p1_basis(points: np.ndarray, cells: np.ndarray, intorder: int = 2) -> Basis:
    """A scikit-fem P1 basis on the triangle mesh ``points (N, 2)``, ``cells (M, 3)``."""
    mesh = MeshTri(np.ascontiguousarray(points.T, dtype=np.float64),
                   np.ascontiguousarray(cells.T, dtype=np.int64))
    return Basis(mesh, ElementTriP1(), intorder=intorder)


def element_gradients(points: np.ndarray, cells: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Barycentric-coordinate gradients ``(M, 3, 2)`` and areas ``(M,)`` of each triangle."""
    p = points[cells]  # (M, 3, 2)
    e1, e2 = p[:, 1] - p[:, 0], p[:, 2] - p[:, 0]
    det = e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]
    # rows of the inverse Jacobian are the gradients of λ1, λ2; ∇λ0 = -(∇λ1 + ∇λ2)
    g1 = np.stack([e2[:, 1], -e2[:, 0]], axis=1) / det[:, None]
    g2 = np.stack([-e1[:, 1], e1[:, 0]], axis=1) / det[:, None]
    grads = np.stack([-(g1 + g2), g1, g2], axis=1)  # (M, 3, 2)
    return grads, 0.5 * np.abs(det)


def supg_tau(points: np.ndarray, cells: np.ndarray, vel_elem: np.ndarray,
             kappa: float) -> np.ndarray:
    """SUPG parameter per element ``(M,)``: τ = h/(2|v|)·(coth Pe − 1/Pe), Pe = |v|h/(2κ).

    ``h`` is the element length along the flow, h = 2|v| / Σ_i |v·∇λ_i| (Tezduyar & Park
    1986); the coth formula is the optimal 1D upwinding (Brooks & Hughes 1982).
    """
    grads, _ = element_gradients(points, cells)
    speed = np.linalg.norm(vel_elem, axis=1)  # (M,)
    proj = np.abs(np.einsum("mkd,md->mk", grads, vel_elem)).sum(axis=1)  # Σ_i |v·∇λ_i|
    tau = np.zeros_like(speed)
    ok = (speed > 1e-14) & (proj > 0)
    h = 2.0 * speed[ok] / proj[ok]
    pe = speed[ok] * h / (2.0 * kappa)
    # coth(Pe) - 1/Pe, with its series Pe/3 - Pe^3/45 for small Pe (avoids cancellation)
    xi = np.where(pe > 1e-3, 1.0 / np.tanh(np.maximum(pe, 1e-3)) - 1.0 / np.maximum(pe, 1e-3),
                  pe / 3.0 - pe**3 / 45.0)
    tau[ok] = h / (2.0 * speed[ok]) * xi
    return tau


def mesh_peclet(points: np.ndarray, cells: np.ndarray, vel_elem: np.ndarray,
                kappa: float) -> np.ndarray:
    """Element Péclet numbers ``(M,)``: |v| h / (2κ) with the streamline length ``h``."""
    grads, _ = element_gradients(points, cells)
    speed = np.linalg.norm(vel_elem, axis=1)
    proj = np.abs(np.einsum("mkd,md->mk", grads, vel_elem)).sum(axis=1)
    h = np.where(proj > 0, 2.0 * speed / np.maximum(proj, 1e-300), 0.0)
    return speed * h / (2.0 * kappa)


@BilinearForm
def _mass_form(u, v, w):
    return u * (v + w.tau * dot(w.vel, grad(v)))


@BilinearForm
def _stiff_form(u, v, w):
    return w.kappa * dot(grad(u), grad(v)) + dot(w.vel, grad(u)) * (v + w.tau * dot(w.vel, grad(v)))


@LinearForm
def _load_form(v, w):
    return w.f * (v + w.tau * dot(w.vel, grad(v)))


def _qp(basis: Basis, elem: np.ndarray) -> np.ndarray:
    """Broadcast per-element values ``(..., M)`` to quadrature points ``(..., M, Q)``."""
    return np.repeat(elem[..., None], len(basis.W), axis=-1)


def advdiff_operators(basis: Basis, kappa: float, vel_elem: np.ndarray,
                      supg: bool = True) -> tuple[sp.csr_matrix, sp.csr_matrix, np.ndarray]:
    """Mass ``M`` and operator ``K`` (diffusion + advection, SUPG-tested) and τ ``(M,)``.

    ``vel_elem`` is the element-wise constant velocity ``(M, 2)``.
    """
    points, cells = basis.mesh.p.T, basis.mesh.t.T
    tau = supg_tau(points, cells, vel_elem, kappa) if supg else np.zeros(len(cells))
    kw = dict(vel=_qp(basis, vel_elem.T), tau=_qp(basis, tau))  # (2, M, Q), (M, Q)
    mass = asm(_mass_form, basis, **kw).tocsr()
    stiff = asm(_stiff_form, basis, kappa=float(kappa), **kw).tocsr()
    return mass, stiff, tau


def load_vector(basis: Basis, f: Callable[[np.ndarray], np.ndarray], vel_elem: np.ndarray,
                tau: np.ndarray) -> np.ndarray:
    """SUPG-consistent load ``(s, w + τ v·∇w)`` for a source ``f(x (2, M, Q)) -> (M, Q)``."""
    return asm(_load_form, basis, f=f(np.asarray(basis.global_coordinates())),
               vel=_qp(basis, vel_elem.T), tau=_qp(basis, tau))


def boundary_load(basis: Basis, facets: np.ndarray,
                  g: Callable[[np.ndarray, np.ndarray], np.ndarray],
                  intorder: int = 4) -> np.ndarray:
    """Neumann load ``∫_Γ g w`` over ``facets``; ``g(x, n)`` gets points and outward normals."""
    fb = FacetBasis(basis.mesh, basis.elem, facets=facets, intorder=intorder)

    @LinearForm
    def form(v, w):
        return g(w.x, w.n) * v

    return asm(form, fb)


def element_velocity(basis: Basis, phi: np.ndarray) -> np.ndarray:
    """The element-wise constant gradient ``(M, 2)`` of a P1 field ``phi (N,)``."""
    grads, _ = element_gradients(basis.mesh.p.T, basis.mesh.t.T)
    return np.einsum("mkd,mk->md", grads, phi[basis.mesh.t.T])  # (M, 2)


def potential_flow(basis: Basis, inflow: np.ndarray, outflow: np.ndarray,
                   speed: float) -> tuple[np.ndarray, np.ndarray]:
    """Potential ``φ (N,)`` and velocity ``∇φ (M, 2)`` of irrotational flow through a channel.

    Solves −Δφ = 0 with ∂φ/∂n = −U on the ``inflow`` facets, +U on the ``outflow`` facets
    (equal lengths) and 0 elsewhere (walls, holes); φ is pinned to 0 at node 0.
    """
    stiff = asm(BilinearForm(lambda u, v, w: dot(grad(u), grad(v))), basis).tocsr()
    rhs = (boundary_load(basis, inflow, lambda x, n: -speed + 0 * x[0])
           + boundary_load(basis, outflow, lambda x, n: speed + 0 * x[0]))
    free = np.arange(1, basis.N)
    phi = np.zeros(basis.N)
    phi[free] = splu(stiff[free][:, free].tocsc()).solve(rhs[free])
    return phi, element_velocity(basis, phi)


def l2_error(basis: Basis, c: np.ndarray, exact: Callable[[np.ndarray], np.ndarray]) -> float:
    """‖c_h − c_exact‖_{L²(Ω)} with the basis' quadrature (use ``intorder`` ≥ 4)."""

    @Functional
    def err2(w):
        return (w.ch - exact(w.x)) ** 2

    return float(np.sqrt(err2.assemble(basis, ch=basis.interpolate(c))))


def integrate_in_time(mass: sp.spmatrix, stiff: sp.spmatrix, c0: np.ndarray, dt: float,
                      n_steps: int, *, save_every: int = 1, scheme: str = "bdf2",
                      dirichlet: np.ndarray | None = None,
                      g: Callable[[float], np.ndarray] | None = None,
                      load: Callable[[float], np.ndarray] | None = None) -> np.ndarray:
    """Solve ``M c' + K c = F(t)`` with Dirichlet values ``g(t)`` on ``dirichlet`` dofs.

    Returns the saved states ``(1 + n_steps // save_every, N)`` (the first is ``c0``).
    Schemes: backward Euler, Crank–Nicolson, BDF2 (Hairer & Wanner II, §V.1) started by
    one Crank–Nicolson step; each left-hand side is LU-factorised once.
    """
    if scheme not in SCHEMES:
        raise UserInputError(f"scheme={scheme!r} is unknown; allowed: {', '.join(SCHEMES)}.")
    n = len(c0)
    dofs = np.zeros(0, dtype=np.int64) if dirichlet is None else np.asarray(dirichlet)
    free = np.setdiff1d(np.arange(n), dofs)
    gfun = g if g is not None else (lambda t: np.zeros(len(dofs)))
    ffun = load if load is not None else (lambda t: np.zeros(n))
    # BDF2 starts with one Crank–Nicolson step (local error O(dt³), keeps the global O(dt²))
    first = _Implicit(mass + dt * stiff if scheme == "be" else mass + 0.5 * dt * stiff, free, dofs)
    main = _Implicit(1.5 * mass + dt * stiff, free, dofs) if scheme == "bdf2" else first
    c_prev, c = None, np.array(c0, dtype=np.float64)
    out = [c.copy()]
    for k in range(1, n_steps + 1):
        t = k * dt
        if scheme == "cn" or (scheme == "bdf2" and c_prev is None):
            rhs = mass @ c - 0.5 * dt * (stiff @ c) + 0.5 * dt * (ffun(t - dt) + ffun(t))
        elif scheme == "be":
            rhs = mass @ c + dt * ffun(t)
        else:
            rhs = mass @ (2.0 * c - 0.5 * c_prev) + dt * ffun(t)
        solver = first if (scheme != "bdf2" or c_prev is None) else main
        c_prev, c = c, solver.solve(rhs, gfun(t))
        if k % save_every == 0:
            out.append(c.copy())
    return np.stack(out)


class _Implicit:
    """One factorised left-hand side with Dirichlet dofs condensed out."""

    def __init__(self, lhs: sp.spmatrix, free: np.ndarray, dofs: np.ndarray) -> None:
        lhs = sp.csr_matrix(lhs)
        self.free, self.dofs, self.n = free, dofs, lhs.shape[0]
        self.lu = splu(lhs[free][:, free].tocsc())
        self.coupling = lhs[free][:, dofs]

    def solve(self, rhs: np.ndarray, g: np.ndarray) -> np.ndarray:
        c = np.empty(self.n)
        c[self.dofs] = g
        c[self.free] = self.lu.solve(rhs[self.free] - self.coupling @ g)
        return c
