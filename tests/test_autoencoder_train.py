"""Autoencoder training through the generic trainer: `genphys train configs/ae_*.yaml` end to
end, the shipped configs, the reconstruction losses, and the task's options."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from genphys.autoencoder import MeshAutoencoder
from genphys.autoencoder.task import AELossConfig, AutoencoderTask, reconstruction_loss, split_sizes
from genphys.cli import main
from genphys.config import from_dict, load_config
from genphys.errors import UserInputError
from genphys.train.config import ExperimentConfig

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
TINY = ["model.kwargs.width=8", "model.kwargs.grid=[8,4]", "model.kwargs.n_freq=2",
        "data.batch_size=2", "data.split_fractions=[0.5,0.5,0.0]", "logging.progress=false",
        "validation.num_trajectories=2"]


@pytest.fixture(scope="module")
def mesh_file(tmp_path_factory):
    """Ten small advdiff_mesh2d trajectories (~350 nodes, 5 frames), each on its own mesh."""
    path = tmp_path_factory.mktemp("ae") / "adv.h5"
    assert main(["data", "advdiff_mesh2d", "--num", "10", "--set", "max_area=5e-3", "--set",
                 "nt=5", "--out", str(path), "--seed", "3", "--no-progress"]) == 0
    return path


@pytest.mark.parametrize("name, values, latent", [("ae_advdiff_mesh2d", None, (1, 20, 8)),
                                                  ("ae_ns2d", 64 * 64, (1, 16, 16)),
                                                  ("ae_ns2d_stage2", 64 * 64, (1, 16, 16)),
                                                  ("ae_ns2d_stage3", 64 * 64, (1, 16, 16))])
def test_shipped_configs_are_autoencoder_experiments(name, values, latent):
    """Every autoencoder config loads as a `genphys train` experiment and builds its model."""
    cfg = load_config(ExperimentConfig, CONFIGS / f"{name}.yaml")
    assert cfg.train.mode == "autoencoder"
    kw = {k: v for k, v in cfg.model.kwargs.items() if k != "loss"}
    model = MeshAutoencoder(in_channels=1, dim=2, **kw)
    assert model.latent_shape == latent
    from_dict(AELossConfig, cfg.model.kwargs.get("loss", {}))
    if values is not None:  # grid data: the compression is exact
        assert values / torch.tensor(latent).prod().item() >= 16


def test_ns2d_stages_continue_each_other():
    """Stage 2 starts from stage 1's export on the same data, stage 3 from stage 2's on more;
    all three have the same architecture."""
    one, two, three = (load_config(ExperimentConfig, CONFIGS / f"ae_ns2d{s}.yaml")
                       for s in ("", "_stage2", "_stage3"))
    strip = lambda kw: {k: v for k, v in kw.items() if k != "loss"}  # noqa: E731
    assert strip(one.model.kwargs) == strip(two.model.kwargs) == strip(three.model.kwargs)
    assert two.train.init_from == f"{one.checkpoint.output_dir}/export"
    assert three.train.init_from == f"{two.checkpoint.output_dir}/export"
    assert two.data.path == one.data.path != three.data.path
    assert len({one.checkpoint.output_dir, two.checkpoint.output_dir,
                three.checkpoint.output_dir}) == 3


def test_genphys_train_runs_the_advdiff_config_end_to_end(mesh_file, tmp_path, capsys):
    """20 steps of `genphys train configs/ae_advdiff_mesh2d.yaml`; the export evaluates."""
    out = tmp_path / "run"
    sets = [f"data.path={mesh_file}", f"checkpoint.output_dir={out}", "train.steps=20", *TINY]
    args = ["train", str(CONFIGS / "ae_advdiff_mesh2d.yaml")]
    assert main(args + [a for s in sets for a in ("--set", s)]) == 0
    assert "trained 20 steps (val/rel_l2=" in capsys.readouterr().out
    model = MeshAutoencoder.from_pretrained(out / "export" / "autoencoder")
    assert model.latent_shape == (1, 4, 2) and float(model.latent_std.min()) > 0
    from genphys.autoencoder.evaluate import main as evaluate_main

    assert evaluate_main([str(out / "export" / "autoencoder"), str(mesh_file)]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert 0 < metrics["rel_l2"] < 2 and metrics["n_trajectories"] == 10


def test_bad_loss_options_are_one_sentence_errors(mesh_file, tmp_path, capsys):
    sets = [f"data.path={mesh_file}", f"checkpoint.output_dir={tmp_path}", *TINY,
            "model.kwargs.loss.colour=red"]
    args = ["train", str(CONFIGS / "ae_advdiff_mesh2d.yaml")]
    assert main(args + [a for s in sets for a in ("--set", s)]) != 0
    err = capsys.readouterr().err
    assert "unknown key 'model.kwargs.loss.colour'" in err and "Traceback" not in err
    with pytest.raises(UserInputError, match="rel_floor=0.0"):
        AELossConfig(rel_floor=0.0)
    with pytest.raises(UserInputError, match="keep_min=0"):
        AELossConfig(keep_min=0.0)


def test_reconstruction_loss_mse_and_per_frame_relative():
    """Exact values on a constructed batch: padded nodes ignored, frames weighted alike."""
    mean, std = torch.tensor([1.0]), torch.tensor([2.0])
    fields = torch.tensor([[[3.0], [5.0], [99.0]], [[1.0], [1.0], [1.0]]])  # (2, 3, 1)
    mask = torch.tensor([[True, True, False], [True, True, True]])
    target = (fields - mean) / std
    y = target + torch.tensor([[[1.0], [1.0], [7.0]], [[0.5], [0.5], [0.5]]])
    # frame errors: 1.0 over 2 nodes and 0.25 over 3 nodes -> MSE (2 * 1 + 3 * 0.25) / 5
    mse = reconstruction_loss(y, fields, mask, mean, std)
    assert float(mse) == pytest.approx(2.75 / 5)
    # mean squares in std units: (9 + 25) / 2 / 4 = 4.25 and 1 / 4 = 0.25; floor 0.5
    rel = reconstruction_loss(y, fields, mask, mean, std, rel_floor=0.5)
    assert float(rel) == pytest.approx((1.0 / 4.75 + 0.25 / 0.75) / 2)
    # trajectory-relative: divided by the given trajectory mean squares 8 and 4 -> 2 and 1
    traj = reconstruction_loss(y, fields, mask, mean, std, rel_floor=0.5,
                               traj_ms=torch.tensor([[8.0], [4.0]]))
    assert float(traj) == pytest.approx((1.0 / 2.5 + 0.25 / 1.5) / 2)


def test_trajectory_relative_loss_is_the_squared_metric(mesh_file):
    """Frame MSEs over the trajectory mean square, averaged over its frames = its rel L2²."""
    cfg = from_dict(ExperimentConfig, {
        "data": {"path": str(mesh_file), "batch_size": 2, "split_fractions": [1.0, 0.0, 0.0]},
        "model": {"kwargs": {"grid": [8, 4], "width": 8, "n_freq": 2}},
        "train": {"mode": "autoencoder"}})
    task = AutoencoderTask(cfg)
    ds, tr = task.train_dataset, task.train_trajs[0]
    frames = torch.utils.data.default_collate([ds[k] for k in range(len(tr.fields))])
    torch.testing.assert_close(frames["traj_ms"][0], torch.from_numpy(
        (tr.fields.astype("float64") ** 2).mean((0, 1))).float())
    mean, std = torch.zeros(1), torch.ones(1)
    pred = torch.from_numpy(tr.fields) * 1.1  # (T, N, 1): 10% too large everywhere
    padded = torch.zeros_like(frames["fields"])
    padded[:, :pred.shape[1]] = pred
    loss = reconstruction_loss(padded, frames["fields"], frames["mask"], mean, std,
                               rel_floor=1e-12, traj_ms=frames["traj_ms"])
    assert float(loss) == pytest.approx(0.01, rel=1e-4)  # (10%)^2
    with pytest.raises(UserInputError, match="relative_to='step'"):
        AELossConfig(relative_to="step")


def test_task_uses_the_loss_options_and_splits(mesh_file):
    """`model.kwargs.loss` reaches the task; val is capped at validation.num_trajectories."""
    cfg = from_dict(ExperimentConfig, {
        "data": {"path": str(mesh_file), "batch_size": 2, "split_fractions": [0.5, 0.5, 0.0]},
        "model": {"kwargs": {"grid": [8, 4], "width": 8, "n_freq": 2,
                             "loss": {"subset_prob": 0.0, "rel_floor": 0.1}}},
        "validation": {"num_trajectories": 1}, "train": {"mode": "autoencoder"}})
    task = AutoencoderTask(cfg)
    assert task.opts == AELossConfig(subset_prob=0.0, keep_min=0.5, rel_floor=0.1)
    sizes = split_sizes(task)
    assert sizes["val"] == 1 and sizes["frames"] == 5 * sizes["train"]
    model = task.build_model()
    batch = torch.utils.data.default_collate([task.train_dataset[i] for i in range(2)])
    loss, _ = task.loss(model, batch, torch.Generator().manual_seed(0))
    y = model(batch["coords"], batch["fields"], batch["mask"], physical=False)
    ref = reconstruction_loss(y, batch["fields"], batch["mask"], model.field_mean,
                              model.field_std, 0.1)
    torch.testing.assert_close(loss, ref)  # subset_prob 0: the encoder sees every node


def test_init_from_starts_from_a_saved_autoencoder(mesh_file, tmp_path, capsys):
    """`train.init_from` copies weights and statistics of a saved autoencoder; mismatches and
    folders without weights are one-sentence errors."""
    out = tmp_path / "run"
    sets = [f"data.path={mesh_file}", f"checkpoint.output_dir={out}", "train.steps=5", *TINY]
    assert main(["train", str(CONFIGS / "ae_advdiff_mesh2d.yaml")]
                + [a for s in sets for a in ("--set", s)]) == 0
    saved = MeshAutoencoder.from_pretrained(out / "export" / "autoencoder")
    base = load_config(ExperimentConfig, CONFIGS / "ae_advdiff_mesh2d.yaml",
                       [f"data.path={mesh_file}", *TINY])
    fresh = AutoencoderTask(base).build_model()
    assert not torch.equal(fresh.lift[0].weight, saved.lift[0].weight)
    for folder in (out, out / "export", out / "export" / "autoencoder"):
        cfg = load_config(ExperimentConfig, CONFIGS / "ae_advdiff_mesh2d.yaml",
                          [f"data.path={mesh_file}", *TINY, f"train.init_from={folder}"])
        model = AutoencoderTask(cfg).build_model()
        for k, v in saved.state_dict().items():
            torch.testing.assert_close(model.state_dict()[k], v, rtol=0, atol=0)
    wide = load_config(ExperimentConfig, CONFIGS / "ae_advdiff_mesh2d.yaml",
                       [f"data.path={mesh_file}", *TINY, "model.kwargs.width=16",
                        f"train.init_from={out}"])
    with pytest.raises(UserInputError, match="does not fit this autoencoder"):
        AutoencoderTask(wide).build_model()
    empty = load_config(ExperimentConfig, CONFIGS / "ae_advdiff_mesh2d.yaml",
                        [f"data.path={mesh_file}", *TINY, f"train.init_from={tmp_path}"])
    with pytest.raises(UserInputError, match="holds no autoencoder"):
        AutoencoderTask(empty).build_model()
