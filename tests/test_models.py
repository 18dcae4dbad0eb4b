"""The shipped model: present, small, fp16 on disk and fp32 in use, the CLI default."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from genphys.cli import main
from genphys.errors import UserInputError
from genphys.models import DEFAULT_MODEL, resolve_model, shipped_model_path


def test_shipped_model_is_complete_and_small():
    path = shipped_model_path()
    size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    assert size < 25 * 2**20  # issue 8: <= 25 MB in total
    assert (path / "README.md").is_file() and (path / "text_encoder.json").is_file()
    from safetensors import safe_open

    with safe_open(str(path / "backbone" / "diffusion_pytorch_model.safetensors"), "pt") as f:
        dtypes = {f.get_tensor(k).dtype for k in f.keys()}
    assert dtypes == {torch.float16}
    spec = json.loads((path / "pipeline.json").read_text())
    assert spec["system"] == "burgers1d" and spec["param_names"] == ["nu"]


def test_resolve_model():
    assert resolve_model(None) == shipped_model_path(DEFAULT_MODEL)
    assert str(resolve_model("runs/x/export")) == "runs/x/export"
    with pytest.raises(UserInputError, match="does not exist; available: burgers1d"):
        shipped_model_path("ns2d")


def test_package_round_trip_in_fp16(tmp_path):
    """A packaged tiny export generates what the fp32 export generates, to fp16 rounding."""
    from genphys.models.package import package
    from genphys.pipelines import TextToSimulationPipeline
    from genphys.train import Trainer
    from genphys.train.testing import tiny_config

    assert main(["data", "burgers1d", "--num", "6", "--set", "nx=16", "--set", "nt=8",
                 "--out", str(tmp_path / "b.h5"), "--no-progress"]) == 0
    cfg = tiny_config(tmp_path / "b.h5", tmp_path / "run", steps=2,
                      overrides=["data.split_fractions=[0.5,0.5,0.0]", "data.params=true",
                                 "data.param_transform=log10"])
    Trainer(cfg).fit()
    out = package(tmp_path / "run" / "export", tmp_path / "pkg", sigma_min=0.3)
    a = TextToSimulationPipeline.from_pretrained(tmp_path / "run" / "export")
    b = TextToSimulationPipeline.from_pretrained(out)
    assert next(b.backbone.parameters()).dtype == torch.float32
    assert b.spec.objective["sigma_min"] == 0.3
    u0 = np.sin(2 * np.pi * np.linspace(0, 1, 16, endpoint=False))[None]  # (C, X)
    kw = dict(initial_state=u0, params={"nu": 0.01}, num_inference_steps=3, generator=[1])
    grid = {"sigma_options": {"sigma_min": 0.3}}
    ya, yb = a(**kw, **grid).trajectories, b(**kw).trajectories
    torch.testing.assert_close(yb, ya, rtol=0, atol=5e-3 * float(ya.abs().max()))
    torch.testing.assert_close(yb[:, :, 0], torch.as_tensor(u0)[None].to(yb), rtol=1e-5,
                               atol=1e-6)  # frame 0 is imposed (fp32 round trip)


def test_generate_with_nothing_else(tmp_path, monkeypatch, capsys):
    """`genphys generate "PROMPT"`: the shipped model, sim.h5 + sim.png, the consistency error."""
    monkeypatch.chdir(tmp_path)
    assert main(["generate", "Burgers flow with viscosity 0.01 and one bump"]) == 0
    out = capsys.readouterr().out
    assert "physical-consistency error" in out and "nu: 0.01" in out
    assert (tmp_path / "sim.h5").is_file() and (tmp_path / "sim.png").is_file()
    assert main(["generate", "Burgers flow, viscosity 0.05", "--no-check"]) == 0  # replaces
    assert "physical-consistency" not in capsys.readouterr().out
