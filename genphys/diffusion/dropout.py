"""Conditioning dropout for classifier-free guidance (Ho & Salimans 2022), per sample and key.

Each condition key is dropped independently in each sample with its own probability, so the
trained model knows every subset of conditions and multi-condition guidance
(``samplers.guidance.multi_cfg``) can scale each one separately. A dropped condition is
written in the form the backbones map to exactly the same output as an absent one
(``None``): NaN rows for ``params``/``pooled`` (learned null embedding), an all-False
``token_mask`` row for ``tokens`` (only the learned null token is attended to), zeroed
``cond`` and ``cond_mask`` rows for ``cond`` (the backbone's zero fill for a missing field).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from genphys.diffusion.config import DROPPABLE
from genphys.errors import UserInputError

__all__ = ["drop_conditions", "null_conditions", "COMPANIONS"]

COMPANIONS = {"tokens": "token_mask", "cond": "cond_mask"}  # masks that belong to a condition
KNOWN = ("params", "pooled", "tokens", "token_mask", "cond", "cond_mask")


def check_cond(cond: Mapping[str, Any] | None) -> dict[str, Any]:
    """Return ``cond`` as a dict; reject keys the backbones do not take."""
    if cond is None:
        return {}
    if not isinstance(cond, Mapping):
        raise UserInputError(f"cond must be a dict of backbone inputs, got {type(cond).__name__}.")
    bad = [k for k in cond if k not in KNOWN]
    if bad:
        raise UserInputError(f"cond keys {bad} are not backbone inputs; allowed: "
                             f"{', '.join(KNOWN)}.")
    return dict(cond)


def _bcast(keep: Tensor, v: Tensor) -> Tensor:
    return keep.reshape(-1, *([1] * (v.ndim - 1)))  # (B, 1, ..., 1)


def _drop(cond: dict[str, Any], key: str, keep: Tensor) -> None:
    """Write the dropped form of ``cond[key]`` for samples where ``keep`` is False (in place)."""
    v = torch.as_tensor(cond[key])
    if key in ("params", "pooled"):
        v = v if v.is_floating_point() else v.float()
        cond[key] = torch.where(_bcast(keep.to(v.device), v), v, torch.full_like(v, float("nan")))
        return
    mask_key = COMPANIONS[key]
    if key == "tokens":
        mask = cond.get(mask_key)
        mask = torch.ones(v.shape[:2], dtype=torch.bool, device=v.device) if mask is None \
            else torch.as_tensor(mask, device=v.device).bool()  # (B, L)
        cond[mask_key] = mask & keep.to(v.device)[:, None]
        return
    mask = cond.get(mask_key)
    mask = torch.ones_like(v[:, :1]) if mask is None else torch.as_tensor(mask).to(v)  # (B, 1|C,..)
    k = _bcast(keep.to(v.device), v).to(v.dtype)
    cond[key], cond[mask_key] = v * k, mask * k


def drop_conditions(cond: Mapping[str, Any] | None, rates: Mapping[str, float], batch: int,
                    generator: torch.Generator | None = None
                    ) -> tuple[dict[str, Any], dict[str, Tensor]]:
    """Drop each present condition key per sample with probability ``rates[key]``.

    Returns the new condition dict and the keep masks ``{key: (B,) bool}`` of the keys that
    were considered. One uniform vector is drawn per key in the fixed order of ``DROPPABLE``
    (from ``generator`` if given), so the result is deterministic given the generator.
    """
    out = check_cond(cond)
    keeps: dict[str, Tensor] = {}
    for key in DROPPABLE:
        p = float(rates.get(key, 0.0))
        if p <= 0.0 or out.get(key) is None:
            continue
        dev = generator.device if generator is not None else torch.device("cpu")
        keep = torch.rand(batch, generator=generator, device=dev) >= p  # (B,)
        _drop(out, key, keep)
        keeps[key] = keep
    return out, keeps


def null_conditions(cond: Mapping[str, Any] | None, keys: Any = DROPPABLE) -> dict[str, Any]:
    """``cond`` with the conditions in ``keys`` (and their masks) removed: the null condition."""
    out = check_cond(cond)
    for key in keys:
        out.pop(key, None)
        if key in COMPANIONS:
            out.pop(COMPANIONS[key], None)
    return out
