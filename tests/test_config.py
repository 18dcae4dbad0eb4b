"""Typed config loading: strict keys, type checks, overrides, YAML round trip."""

from dataclasses import dataclass, field
from typing import Literal

import pytest

from genphys.config import from_dict, load_config, to_dict, to_yaml
from genphys.errors import UserInputError


@dataclass(frozen=True)
class Opt:
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)
    kind: Literal["adamw", "sgd"] = "adamw"


@dataclass(frozen=True)
class Exp:
    name: str
    steps: int = 10
    opt: Opt = field(default_factory=Opt)
    resume: str | None = None
    tags: list[str] = field(default_factory=list)


def test_nested_build_types_and_defaults():
    cfg = from_dict(Exp, {"name": "a", "opt": {"lr": 1, "betas": [0.8, 0.9]}, "tags": ["x"]})
    assert cfg.opt == Opt(lr=1.0, betas=(0.8, 0.9))
    assert isinstance(cfg.opt.lr, float) and isinstance(cfg.opt.betas, tuple)
    assert cfg.steps == 10 and cfg.resume is None and cfg.tags == ["x"]


@pytest.mark.parametrize("data, msg", [
    ({"name": "a", "stpes": 3}, "unknown key 'stpes'; valid keys: name, steps, opt"),
    ({"name": "a", "opt": {"lrr": 1}}, "unknown key 'opt.lrr'; valid keys in opt: lr, betas"),
    ({"name": "a", "steps": 1.5}, "steps=1.5 must be an integer"),
    ({"name": "a", "opt": {"kind": "adam"}}, "opt.kind='adam' is not allowed"),
    ({"name": "a", "opt": 3}, "opt must be a mapping"),
    ({}, "missing required key(s) name"),
])
def test_errors_are_one_sentence_naming_the_key(data, msg):
    with pytest.raises(UserInputError) as e:
        from_dict(Exp, data)
    assert msg in str(e.value) and "\n" not in str(e.value)


def test_load_yaml_with_overrides_and_round_trip(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("name: run\nopt:\n  lr: 0.01\n")
    cfg = load_config(Exp, p, ["opt.lr=3e-4", "steps=7", "resume=out/ckpt", "opt.betas=[0.5, 0.6]"])
    assert cfg.opt.lr == 3e-4 and cfg.steps == 7 and cfg.resume == "out/ckpt"
    assert cfg.opt.betas == (0.5, 0.6)
    q = tmp_path / "resolved.yaml"
    q.write_text(to_yaml(cfg))
    assert load_config(Exp, q) == cfg
    assert to_dict(cfg)["opt"]["betas"] == [0.5, 0.6]


def test_load_errors(tmp_path):
    with pytest.raises(UserInputError, match="does not exist"):
        load_config(Exp, tmp_path / "none.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(UserInputError, match="not valid YAML"):
        load_config(Exp, bad)
    with pytest.raises(UserInputError, match="expects section.key=value"):
        load_config(Exp, None, ["name"])
    with pytest.raises(UserInputError, match="is a value, not a section"):
        load_config(Exp, None, ["name=a", "name.x=1"])
