"""Shared base of the genphys pipelines: components, local save/load, conditioning, sampling.

A :class:`SimulationPipeline` is a diffusers ``DiffusionPipeline`` whose components are the
backbone (``SpaceTimeUNet``/``SpaceTimeDiT``) and an optional ``TextEncoder``; everything
else (objective, wavelet representation, normalization, conditioning) is a
:class:`~genphys.pipelines.spec.PipelineSpec`. ``DiffusionPipeline.from_pretrained`` cannot
resolve these classes by itself, so the pipelines save and load their folders themselves::

    model_index.json        diffusers index (class names, for humans and tools)
    pipeline.json           the PipelineSpec
    backbone/               config.json + diffusion_pytorch_model.safetensors
    text_encoder.json       TextEncoderConfig (only with a text encoder; weights are not copied)
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import diffusers
import numpy as np
import torch
import torch.nn.functional as F
from diffusers import DiffusionPipeline
from torch import Tensor, nn

from genphys.diffusion.config import DROPPABLE
from genphys.errors import UserInputError
from genphys.pipelines.sampling import check_sampler, check_steps, run_sampler, seeded_normal
from genphys.pipelines.spec import SPEC_FILE, PipelineSpec, check_compatible, load_spec_and_backbone
from samplers import seeded_noise
from samplers.guidance import project_mean, with_x0_correction

GUIDANCE_ALIASES = {"field": ("cond",), "text": ("tokens", "pooled")}  # user name -> slots


class SimulationPipeline(DiffusionPipeline):
    """Backbone + optional text encoder + :class:`PipelineSpec`; see the module docstring."""

    def __init__(self, backbone: nn.Module, spec: PipelineSpec, text_encoder: Any = None):
        super().__init__()
        check_compatible(spec, backbone)
        self.register_modules(backbone=backbone, text_encoder=text_encoder)
        self.spec = spec
        self.objective = spec.build_objective()
        self.rep = spec.build_representation()

    # ------------------------------------------------------------- save / load
    def save_pretrained(self, save_directory: str | os.PathLike, **_: Any) -> None:
        """Write the folder layout of the module docstring (safetensors weights, JSON)."""
        out = Path(save_directory)
        out.mkdir(parents=True, exist_ok=True)
        self.backbone.save_pretrained(out / "backbone", safe_serialization=True)
        (out / SPEC_FILE).write_text(self.spec.to_json())
        index = {"_class_name": type(self).__name__, "_diffusers_version": diffusers.__version__,
                 "backbone": ["genphys", type(self.backbone).__name__],
                 "text_encoder": [None, None]}
        te = self.text_encoder
        if te is not None and hasattr(getattr(te, "config", None), "to_dict"):
            (out / "text_encoder.json").write_text(json.dumps(te.config.to_dict(), indent=1))
            index["text_encoder"] = ["genphys", type(te).__name__]
        (out / "model_index.json").write_text(json.dumps(index, indent=1))

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, *,
                        text_encoder: Any = None, device: torch.device | str = "cpu",
                        **_: Any) -> SimulationPipeline:
        """Load a pipeline folder or a ``genphys train`` export folder (local paths only)."""
        path = Path(pretrained_model_name_or_path)
        spec, backbone = load_spec_and_backbone(path, device)
        te_file = path / "text_encoder.json"
        if text_encoder is None and _needs_text(backbone) and te_file.is_file():
            from genphys.conditioning.text import TextEncoder, TextEncoderConfig

            cfg = json.loads(te_file.read_text())
            text_encoder = TextEncoder(TextEncoderConfig.from_dict(cfg)).to(device)
        return cls(backbone=backbone, spec=spec, text_encoder=text_encoder)

    # ------------------------------------------------------------- inputs
    @property
    def _dtype_device(self) -> tuple[torch.dtype, torch.device]:
        p = next(self.backbone.parameters())
        return p.dtype, p.device

    def check_prompts(self, prompt: str | Sequence[str] | None) -> list[str] | None:
        """Prompts as a list; an empty or blank prompt is an error."""
        if prompt is None:
            return None
        prompts = [prompt] if isinstance(prompt, str) else list(prompt)
        bad = [p for p in prompts if not isinstance(p, str) or not p.strip()]
        if not prompts or bad:
            raise UserInputError(f"prompt={prompt!r} is empty; allowed: a non-empty text such as "
                                 "'Burgers flow, viscosity 0.003, one bump that steepens'.")
        return prompts

    def encode_text(self, prompts: list[str] | None, repeat: int) -> dict[str, Tensor]:
        """Text tokens/mask/pooled for the backbone (empty if the model takes no text)."""
        if prompts is None or not _needs_text(self.backbone):
            return {}
        if self.text_encoder is None:
            raise UserInputError("this model takes text but the pipeline has no text_encoder; "
                                 "pass text_encoder=TextEncoder(...) to from_pretrained.")
        emb = self.text_encoder.encode(prompts)
        cfg = self.backbone.config
        cond = {}
        if cfg.get("token_dim", 0):
            cond["tokens"] = emb.tokens.repeat_interleave(repeat, 0)  # (B, L, D)
            cond["token_mask"] = emb.mask.repeat_interleave(repeat, 0)  # (B, L)
        if cfg.get("pooled_dim", 0):
            cond["pooled"] = emb.pooled.repeat_interleave(repeat, 0)  # (B, D)
        return cond

    def encode_params(self, params: Any, prompts: list[str] | None, batch: int,
                      repeat: int) -> tuple[dict[str, Tensor], dict[str, np.ndarray]]:
        """The params slot ``(B, P)`` (NaN = unknown) and the physical values per name."""
        from genphys.pipelines.spec import parse_params

        names = self.spec.param_names
        if not self.spec.params:
            if params:
                raise UserInputError(f"params={params!r} were given but this model was trained "
                                     "without parameter conditioning.")
            return {}, {}
        rows = []
        for i in range(batch // repeat):
            given = parse_params(prompts[i], names) if prompts else {}
            given.update(_param_dict(params, names, i))
            rows.append([given.get(n, float("nan")) for n in names])
        values = torch.tensor(rows, dtype=torch.float64).repeat_interleave(repeat, 0)  # (B, P)
        slot = values.log10() if self.spec.param_transform == "log10" else values
        return {"params": slot}, {n: values[:, j].numpy() for j, n in enumerate(names)}

    def encode_initial_state(self, state: Any, batch: int, repeat: int) -> Tensor | None:
        """Physical frame(s) ``(C, *space)`` or ``(N, C, *space)`` -> normalized (B, C, *space)."""
        if state is None:
            return None
        if self.spec.condition != "first_frame":
            raise UserInputError("initial_state was given but this model was trained without "
                                 "first-frame conditioning (condition='none').")
        c, space = self.spec.field_shape[0], tuple(self.spec.field_shape[2:])
        x = torch.as_tensor(np.asarray(state), dtype=torch.float64)
        if x.ndim == len(space) + 1:
            x = x[None]  # (1, C, *space)
        if x.ndim != len(space) + 2 or x.shape[1] != c:
            raise UserInputError(f"initial_state has shape {tuple(x.shape)}; expected (C, *space) "
                                 f"or (N, C, *space) with C={c} and space={space}.")
        if x.shape[0] not in (1, batch // repeat):
            raise UserInputError(f"initial_state holds {x.shape[0]} states for "
                                 f"{batch // repeat} prompts/conditions; give 1 or "
                                 f"{batch // repeat}.")
        x = _to_grid(x, space)
        x = x.expand(batch // repeat, *x.shape[1:]).repeat_interleave(repeat, 0)  # (B, C, *space)
        return self.spec.to_normalized(x)

    def field_condition(self, frame0: Tensor | None) -> dict[str, Tensor]:
        """Frame 0 held over time and wavelet-encoded: the backbone's ``cond`` slot."""
        if frame0 is None:
            return {}
        t = self.spec.field_shape[1]
        held = frame0[:, :, None].expand(-1, -1, t, *frame0.shape[2:])  # (B, C, T, *space)
        return {"cond": self.rep.encode(held.contiguous().to(self._dtype_device[0]))}

    # ------------------------------------------------------------- sampling
    def sample_coefficients(self, cond: dict[str, Tensor], seeds: list[int], steps: int,
                            sampler: Any, guidance: Any, sigma_kind: str = "loguniform",
                            sigma_options: Mapping[str, Any] | None = None,
                            sampler_options: Mapping[str, Any] | None = None,
                            known: tuple[Tensor, int] | None = None,
                            conserve: Sequence[int] = ()) -> Tensor:
        """Model-space samples ``(B, *coeff_shape)``; sample b depends only on seeds[b].

        ``known``: (normalized frames ``(B, C, k, *space)``, k) imposed on every x0 estimate;
        ``conserve``: channels whose spatial mean is held constant in time (see
        :meth:`conserved_channels`), after the known frames are imposed.
        """
        steps, sampler = check_steps(steps), check_sampler(sampler)
        dtype, device = self._dtype_device
        cond = {k: v.to(device=device, dtype=dtype if v.is_floating_point() else v.dtype)
                for k, v in cond.items()}
        denoise = self._denoiser(cond, _guidance(guidance, cond), len(seeds))
        fixes = [self._impose_frames(*known)] if known is not None else []
        if conserve:
            fixes.append(self._conserve_means(list(conserve), known is not None))
        if fixes:  # one wavelet decode/encode per model call for all field-space fixes
            denoise = with_x0_correction(denoise, self._in_field_space(fixes))
        z = seeded_normal(seeds, self.spec.coeff_shape).to(device=device, dtype=dtype)
        try:
            sigmas = self.objective.sigmas(steps, sigma_kind, **dict(sigma_options or {}))
        except (TypeError, ValueError) as e:
            raise UserInputError(f"sigma_kind={sigma_kind!r} with options {sigma_options!r} "
                                 f"is invalid: {e}") from None
        return run_sampler(sampler, denoise, z, sigmas.to(dtype), steps,
                           noise=seeded_noise([s + 1 for s in seeds]),
                           **dict(sampler_options or {}))

    def _denoiser(self, cond: dict[str, Tensor], guidance: Any, batch: int):
        """Guided denoiser; a batch of m * B rows (FKC's particles, b-major) repeats cond."""
        cache: dict[int, Any] = {}

        def denoise(x: Tensor, sigma: Tensor) -> Tensor:
            m = x.shape[0] // batch
            if m not in cache:
                rep = {k: v.repeat_interleave(m, 0) for k, v in cond.items()}  # (m B, ...)
                cache[m] = self.objective.guided_denoiser(self.backbone, rep or None, guidance)
            return cache[m](x, sigma)

        return denoise

    def _in_field_space(self, fixes: list):
        """x0 correction applying ``fix(x, sigma) -> x`` on the decoded fields (normalized
        units, ``(m B, C, T, *space)``) in order, then encoding back."""
        def fix(x0: Tensor, sigma: Tensor) -> Tensor:
            x = self.rep.decode(x0)
            for f in fixes:
                x = f(x, sigma)
            return self.rep.encode(x)

        return fix

    @staticmethod
    def _impose_frames(frames: Tensor, k: int):
        """Field-space fix: the first k frames are set to ``frames`` (``(B, C, k, *space)``)."""
        def fix(x: Tensor, sigma: Tensor) -> Tensor:
            f = frames.to(x).repeat_interleave(x.shape[0] // frames.shape[0], 0)  # FKC: m B
            return torch.cat([f, x[:, :, k:]], dim=2)

        return fix

    @staticmethod
    def _conserve_means(channels: list[int], anchored: bool):
        """Field-space fix onto a conserved spatial mean of ``channels`` (ProbConserv-style).

        The orthogonal (L2) projection onto the trajectories whose spatial mean is the same in
        every frame: that of frame 0 when frame 0 is given (``anchored``), else the time
        average of the frames' means. The normalization is a per-channel affine map, so the
        invariant is the same in normalized units.
        """
        def fix(x: Tensor, sigma: Tensor) -> Tensor:
            space = tuple(range(3, x.ndim))
            sub = x[:, channels]
            means = sub.mean(dim=space, keepdim=True)  # (B, c, T, 1, ...)
            target = means[:, :, :1] if anchored else means.mean(dim=2, keepdim=True)
            x = x.clone()
            x[:, channels] = project_mean(target, space)(sub, sigma)
            return x

        return fix

    def conserved_channels(self, conserve: bool | None) -> list[int]:
        """Channel indices whose mean the system conserves; ``conserve``: None = if any."""
        if conserve is not None and not isinstance(conserve, bool):
            raise UserInputError(f"conserve={conserve!r} is invalid; allowed: None (on when "
                                 "the system has a conserved mean), True or False.")
        names: tuple[str, ...] = ()
        if self.spec.system is not None:
            from genphys.physics import system_class
            from genphys.physics.base import SpecError
            try:
                names = system_class(self.spec.system).conserved_means
            except SpecError:
                names = ()
        channels = [i for i, n in enumerate(self.spec.field_names) if n in names]
        if conserve and not channels:
            raise UserInputError(f"conserve=True, but system {self.spec.system!r} of this "
                                 "model declares no conserved spatial mean; use conserve=None "
                                 "or False.")
        return channels if conserve is not False else []

    def decode(self, coeffs: Tensor) -> Tensor:
        """Model space -> physical trajectories ``(B, C, T, *space)`` (IDWT, denormalize)."""
        return self.spec.to_physical(self.rep.decode(coeffs).to(torch.float64))


def _needs_text(backbone: nn.Module) -> bool:
    cfg = backbone.config
    return bool(cfg.get("token_dim", 0) or cfg.get("pooled_dim", 0))


def _param_dict(params: Any, names: Sequence[str], i: int) -> dict[str, float]:
    """Parameters of condition i from a dict (scalar or per-condition values) or a sequence."""
    if params is None:
        return {}
    if not isinstance(params, Mapping):
        params = dict(zip(names, np.atleast_1d(np.asarray(params, dtype=float)).tolist()))
    bad = [k for k in params if k not in names]
    if bad:
        raise UserInputError(f"params {bad} are unknown; this model takes {list(names)}.")
    out = {}
    for k, v in params.items():
        v = np.atleast_1d(np.asarray(v, dtype=float))
        out[k] = float(v[i] if v.size > 1 else v[0])
    return out


def _guidance(guidance: Any, cond: dict[str, Tensor]) -> float | dict[str, float] | None:
    """Guidance scale as the objective takes it; aliases ``text``/``field`` map to slots."""
    if guidance is None or not isinstance(guidance, Mapping):
        if guidance is not None and not isinstance(guidance, (int, float)):
            raise UserInputError(f"guidance_scale={guidance!r} is invalid; allowed: a number or "
                                 f"a dict such as {{'text': 3.0, 'field': 1.5}}.")
        return None if guidance is None or not cond else float(guidance)
    out = {}
    for k, v in guidance.items():
        keys = GUIDANCE_ALIASES.get(k, (k,))
        if k == "text":  # every text slot the model has (tokens and/or pooled)
            keys = tuple(s for s in keys if s in cond) or ("tokens",)
        for key in keys:
            if key not in DROPPABLE:
                raise UserInputError(f"guidance key {k!r} is unknown; allowed: text, field, "
                                     f"{', '.join(DROPPABLE)}.")
            out[key] = float(v)
    # conditions without a scale keep scale 1 instead of being dropped from every term
    out.update({k: 1.0 for k in DROPPABLE if k in cond and k not in out})
    return out


def _to_grid(x: Tensor, space: tuple[int, ...]) -> Tensor:
    """Interpolate ``(N, C, *grid)`` onto ``space`` with a warning (periodic cell centres)."""
    if tuple(x.shape[2:]) == space:
        return x
    if len(space) not in (1, 2):
        raise UserInputError(f"initial_state grid {tuple(x.shape[2:])} differs from the model "
                             f"grid {space} and cannot be interpolated in {len(space)}D.")
    warnings.warn(f"initial_state grid {tuple(x.shape[2:])} differs from the model grid {space}; "
                  "interpolating (linear).", stacklevel=3)
    mode = "linear" if len(space) == 1 else "bilinear"
    return F.interpolate(x, size=space, mode=mode, align_corners=False)
