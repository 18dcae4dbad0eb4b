"""Reflow and k-step distillation (Liu et al. 2023) through the trainer on a tiny problem."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

import samplers
from genphys.diffusion import ObjectiveConfig, build_objective
from genphys.train import Trainer
from genphys.train.reflow import PAIRS_FILE, euler_grid
from genphys.train.testing import tiny_config, toy_dataset


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    root = tmp_path_factory.mktemp("reflow")
    data = toy_dataset(root / "toy.h5")
    res = Trainer(tiny_config(data, root / "teacher", steps=3)).fit()
    return data, res["export"], root, res


def student(data, teacher_dir, out, mode, steps, extra=()):
    return Trainer(tiny_config(data, out, steps=steps, overrides=[
        f"train.mode={mode}", f"reflow.teacher={teacher_dir}", "reflow.num_pairs=6",
        "reflow.steps=3", "reflow.sampler=rf_euler", "reflow.distill_steps=2", *extra]))


def test_euler_grid_is_uniform_in_flow_time():
    obj = build_objective(ObjectiveConfig.flow(sigma_max=99.0))
    s = euler_grid(obj, 2)
    t = s / (1 + s)
    assert torch.allclose(t, torch.tensor([0.99, 0.495, 0.0], dtype=torch.float64))
    assert euler_grid(obj, 1).tolist() == pytest.approx([99.0, 0.0])


def test_reflow_pairs_are_the_teacher_ode_of_their_noise(teacher, tmp_path):
    data, teacher_dir, *_ = teacher
    tr = student(data, teacher_dir, tmp_path / "reflow", "reflow", steps=2)
    pairs = load_file(str(tmp_path / "reflow" / PAIRS_FILE))
    assert pairs["z"].shape == (6, 4, 4, 8) and set(pairs) == {"z", "x", "cond", "params"}
    task = tr.task  # recompute pair 0 with the teacher and the plain sampler API
    cond = {"cond": pairs["cond"][:1], "params": pairs["params"][:1]}
    sig = task.objective.sigmas(3)
    x1 = samplers.sample("rf_euler", task.objective.denoiser(task.teacher, cond),
                         float(sig[0]) * pairs["z"][:1], sig)
    assert torch.allclose(x1, pairs["x"][:1], atol=1e-5)
    assert float(pairs["z"].std()) == pytest.approx(1.0, abs=0.1)
    # the student starts as the teacher
    t_w = task.teacher.state_dict()
    s_w = tr.acc.unwrap_model(tr.model).state_dict()
    assert all(torch.equal(t_w[k], s_w[k]) for k in t_w)
    res = tr.fit()
    assert res["step"] == 2 and (tmp_path / "reflow" / "export" / "backbone").is_dir()


def test_paired_loss_is_the_velocity_error(teacher, tmp_path):
    """loss == mean ||v_hat - (z - x1)||^2 with v_hat the model's flow velocity at t."""
    data, teacher_dir, *_ = teacher
    tr = student(data, teacher_dir, tmp_path / "r", "reflow", steps=1)
    task, batch = tr.task, torch.utils.data.default_collate([tr.task.pairs[i] for i in range(3)])
    g = torch.Generator().manual_seed(5)
    loss, _ = task.loss(task.teacher, batch, g)
    t = task._times(3, torch.Generator().manual_seed(5)).float()
    z, x1 = batch["z"], batch["x"]
    x_flow = (1 - t)[:, None, None, None] * x1 + t[:, None, None, None] * z
    cond = {"cond": batch["cond"], "params": batch["params"]}
    sigma = t / (1 - t)  # VE level of flow time t; x_ve = x_flow (1 + sigma)
    with torch.no_grad():
        denoised = task.objective.denoiser(task.teacher, cond)(
            x_flow * (1 + sigma)[:, None, None, None], sigma)
    v_hat = (x_flow - denoised) / t[:, None, None, None]  # samplers.flow.flow_velocity per sample
    ref = ((v_hat - (z - x1)) ** 2).flatten(1).mean(1).mean()
    assert float(loss) == pytest.approx(float(ref), rel=1e-4)


def test_distillation_trains_on_the_euler_grid_and_reduces_its_loss(teacher, tmp_path):
    data, teacher_dir, *_ = teacher
    tr = student(data, teacher_dir, tmp_path / "d", "distill", steps=15,
                 extra=["optimizer.lr=3e-3", "schedule.warmup_steps=1",
                        "validation.sampler=rf_euler", "reflow.init_from_teacher=false"])
    grid = euler_grid(tr.task.objective, 2)
    t = tr.task._times(64, torch.Generator().manual_seed(0))
    assert set(t.tolist()) <= set((grid[:-1] / (1 + grid[:-1])).tolist())
    assert tr.task.sample_sigmas(10).tolist() == grid.tolist()
    before = tr.task.val_loss(tr.acc.unwrap_model(tr.model))
    tr.fit()
    after = tr.task.val_loss(tr.acc.unwrap_model(tr.model))
    assert after < 0.7 * before, (before, after)


def test_evaluate_export_reproduces_the_trainers_validation(teacher):
    """Same seeds, sampler and steps: the offline evaluation equals the logged val/rel_l2."""
    from genphys.train.evaluate import evaluate_export

    _, teacher_dir, _, res = teacher
    ev = evaluate_export(teacher_dir, sampler="rf_euler", steps=2)
    assert ev["n"] == 2 and ev["nfe"] == 2
    assert ev["rel_l2_mean"] == pytest.approx(res["val/rel_l2"], rel=1e-5)
