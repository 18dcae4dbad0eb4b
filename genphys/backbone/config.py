"""Validation helpers for backbone constructor arguments (``register_to_config`` values).

diffusers' ``ConfigMixin`` writes tuples to ``config.json`` as lists, so a reloaded model
sees lists; :func:`as_tuple` normalises them back. Bad values raise one-sentence errors.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from genphys.errors import UserInputError


def as_tuple(value: Sequence[int] | int | None, name: str, length: int | None = None,
             minimum: int = 1) -> tuple[int, ...] | None:
    """Return ``value`` as a tuple of ints (lists from config.json included) or raise."""
    if value is None:
        return None
    vals = (value,) if isinstance(value, int) else tuple(value)
    ok = all(isinstance(v, int) and not isinstance(v, bool) and v >= minimum for v in vals)
    if not vals or not ok or (length is not None and len(vals) != length):
        need = f"{length} " if length is not None else ""
        raise UserInputError(f"{name}={value!r} is invalid; allowed: a tuple of {need}"
                             f"integers >= {minimum}.")
    return vals


def check_choice(value: Any, name: str, allowed: Sequence[str]) -> str:
    """Raise unless ``value`` is one of ``allowed``."""
    if value not in allowed:
        raise UserInputError(f"{name}={value!r} is not allowed; choose one of {list(allowed)}.")
    return value


def check_int(value: Any, name: str, minimum: int = 0) -> int:
    """Raise unless ``value`` is an integer ``>= minimum``."""
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise UserInputError(f"{name}={value!r} is invalid; allowed: an integer >= {minimum}.")
    return value


def check_heads(dim: int, num_heads: int, name: str = "hidden_dim") -> None:
    """Raise unless the width splits evenly into attention heads."""
    check_int(num_heads, "num_heads", 1)
    if dim % num_heads:
        raise UserInputError(f"{name}={dim} is not divisible by num_heads={num_heads}; "
                             f"choose a width that is a multiple of the head count.")
