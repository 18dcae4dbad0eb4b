"""Typed configs: YAML maps onto frozen dataclasses; one strict loader; ``--set`` overrides.

Every component keeps its own frozen config dataclass beside it; an experiment config is
a dataclass whose fields are those sections. :func:`from_dict` builds it from plain data,
rejecting unknown keys with the list of valid ones; :func:`load_config` reads a YAML file
and applies ``section.key=value`` overrides; :func:`to_yaml` writes the resolved config
that is saved next to every checkpoint.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, TypeVar, Union

import yaml

from genphys.errors import UserInputError

T = TypeVar("T")


def _resolved_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _is_dataclass_type(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def _convert(value: Any, tp: Any, where: str) -> Any:
    """Convert plain YAML data to the annotated type ``tp`` (dataclass, Optional, tuple, ...)."""
    origin = typing.get_origin(tp)
    if _is_dataclass_type(tp):
        if not isinstance(value, dict):
            raise UserInputError(f"{where} must be a mapping of {tp.__name__} fields, "
                                 f"got {value!r}.")
        return from_dict(tp, value, where)
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for a in (a for a in args if a is not type(None)):
            try:
                return _convert(value, a, where)
            except UserInputError as e:
                errors.append(str(e))
        raise UserInputError(errors[0] if errors else f"{where}={value!r} has an invalid type.")
    if origin in (tuple, list):
        if isinstance(value, str | bytes) or not isinstance(value, list | tuple):
            raise UserInputError(f"{where} must be a list, got {value!r}.")
        args = typing.get_args(tp)
        item = args[0] if args else Any
        out = [_convert(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(out) if origin is tuple else out
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise UserInputError(f"{where} must be a mapping, got {value!r}.")
        return dict(value)
    if origin is typing.Literal:
        allowed = typing.get_args(tp)
        if value not in allowed:
            raise UserInputError(f"{where}={value!r} is not allowed; choose one of "
                                 f"{', '.join(map(repr, allowed))}.")
        return value
    return _scalar(value, tp, where)


def _scalar(value: Any, tp: Any, where: str) -> Any:
    if tp is Any:
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise UserInputError(f"{where}={value!r} must be true or false.")
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int | float) or int(value) != value:
            raise UserInputError(f"{where}={value!r} must be an integer.")
        return int(value)
    if tp is float:
        if isinstance(value, str):  # PyYAML reads "3e-4" (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise UserInputError(f"{where}={value!r} must be a number.")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise UserInputError(f"{where}={value!r} must be a string.")
        return value
    return value


def from_dict(cls: type[T], data: dict[str, Any], where: str = "") -> T:
    """Build the frozen dataclass ``cls`` from plain data; unknown keys are an error."""
    hints = _resolved_types(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in (data or {}).items():
        path = f"{where}.{key}" if where else str(key)
        if key not in fields:
            raise UserInputError(f"unknown key {path!r}; valid keys"
                                 f"{' in ' + where if where else ''}: {', '.join(fields)}.")
        kwargs[key] = _convert(value, hints[key], path)
    missing = [n for n, f in fields.items() if n not in kwargs
               and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if missing:
        raise UserInputError(f"missing required key(s) {', '.join(missing)}"
                             f"{' in ' + where if where else ''}.")
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as e:
        raise UserInputError(f"invalid {where or cls.__name__}: {e}") from None


def to_dict(cfg: Any) -> dict[str, Any]:
    """Plain nested dict (tuples become lists) of a config dataclass."""
    def plain(v: Any) -> Any:
        if dataclasses.is_dataclass(v):
            return {f.name: plain(getattr(v, f.name)) for f in dataclasses.fields(v)}
        if isinstance(v, tuple | list):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v
    return plain(cfg)


def to_yaml(cfg: Any) -> str:
    """The resolved config as YAML text (saved next to every checkpoint)."""
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``section.key=value`` strings (values parsed as YAML scalars) to nested data."""
    data = yaml.safe_load(yaml.safe_dump(data or {}))  # deep copy
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise UserInputError(f"--set expects section.key=value, got {item!r}.")
        node = data
        *parents, leaf = key.strip().split(".")
        for p in parents:
            child = node.setdefault(p, {})
            if not isinstance(child, dict):
                raise UserInputError(f"--set {key}: {p!r} is a value, not a section.")
            node = child
        node[leaf] = yaml.safe_load(raw) if raw.strip() else ""
    return data


def load_config(cls: type[T], path: str | Path | None = None,
                overrides: list[str] | None = None) -> T:
    """Read a YAML file (optional), apply ``--set`` overrides and build ``cls`` strictly."""
    data: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise UserInputError(f"config file {p} does not exist.")
        try:
            data = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as e:
            raise UserInputError(
                f"config file {p} is not valid YAML ({e.__class__.__name__}).") from None
        if not isinstance(data, dict):
            raise UserInputError(f"config file {p} must hold a mapping at the top level.")
    return from_dict(cls, apply_overrides(data, overrides or []))
