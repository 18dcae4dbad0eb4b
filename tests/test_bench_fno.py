"""The FNO baseline of benchmarks/fno.py: shapes, gradients, the spectral layer it uses."""

import importlib.util
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from genphys.errors import UserInputError

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "fno.py"
_spec = importlib.util.spec_from_file_location("bench_fno", _PATH)
fno = importlib.util.module_from_spec(_spec)
sys.modules["bench_fno"] = fno  # dataclasses look their module up here
_spec.loader.exec_module(fno)


@pytest.mark.parametrize("out_channels", [31, 1])
def test_shapes_and_every_parameter_gets_a_gradient(out_channels):
    torch.manual_seed(0)
    model = fno.FNO1d(fno.FNOConfig(out_channels=out_channels, width=8, modes=5))
    a = fno.inputs(torch.randn(3, 16), torch.tensor([1e-3, 1e-2, 1e-1]))
    assert a.shape == (3, 3, 16)
    y = model(a)
    assert y.shape == (3, out_channels, 16)
    y.pow(2).mean().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_inputs_channels():
    a = fno.inputs(torch.zeros(2, 4), torch.tensor([1e-3, 1e-1]))
    np.testing.assert_allclose(a[:, 1].numpy(), [[-1] * 4, [1] * 4], atol=1e-6)
    np.testing.assert_allclose(a[0, 2].numpy(), [0.125, 0.375, 0.625, 0.875])


def test_spectral_conv_drops_high_modes_and_rejects_too_many():
    conv = fno.SpectralConv(1, 1, 2)  # genphys.backbone's layer (exactness: test_backbone)
    x = torch.cos(2 * math.pi * 3 * torch.arange(16) / 16)[None, None]  # mode 3 only
    assert conv(x).abs().max() < 1e-6
    with pytest.raises(UserInputError, match="modes=10"):
        fno.SpectralConv(1, 1, 10)(torch.zeros(1, 1, 8))


def test_rel_l2_loss_in_physical_units():
    true = torch.tensor([[0.0, 1.0]])  # physical: mean 1 + std 2 * x = [1, 3]
    pred = torch.tensor([[0.5, 1.0]])  # physical [2, 3]
    loss = fno.rel_l2_loss(pred, true, mean=1.0, std=2.0)
    assert float(loss) == pytest.approx(1 / math.sqrt(10))


def test_cosine_lr_on_cpu_budget():
    assert fno.cosine_lr(1e-3, 0.0, 100.0) == pytest.approx(1e-5)
    assert fno.cosine_lr(1e-3, 1.0, 100.0) == pytest.approx(1e-3)
    assert fno.cosine_lr(1e-3, 50.5, 100.0) == pytest.approx(5e-4)
    assert fno.cosine_lr(1e-3, 200.0, 100.0) == pytest.approx(0.0)


@pytest.mark.parametrize("mode", ["oneshot", "autoregressive"])
def test_a_few_steps_reduce_the_loss(mode):
    torch.manual_seed(0)
    t, n = 5, 16
    x = torch.arange(n) / n
    u = torch.stack([torch.sin(2 * math.pi * (x - 0.1 * k)) for k in range(t)])  # (T, N)
    data = {"u": u[None].repeat(4, 1, 1), "nu": torch.full((4,), 1e-2), "mean": 0.0, "std": 1.0}
    model = fno.FNO1d(fno.FNOConfig(out_channels=t - 1 if mode == "oneshot" else 1,
                                    width=8, modes=4, proj_width=16))
    before = float(fno.evaluate(model, data, mode).mean())
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    gen = torch.Generator().manual_seed(0)
    for _ in range(30):
        loss = fno.batch_loss(model, data, torch.arange(4), mode, gen)
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = fno.evaluate(model, data, mode)
    assert after.shape == (4,)
    assert after.mean() < 0.5 * before
    pred = fno.predict(model, u[None, 0], torch.tensor([1e-2]), mode, t)
    assert pred.shape == (1, t, n) and torch.equal(pred[0, 0], u[0])  # frame 0 is the input


# ---------------------------------------------------------------- accuracy_vs_cost (solver side)
_spec2 = importlib.util.spec_from_file_location(
    "bench_avc", _PATH.parent / "accuracy_vs_cost.py")
avc = importlib.util.module_from_spec(_spec2)
sys.modules["bench_avc"] = avc
_spec2.loader.exec_module(avc)


@pytest.fixture(scope="module")
def tiny_burgers(tmp_path_factory):
    from genphys.cli import main

    path = tmp_path_factory.mktemp("avc") / "b.h5"
    assert main(["data", "burgers1d", "--num", "6", "--set", "nx=16", "--set", "nt=8",
                 "--set", "n_fine=64", "--set", "n_fine_low_nu=64", "--out", str(path),
                 "--no-progress"]) == 0
    return path


def test_solver_rerun_reproduces_the_file_and_coarser_is_worse(tiny_burgers):
    ref = avc.load_reference(str(tiny_burgers), "all", None)
    assert ref["u"].shape == (6, 8, 16) and ref["config"]["n_fine"] == 64
    rows = avc.solver_rows(ref, [16, 32, 64], repeats=2, batch=4)
    err = {r["setting"]: r["rel_l2_mean"] for r in rows}
    assert err["64 cells"] < 1e-6  # the generator's own resolution: float32 rounding only
    assert err["16 cells"] > err["32 cells"] > 10 * err["64 cells"]
    assert all(len(r["wall_s_repeats"]) == 2 and r["wall_ms_per_traj"] > 0 for r in rows)


def test_solver_rows_reject_a_resolution_that_is_not_a_multiple(tiny_burgers):
    from genphys.errors import UserInputError

    ref = avc.load_reference(str(tiny_burgers), "all", 2)
    with pytest.raises(UserInputError, match="resolution 24"):
        avc.solver_rows(ref, [24], repeats=1, batch=2)


def test_fno_row_matches_the_fno_scripts_own_evaluation(tiny_burgers, tmp_path):
    import argparse

    torch.manual_seed(0)
    ref = avc.load_reference(str(tiny_burgers), "all", None)
    model = fno.FNO1d(fno.FNOConfig(out_channels=7, width=8, modes=4, proj_width=16))
    data = {"u": torch.as_tensor((ref["u"] - 0.1) / 0.5, dtype=torch.float32),
            "nu": torch.as_tensor(ref["nu"], dtype=torch.float32), "mean": 0.1, "std": 0.5}
    args = argparse.Namespace(mode="oneshot", data=str(tiny_burgers))
    fno.save_model(model, data, args, tmp_path / "fno")
    (r,) = avc.fno_rows(str(tmp_path / "fno"), ref, repeats=1, batch=4)
    assert r["rel_l2_mean"] == pytest.approx(float(fno.evaluate(model, data, "oneshot").mean()),
                                             rel=1e-5)


def test_model_rows_do_not_depend_on_the_batch(tiny_burgers, tmp_path):
    import warnings

    from genphys.train.tasks import DiffusionTask
    from genphys.train.testing import tiny_config

    with warnings.catch_warnings():  # no validation split in this tiny file: expected
        warnings.simplefilter("ignore", UserWarning)
        task = DiffusionTask(tiny_config(tiny_burgers, tmp_path / "run", overrides=[
            "data.param_transform=log10", "data.split_fractions=[1.0,0.0,0.0]"]))
    task.export(task.build_model(), tmp_path / "export")  # untrained: only the plumbing counts
    ref = avc.load_reference(str(tiny_burgers), "all", None)
    a = avc.model_rows(str(tmp_path / "export"), "g", ref, [1, 2], ["rf_euler"], 1, batch=6)
    b = avc.model_rows(str(tmp_path / "export"), "g", ref, [1, 2], ["rf_euler"], 2, batch=4)
    assert [r["setting"] for r in a] == ["rf_euler, NFE 1", "rf_euler, NFE 2"]
    for ra, rb in zip(a, b):  # each sample depends only on its trajectory's seed
        assert ra["rel_l2_mean"] == pytest.approx(rb["rel_l2_mean"], rel=1e-6)
        assert np.isfinite(ra["rel_l2_mean"]) and len(rb["wall_s_repeats"]) == 2
