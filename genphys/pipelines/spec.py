"""What a pipeline needs besides the network: :class:`PipelineSpec`, saved as ``pipeline.json``.

A spec is built from a trainer export folder (``genphys.train.export``) or read back from a
pipeline folder; both layouts load through :func:`load_spec_and_backbone`.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from genphys.data.normalize import Stats, denormalize, normalize
from genphys.diffusion import WaveletRepresentation, build_objective
from genphys.diffusion.objective import Objective
from genphys.errors import UserInputError

SPEC_FILE = "pipeline.json"
CONDITIONS = ("none", "first_frame")
PARAM_TRANSFORMS = ("none", "log10")


@dataclass(frozen=True)
class PipelineSpec:
    """Model space, conditioning and units of a trained model (JSON-able)."""

    model_kind: str  # genphys.train.tasks.BACKBONES key: "unet" or "dit"
    objective: dict[str, Any]  # ObjectiveConfig.to_dict()
    representation: dict[str, Any]  # WaveletRepresentation.to_dict() (resolved axes)
    field_shape: tuple[int, ...]  # (C, T, *space) of one physical trajectory
    coeff_shape: tuple[int, ...]  # (C', T', *space') in model space
    stats: dict[str, Any] | None = None  # Stats.to_dict(); None: data was not normalized
    condition: str = "none"  # "first_frame": frame 0 held over time goes to the cond slot
    params: bool = False  # PDE parameters go to the params slot
    param_transform: str = "none"  # "log10" for positive parameters (viscosity)
    param_names: tuple[str, ...] = ()  # names of the params slot entries, in order
    system: str | None = None  # physics system name (e.g. "burgers1d"), if known
    extra: dict[str, Any] = field(default_factory=dict)  # free metadata (time, coords, ...)

    def __post_init__(self) -> None:
        if self.condition not in CONDITIONS:
            raise UserInputError(f"condition={self.condition!r} is not supported; allowed: "
                                 f"{', '.join(CONDITIONS)}.")
        if self.param_transform not in PARAM_TRANSFORMS:
            raise UserInputError(f"param_transform={self.param_transform!r} is not supported; "
                                 f"allowed: {', '.join(PARAM_TRANSFORMS)}.")
        for name in ("field_shape", "coeff_shape", "param_names"):
            object.__setattr__(self, name, tuple(getattr(self, name)))  # JSON lists -> tuples

    # ------------------------------------------------------------- derived objects
    def build_objective(self) -> Objective:
        """The training objective (schedule, parameterization) as a sampling object."""
        return build_objective(dict(self.objective))

    def build_representation(self) -> WaveletRepresentation:
        """The wavelet model space."""
        return WaveletRepresentation.from_dict(self.representation)

    def stats_object(self) -> Stats | None:
        """Normalization statistics as :class:`Stats`."""
        return Stats.from_dict(self.stats) if self.stats is not None else None

    @property
    def field_names(self) -> tuple[str, ...]:
        """Physical field names (from the statistics) or ``u0, u1, ...``."""
        if self.stats is not None:
            return tuple(self.stats["field_names"])
        return tuple(f"u{i}" for i in range(self.field_shape[0]))

    def to_physical(self, x: torch.Tensor) -> torch.Tensor:
        """Normalized fields ``(B, C, T, *space)`` -> physical units."""
        s = self.stats_object()
        return x if s is None else denormalize(x, s, channel_dim=1)

    def to_normalized(self, x: torch.Tensor) -> torch.Tensor:
        """Physical fields ``(B, C, ...)`` -> normalized model units."""
        s = self.stats_object()
        return x if s is None else normalize(x, s, channel_dim=1)

    def to_json(self) -> str:
        """``pipeline.json`` text."""
        return json.dumps(asdict(self), indent=1)

    @classmethod
    def from_json(cls, text: str, where: str) -> PipelineSpec:
        """Inverse of :meth:`to_json`; unknown keys are rejected."""
        try:
            d = json.loads(text)
        except ValueError:
            raise UserInputError(f"{where} is not valid JSON.") from None
        valid = set(cls.__dataclass_fields__)
        bad = sorted(k for k in d if k not in valid)
        if bad:
            raise UserInputError(f"{where} has unknown keys {bad}; valid keys: "
                                 f"{', '.join(sorted(valid))}.")
        return cls(**d)


def _find_data(data_path: str | None, export: Path) -> Path | None:
    """The training file: as written, or relative to a folder above the export (the run's cwd)."""
    if not data_path:
        return None
    p = Path(data_path)
    if p.is_absolute():
        return p if p.is_file() else None
    for base in (Path.cwd(), *export.resolve().parents):
        if (base / p).is_file():
            return base / p
    return None


def _data_metadata(data: Any, n_params: int,
                   export: Path) -> tuple[tuple[str, ...], str | None, dict]:
    """(parameter names, system, grid metadata) from the training file if it is still there."""
    names = tuple(f"p{i}" for i in range(n_params))
    path = _find_data(data.path, export)
    if path is None:
        return names, None, {}
    from genphys.data.reader import open_trajectories

    with open_trajectories(path) as f:
        if len(f) == 0:
            return tuple(f.param_names) or names, f.system, {}
        item = f[0]
        t = slice(0, data.frames, data.time_stride)
        grid = {"time": np.asarray(item["time"])[t].tolist(),
                "coords": {k: np.asarray(v)[::data.space_stride].tolist()
                           for k, v in item["coords"].items()}}
        return tuple(f.param_names), f.system, grid


def spec_from_export(exp: dict[str, Any], path: str | os.PathLike) -> PipelineSpec:
    """A spec from ``genphys.train.load_export`` output."""
    from genphys.train.data import build_representation

    cfg, rep = exp["config"], exp["representation"]
    field_shape = tuple(rep["field_shape"])
    wrep = build_representation(cfg.representation, len(field_shape) + 1)
    n_params = int(getattr(exp["model"].config, "param_dim", 0) or 0)
    names, system, grid = _data_metadata(cfg.data, n_params, Path(path))
    return PipelineSpec(
        model_kind=rep["model_kind"], objective=cfg.objective.to_dict(),
        representation=wrep.to_dict(), field_shape=field_shape,
        coeff_shape=tuple(rep["coeff_shape"]),
        stats=exp["stats"].to_dict() if exp["stats"] is not None else None,
        condition=rep.get("condition", "none"), params=bool(rep.get("params", False)),
        param_transform=cfg.data.param_transform,
        param_names=names if n_params else (), system=system, extra=grid)


def load_spec_and_backbone(path: str | os.PathLike,
                           device: torch.device | str = "cpu") -> tuple[PipelineSpec, nn.Module]:
    """Read a pipeline folder (``pipeline.json``) or a trainer export folder."""
    from genphys.train.export import load_export
    from genphys.train.tasks import BACKBONES

    p = Path(path)
    if not p.is_dir():
        raise UserInputError(f"model directory {str(p)!r} does not exist; give a folder written "
                             "by pipeline.save_pretrained or by `genphys train` (run/export).")
    if (p / SPEC_FILE).is_file():
        spec = PipelineSpec.from_json((p / SPEC_FILE).read_text(), str(p / SPEC_FILE))
        if spec.model_kind not in BACKBONES or not (p / "backbone" / "config.json").is_file():
            raise UserInputError(f"{p} is not a complete genphys pipeline folder (needs "
                                 f"backbone/config.json and model_kind in {list(BACKBONES)}).")
        # weights may be stored in fp16 (shipped models); compute in fp32
        backbone = BACKBONES[spec.model_kind].from_pretrained(p, subfolder="backbone").float()
    elif (p / "representation.json").is_file():
        exp = load_export(p)
        spec, backbone = spec_from_export(exp, p), exp["model"]
    else:
        raise UserInputError(f"{p} is not a genphys model directory: it has neither "
                             f"{SPEC_FILE} (pipeline) nor representation.json (trainer export).")
    check_compatible(spec, backbone, p)
    return spec, backbone.to(device).eval()


def check_compatible(spec: PipelineSpec, backbone: nn.Module, where: Any = "the model") -> None:
    """Raise unless the backbone's slots fit the spec's model space and conditioning."""
    cfg = backbone.config
    want = {"in_channels": spec.coeff_shape[0],
            "cond_channels": spec.coeff_shape[0] if spec.condition == "first_frame" else 0,
            "param_dim": len(spec.param_names) if spec.params else 0}
    bad = {k: (cfg.get(k, 0) or 0, v) for k, v in want.items() if (cfg.get(k, 0) or 0) != v}
    if bad:
        desc = "; ".join(f"{k}={a} but the data needs {b}" for k, (a, b) in bad.items())
        raise UserInputError(f"{where}: the backbone is incompatible with its pipeline spec "
                             f"({desc}).")


_NUMBER = r"([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)"
ALIASES = {"nu": ("nu", "viscosity", "diffusivity", "diffusion coefficient", "ν"),
           "c": ("c", "speed", "velocity")}  # every phrase the data engine's captions use


def parse_params(prompt: str, names: tuple[str, ...]) -> dict[str, float]:
    """Numbers stated in a prompt for the given parameter names ("viscosity 0.003", "nu=1e-3")."""
    found: dict[str, float] = {}
    for name in names:
        words = ALIASES.get(name, (name,))
        for w in words:
            m = re.search(rf"(?<![\w.]){re.escape(w)}\s*(?:=|:|of|is)?\s*{_NUMBER}", prompt,
                          flags=re.IGNORECASE)
            if m:
                found[name] = float(m.group(1))
                break
    return found
