"""PDE systems: typed specs, batched reference solvers, seeded initial conditions, captions."""

from genphys.physics.base import (
    SYSTEM_MODULES,
    GridTrajectories,
    MeshTrajectory,
    ParamSpec,
    PDESystem,
    SpecError,
    get_system,
    system_class,
    trajectory_seeds,
)

__all__ = [
    "SYSTEM_MODULES",
    "GridTrajectories",
    "MeshTrajectory",
    "ParamSpec",
    "PDESystem",
    "SpecError",
    "get_system",
    "system_class",
    "trajectory_seeds",
]
