"""Crash-safe checkpoints: ``accelerator.save_state`` into a temporary folder, then rename.

Layout of ``<output_dir>/checkpoints/step_00001000/``: accelerate's files (model
safetensors, optimizer, per-process RNG states, registered EMA and LR scheduler) plus
``config.yaml`` (the resolved experiment) and ``trainer_state.json`` (step and data
position). A checkpoint folder only ever appears complete: it is written under a ``.tmp-``
name and renamed; a failed or interrupted write leaves the previous checkpoints untouched.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from accelerate import Accelerator

from genphys.errors import DataFormatError, UserInputError

STATE_FILE = "trainer_state.json"
CONFIG_FILE = "config.yaml"
# sections that must agree between a checkpoint and the run that resumes it
COMPATIBLE = ("model", "objective", "representation")
DATA_SHAPE_KEYS = ("fields", "frames", "time_stride", "space_stride", "condition", "params",
                   "param_transform")


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to a temporary file beside ``path``, then rename it over ``path``."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
    return path


@contextlib.contextmanager
def atomic_dir(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a fresh temporary folder that replaces ``target`` only if the block succeeds."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".tmp-{target.name}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    replace_dir(tmp, target)


def replace_dir(src: Path, target: Path) -> None:
    """Rename ``src`` to ``target``; an existing ``target`` is moved aside first, then deleted."""
    old = None
    if target.exists():
        old = target.parent / f".old-{target.name}-{uuid.uuid4().hex[:8]}"
        os.replace(target, old)
    os.replace(src, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def checkpoint_dirs(root: Path) -> list[Path]:
    """Complete checkpoint folders under ``root`` (``step_*``), oldest first."""
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith("step_")
                  and (p / STATE_FILE).is_file())


def save_checkpoint(accelerator: Accelerator, root: Path, step: int, config_yaml: str,
                    state: dict[str, Any], keep_last: int) -> Path:
    """Collective: every process calls it; returns the final checkpoint folder."""
    target = root / f"step_{step:08d}"
    tmp = root / f".tmp-{target.name}"  # same name on every rank (no uuid)
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp), safe_serialization=True)
    if accelerator.is_main_process:
        (tmp / CONFIG_FILE).write_text(config_yaml)
        (tmp / STATE_FILE).write_text(json.dumps(state, indent=1))  # written last
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        replace_dir(tmp, target)
        for old in checkpoint_dirs(root)[:-keep_last]:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return target


def find_checkpoint(path: str | os.PathLike) -> Path:
    """A checkpoint folder, or the newest one under a run folder / its ``checkpoints/``."""
    p = Path(path)
    if (p / STATE_FILE).is_file():
        return p
    for root in (p / "checkpoints", p):
        found = checkpoint_dirs(root)
        if found:
            return found[-1]
    raise UserInputError(f"--resume {path}: no checkpoint found (expected a step_* folder with "
                         f"{STATE_FILE}, or a run folder holding checkpoints/).")


def check_compatible(ckpt: Path, current: dict[str, Any]) -> dict[str, Any]:
    """Read a checkpoint's config and state; raise if its model/data setup differs."""
    try:
        saved = yaml.safe_load((ckpt / CONFIG_FILE).read_text())
        state = json.loads((ckpt / STATE_FILE).read_text())
    except (OSError, ValueError, yaml.YAMLError):
        raise DataFormatError(f"checkpoint {ckpt} is incomplete or corrupt (unreadable "
                              f"{CONFIG_FILE} or {STATE_FILE}).") from None
    for section in COMPATIBLE:
        if saved.get(section) != current.get(section):
            raise UserInputError(f"checkpoint {ckpt} was trained with a different {section} "
                                 f"section ({saved.get(section)}); resume with the same "
                                 f"{section} settings or start a new run.")
    for key in DATA_SHAPE_KEYS:
        if saved.get("data", {}).get(key) != current["data"].get(key):
            raise UserInputError(f"checkpoint {ckpt} was trained with data.{key}="
                                 f"{saved['data'].get(key)!r}, this run has "
                                 f"{current['data'].get(key)!r}; they must agree to resume.")
    return state


def load_checkpoint(accelerator: Accelerator, ckpt: Path) -> None:
    """``accelerator.load_state`` with one clear sentence when the files do not fit."""
    try:
        accelerator.load_state(str(ckpt))
    except (RuntimeError, KeyError, ValueError, FileNotFoundError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DataFormatError(f"checkpoint {ckpt} does not fit this model/optimizer "
                              f"({first[:200]}).") from None
