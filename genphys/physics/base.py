"""Shared pieces of every PDE system: parameter specs, trajectory containers, seeding, registry.

A *system* (``burgers1d``, ``ns2d``, ...) is a subclass of :class:`PDESystem` with

- ``name``/``description`` and ``param_specs``: the physical parameters sampled per
  trajectory (with ranges and defaults);
- a frozen dataclass ``Config`` of discretisation options (resolution, frames, ...);
- :meth:`PDESystem.generate`, which draws ``num`` trajectories from per-trajectory seeds
  (trajectory ``i`` of a run with seed ``s`` is the same whatever the batch size or ``num``).

Overrides (``genphys data SYSTEM --set key=value``) are either config fields
(``nx=256``), a fixed parameter value (``nu=0.01``) or a narrowed range
(``nu_min=0.005``, ``nu_max=0.05``); anything else is rejected with the list of valid keys.
"""

from __future__ import annotations

import dataclasses
import importlib
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from genphys.errors import UserInputError


class SpecError(UserInputError):
    """A bad system name, parameter, override or value (one clear sentence)."""


@dataclass(frozen=True)
class ParamSpec:
    """One physical parameter: default, allowed range, and how it is sampled."""

    name: str
    default: float
    low: float
    high: float
    log: bool = False  # sample log-uniformly in [low, high] instead of uniformly
    doc: str = ""

    def check(self, value: float, what: str | None = None) -> float:
        """Return ``value`` as float or raise :class:`SpecError` if it is outside the range."""
        v = float(value)
        if not math.isfinite(v) or not (self.low <= v <= self.high):
            raise SpecError(
                f"{what or self.name}={value!r} is out of range: "
                f"allowed [{self.low:g}, {self.high:g}]."
            )
        return v

    def sample(self, rng: np.random.Generator, low: float | None = None,
               high: float | None = None) -> float:
        """Draw one value in ``[low, high]`` (default the full range)."""
        lo = self.low if low is None else low
        hi = self.high if high is None else high
        if lo == hi:
            return float(lo)
        if self.log:
            return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))
        return float(rng.uniform(lo, hi))


def trajectory_seeds(seed: int, num: int, start: int = 0) -> np.ndarray:
    """Per-trajectory seeds ``(num,)`` int64 derived from a run seed; independent of batching."""
    return np.array(
        [np.random.SeedSequence([int(seed), i]).generate_state(1, np.uint32)[0]
         for i in range(start, start + num)],
        dtype=np.int64,
    )


@dataclass
class GridTrajectories:
    """A batch of trajectories on a regular grid (what grid systems return).

    ``fields[name]`` has shape ``(B, T, *space)`` (The Well layout, one array per scalar field).
    """

    system: str
    fields: dict[str, np.ndarray]  # name -> (B, T, *space) float32
    time: np.ndarray  # (T,) float64
    coords: dict[str, np.ndarray]  # spatial axis name ("x", "y") -> (n,) cell-centre/point coords
    params: dict[str, np.ndarray]  # parameter name -> (B,) float64
    seeds: np.ndarray  # (B,) int64 per-trajectory seeds
    captions: list[list[str]]  # B lists of >= 3 captions
    periodic: bool = True
    attrs: dict[str, Any] = field(default_factory=dict)  # solver/config metadata (JSON-able)

    def __len__(self) -> int:
        return len(self.seeds)

    @staticmethod
    def concat(parts: Sequence[GridTrajectories]) -> GridTrajectories:
        """Concatenate batches along the trajectory axis."""
        first = parts[0]
        return dataclasses.replace(
            first,
            fields={k: np.concatenate([p.fields[k] for p in parts]) for k in first.fields},
            params={k: np.concatenate([p.params[k] for p in parts]) for k in first.params},
            seeds=np.concatenate([p.seeds for p in parts]),
            captions=[c for p in parts for c in p.captions],
        )


@dataclass
class MeshTrajectory:
    """One trajectory on its own unstructured triangular mesh."""

    points: np.ndarray  # (N, 2) float64 node coordinates
    cells: np.ndarray  # (M, 3) int64 triangles
    fields: np.ndarray  # (T, N, C) float32 nodal values
    field_names: list[str]
    time: np.ndarray  # (T,) float64
    params: dict[str, float]
    seed: int
    captions: list[str]
    attrs: dict[str, Any] = field(default_factory=dict)  # e.g. hole centres/radii (JSON-able)


class PDESystem(ABC):
    """Base class of a PDE system: spec + batched solver + seeded sampler + captioner."""

    name: ClassVar[str]
    description: ClassVar[str]
    param_specs: ClassVar[tuple[ParamSpec, ...]]
    field_names: ClassVar[tuple[str, ...]]
    Config: ClassVar[type]  # frozen dataclass of discretisation options
    default_batch_size: ClassVar[int] = 16
    # fields whose spatial mean the PDE conserves exactly (periodic conservation laws); the
    # pipelines project generated trajectories onto that invariant (``conserve=``)
    conserved_means: ClassVar[tuple[str, ...]] = ()

    def __init__(self, **overrides: Any) -> None:
        self.config, self.fixed, self.ranges = self._parse_overrides(overrides)

    # ----------------------------------------------------------------- overrides
    @classmethod
    def valid_keys(cls) -> list[str]:
        """Every key accepted by ``--set``."""
        keys = [f.name for f in dataclasses.fields(cls.Config)]
        for p in cls.param_specs:
            keys += [p.name, f"{p.name}_min", f"{p.name}_max"]
        return keys

    @classmethod
    def _parse_overrides(cls, overrides: dict[str, Any]):
        cfg_fields = {f.name: f for f in dataclasses.fields(cls.Config)}
        specs = {p.name: p for p in cls.param_specs}
        cfg_kw: dict[str, Any] = {}
        fixed: dict[str, float] = {}
        ranges = {p.name: [p.low, p.high] for p in cls.param_specs}
        for key, value in overrides.items():
            if key in cfg_fields:
                cfg_kw[key] = _coerce(value, cfg_fields[key].type, key)
            elif key in specs:
                fixed[key] = specs[key].check(value)
            elif key.endswith(("_min", "_max")) and key[:-4] in specs:
                p = specs[key[:-4]]
                ranges[p.name][0 if key.endswith("_min") else 1] = p.check(value, key)
            else:
                raise SpecError(
                    f"unknown key {key!r} for system {cls.name!r}; valid keys: "
                    + ", ".join(cls.valid_keys()) + "."
                )
        for name, (lo, hi) in ranges.items():
            if lo > hi:
                raise SpecError(f"{name}_min={lo:g} is larger than {name}_max={hi:g}.")
        try:
            config = cls.Config(**cfg_kw)
        except (TypeError, ValueError) as e:
            raise SpecError(str(e)) from None
        return config, fixed, {k: tuple(v) for k, v in ranges.items()}

    def sample_params(self, rng: np.random.Generator) -> dict[str, float]:
        """Draw this trajectory's parameters (fixed overrides win over sampling)."""
        out = {}
        for p in self.param_specs:  # always draw, so fixing one param leaves others unchanged
            v = p.sample(rng, *self.ranges[p.name])
            out[p.name] = self.fixed.get(p.name, v)
        return out

    # ----------------------------------------------------------------- generation
    @abstractmethod
    def generate(self, num: int, seed: int = 0, *, start: int = 0,
                 batch_size: int | None = None,
                 progress: Callable[[int], None] | None = None):
        """Generate trajectories ``start .. start+num-1`` of run ``seed``.

        Grid systems return :class:`GridTrajectories`; mesh systems a list of
        :class:`MeshTrajectory`. ``progress(k)`` is called after every k finished trajectories.
        """

    def iter_batches(self, num: int, seed: int = 0, batch_size: int | None = None,
                     progress: Callable[[int], None] | None = None) -> Iterator[Any]:
        """Yield successive generated batches (for streaming to disk)."""
        bs = batch_size or self.default_batch_size
        for start in range(0, num, bs):
            yield self.generate(min(bs, num - start), seed, start=start, batch_size=bs,
                                progress=progress)


def _coerce(value: Any, typ: Any, key: str) -> Any:
    """Coerce a CLI string to a config field's declared type."""
    t = typ if isinstance(typ, str) else getattr(typ, "__name__", str(typ))
    try:
        if t == "int":
            f = float(value)
            if f != int(f):
                raise ValueError
            return int(f)
        if t == "float":
            return float(value)
        if t == "bool":
            if isinstance(value, bool):
                return value
            s = str(value).lower()
            if s in ("1", "true", "yes", "on"):
                return True
            if s in ("0", "false", "no", "off"):
                return False
            raise ValueError
    except (TypeError, ValueError):
        raise SpecError(f"{key}={value!r} is not a valid {t}.") from None
    return value


# ------------------------------------------------------------------- registry
# Systems are imported lazily (scikit-fem and the mesher load only when a mesh system is used).
SYSTEM_MODULES: dict[str, str] = {
    "burgers1d": "genphys.physics.burgers",
    "advection1d": "genphys.physics.advection",
    "ns2d": "genphys.physics.ns2d",
    "advdiff_mesh2d": "genphys.physics.advdiff_mesh",
}
SYSTEMS: dict[str, type[PDESystem]] = {}


def register(cls: type[PDESystem]) -> type[PDESystem]:
    """Class decorator adding a system to :data:`SYSTEMS`."""
    SYSTEMS[cls.name] = cls
    return cls


def system_class(name: str) -> type[PDESystem]:
    """The class of a system by name (imports its module on first use)."""
    if name not in SYSTEM_MODULES:
        raise SpecError(f"unknown system {name!r}; available: {', '.join(SYSTEM_MODULES)}.")
    if name not in SYSTEMS:
        importlib.import_module(SYSTEM_MODULES[name])
    return SYSTEMS[name]


def get_system(name: str, **overrides: Any) -> PDESystem:
    """Instantiate a registered system by name, with ``--set``-style overrides."""
    return system_class(name)(**overrides)
