"""Experiment configs: YAML round trip, strict keys, --set overrides, shipped configs build."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from genphys.config import from_dict, load_config, to_dict, to_yaml
from genphys.data import write_trajectories
from genphys.data.synthetic import toy_grid
from genphys.errors import UserInputError
from genphys.train import ExperimentConfig
from genphys.train.tasks import DiffusionTask
from genphys.train.testing import tiny_config_dict

# the trainer's experiment configs (configs/ also holds other components' configs)
CONFIGS = [Path(__file__).parents[1] / "configs" / f"{n}.yaml"
           for n in ("burgers1d", "advection1d", "ns2d")]


def test_round_trip_through_yaml(tmp_path):
    cfg = from_dict(ExperimentConfig, tiny_config_dict("d.h5", "out"))
    path = tmp_path / "exp.yaml"
    path.write_text(to_yaml(cfg))
    again = load_config(ExperimentConfig, path)
    assert again == cfg
    assert to_dict(again) == yaml.safe_load(path.read_text())
    assert isinstance(again.optimizer.betas, tuple) and again.objective.kind == "flow"


def test_set_overrides_are_typed(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(tiny_config_dict("d.h5", "out")))
    cfg = load_config(ExperimentConfig, path, ["train.steps=7", "optimizer.lr=3e-4",
                                               "objective.cond_dropout={params: 0.2}",
                                               "model.kwargs.base_channels=16"])
    assert cfg.train.steps == 7 and cfg.optimizer.lr == 3e-4
    assert cfg.objective.cond_dropout == {"params": 0.2}
    assert cfg.model.kwargs["base_channels"] == 16


@pytest.mark.parametrize("override, words", [
    ("trian.steps=3", ["'trian'", "valid keys", "train", "optimizer"]),
    ("optimizer.learning_rate=1", ["'optimizer.learning_rate'", "lr", "grad_accum"]),
    ("objective.predict=x0", ["'objective.predict'", "prediction"]),
    ("train.mode=teleport", ["'teleport'", "standard", "reflow", "distill"]),
    ("train.steps=0", ["train.steps=0"]),
    ("data.condition=last_frame", ["last_frame", "first_frame"]),
    ("objective.schedule=cosine", ["schedule='cosine'", "edm"]),
])
def test_bad_keys_and_values_name_the_key_and_the_choices(tmp_path, override, words):
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(tiny_config_dict("d.h5", "out")))
    with pytest.raises(UserInputError) as err:
        load_config(ExperimentConfig, path, [override])
    for w in words:
        assert w in str(err.value), (w, str(err.value))


def test_reflow_needs_flow_and_teacher():
    d = tiny_config_dict("d.h5", "out")
    d["train"]["mode"] = "reflow"
    with pytest.raises(UserInputError, match="reflow.teacher"):
        from_dict(ExperimentConfig, d)
    d["objective"] = {"kind": "diffusion"}
    with pytest.raises(UserInputError, match="objective.kind='flow'"):
        from_dict(ExperimentConfig, d)


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_shipped_configs_build_their_model(path, tmp_path):
    """Each configs/*.yaml loads strictly and builds its backbone on data of its shape."""
    cfg = load_config(ExperimentConfig, path)
    shapes = {"burgers1d": ((64,), 32), "advection1d": ((64,), 32), "ns2d": ((64, 64), 21)}
    space, n_t = shapes[path.stem]
    data = write_trajectories(tmp_path / "d.h5", [toy_grid(12, space=space, n_t=n_t)],
                              system_name="toy", overwrite=True)
    cfg = load_config(ExperimentConfig, path, [f"data.path={data}", "data.batch_size=2"])
    task = DiffusionTask(cfg)
    model = task.build_model()  # includes one forward pass on a real item
    n_params = sum(p.numel() for p in model.parameters())
    assert 1e4 < n_params < 5e7
    if path.stem == "ns2d":
        return  # the 2D DiT forward already ran in build_model; its backward is a GPU job
    batch = torch.utils.data.default_collate([task.train_ds[0], task.train_ds[1]])
    loss, _ = task.loss(model, batch, torch.Generator().manual_seed(0))
    assert torch.isfinite(loss)
