"""Trainer loop: LR schedule, EMA, data order, exact resume after a SIGTERM, crash-safe
checkpoints, export round trip and one-sentence errors (tiny toy data, CPU, fp32)."""

from __future__ import annotations

import math
import os
import signal

import pytest
import torch

from genphys.errors import DataFormatError, UserInputError
from genphys.train import EMA, Trainer, load_export, lr_factor, read_csv_log
from genphys.train.checkpoint import atomic_dir, checkpoint_dirs, find_checkpoint
from genphys.train.config import ScheduleConfig
from genphys.train.data import EpochSampler
from genphys.train.testing import tiny_config, toy_dataset


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return toy_dataset(tmp_path_factory.mktemp("toy") / "toy.h5")


def weights(trainer: Trainer) -> dict[str, torch.Tensor]:
    model = trainer.acc.unwrap_model(trainer.model)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def max_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k].double() - b[k].double()).abs().max()) for k in a)


def test_lr_warmup_then_cosine_to_floor():
    f = lr_factor(ScheduleConfig(warmup_steps=4, min_lr_ratio=0.1), total=104)
    assert [f(s) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert f(54) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert f(104) == pytest.approx(0.1) and f(500) == pytest.approx(0.1)
    g = lr_factor(ScheduleConfig(kind="constant", warmup_steps=2), total=10)
    assert [g(s) for s in (0, 1, 5, 9)] == [0.5, 1.0, 1.0, 1.0]


def test_ema_matches_closed_form():
    lin = torch.nn.Linear(1, 1, bias=False)
    lin.weight.data.fill_(0.0)
    ema = EMA(lin, decay=0.5, start=1)
    lin.weight.data.fill_(2.0)
    ema.update(lin, step=0)  # before start: copy
    assert float(ema.model.weight) == 2.0
    lin.weight.data.fill_(4.0)
    ema.update(lin, step=1)  # decay min(0.5, 1/10) = 0.1
    assert float(ema.model.weight) == pytest.approx(0.1 * 2.0 + 0.9 * 4.0)
    state = ema.state_dict()
    other = EMA(lin, decay=0.5)
    other.load_state_dict(state)
    assert other.num_updates == 1 and float(other.model.weight) == float(ema.model.weight)


def test_epoch_sampler_is_seeded_and_resumable():
    s = EpochSampler(10, seed=3)
    s.set_epoch(0)
    a = list(s)
    s.set_epoch(1)
    b = list(s)
    assert sorted(a) == list(range(10)) and a != b
    s.set_epoch(0)
    s.skip = 4
    assert list(s) == a[4:]
    assert list(s) == a  # the skip applies once


def test_atomic_dir_keeps_previous_on_failure(tmp_path):
    target = tmp_path / "ckpt"
    with atomic_dir(target) as tmp:
        (tmp / "w.txt").write_text("old")
    with pytest.raises(RuntimeError), atomic_dir(target) as tmp:
        (tmp / "w.txt").write_text("half")
        raise RuntimeError("disk full")
    assert (target / "w.txt").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]


def test_sigterm_checkpoint_and_exact_resume(data, tmp_path):
    """6 steps straight == 3 steps, SIGTERM, resume, 3 more (crosses an epoch boundary)."""
    bs = ["data.batch_size=4"]  # 18 train items: 4 full batches per epoch
    full = Trainer(tiny_config(data, tmp_path / "full", steps=6, overrides=bs))
    res_full = full.fit()
    assert res_full["step"] == 6 and not res_full["interrupted"]
    assert full.state.epoch == 1 and full.state.samples_in_epoch == 8

    def stop_at_3(tr: Trainer) -> None:
        if tr.state.step == 3:
            os.kill(os.getpid(), signal.SIGTERM)

    cut = Trainer(tiny_config(data, tmp_path / "cut", steps=6, overrides=bs), callback=stop_at_3)
    res_cut = cut.fit()
    assert res_cut["interrupted"] and res_cut["step"] == 3
    assert [p.name for p in checkpoint_dirs(tmp_path / "cut" / "checkpoints")] == ["step_00000003"]
    assert cut.state.epoch == 0 and cut.state.samples_in_epoch == 12

    resumed = Trainer(tiny_config(data, tmp_path / "cut", steps=6, overrides=bs),
                      resume=tmp_path / "cut")
    assert resumed.state.step == 3
    resumed.fit()
    assert max_diff(weights(full), weights(resumed)) <= 1e-6
    assert max_diff(full.ema.model.state_dict(), resumed.ema.model.state_dict()) <= 1e-6
    assert full.scheduler.get_last_lr() == pytest.approx(resumed.scheduler.get_last_lr())
    log = read_csv_log(tmp_path / "cut" / "logs" / "train_log.csv")
    losses = {int(r["step"]): r["train/loss"] for r in log if "train/loss" in r}
    ref = {int(r["step"]): r["train/loss"] for r in
           read_csv_log(tmp_path / "full" / "logs" / "train_log.csv") if "train/loss" in r}
    assert sorted(losses) == list(range(1, 7))
    assert max(abs(losses[s] - ref[s]) for s in ref) < 1e-6


def test_export_round_trip_and_checkpoint_files(data, tmp_path):
    tr = Trainer(tiny_config(data, tmp_path / "run", steps=3,
                             overrides=["checkpoint.every=1", "checkpoint.keep_last=2"]))
    res = tr.fit()
    assert [p.name for p in checkpoint_dirs(tmp_path / "run" / "checkpoints")] == \
        ["step_00000002", "step_00000003"]
    ckpt = find_checkpoint(tmp_path / "run")
    assert (ckpt / "config.yaml").read_text().startswith("data:")
    exp = load_export(res["export"])
    assert exp["config"] == tr.cfg and exp["stats"] == tr.task.stats
    assert exp["representation"]["coeff_shape"] == [4, 4, 8]  # 1 field x 4 haar subbands
    x = torch.randn(2, 4, 4, 8)
    cond = torch.randn(2, 4, 4, 8)
    params = torch.rand(2, 2)
    with torch.no_grad():
        a = tr.ema.model(x, torch.tensor([0.5, 2.0]), cond=cond, params=params)
        b = exp["model"](x, torch.tensor([0.5, 2.0]), cond=cond, params=params)
    assert torch.equal(a, b)
    assert {"val/loss", "val/rel_l2"} <= set(res)


def test_grad_accumulation_equals_larger_batch_semantics(data, tmp_path):
    """accum=2 at b=2 and the loop's per-micro-batch noise: deterministic, differs from accum=1."""
    a = Trainer(tiny_config(data, tmp_path / "a", steps=2, overrides=["optimizer.grad_accum=2"]))
    a.fit()
    b = Trainer(tiny_config(data, tmp_path / "b", steps=2, overrides=["optimizer.grad_accum=2"]))
    b.fit()
    c = Trainer(tiny_config(data, tmp_path / "c", steps=2))
    c.fit()
    assert max_diff(weights(a), weights(b)) == 0.0
    assert max_diff(weights(a), weights(c)) > 1e-6
    assert a.state.samples_in_epoch == 8 and c.state.samples_in_epoch == 4


def test_clear_errors(data, tmp_path):
    with pytest.raises(DataFormatError, match="does not exist"):
        Trainer(tiny_config(tmp_path / "missing.h5", tmp_path / "x"))
    with pytest.raises(UserInputError, match="does not fit the model"):
        Trainer(tiny_config(data, tmp_path / "x",
                            overrides=["model.kwargs.channel_mult=[1,2,2,2]"]))
    with pytest.raises(UserInputError, match="in_channels"):
        Trainer(tiny_config(data, tmp_path / "x", overrides=["model.kwargs.in_channels=3"]))
    Trainer(tiny_config(data, tmp_path / "run", steps=1)).fit()
    with pytest.raises(UserInputError, match="different model section"):
        Trainer(tiny_config(data, tmp_path / "run", overrides=["model.kwargs.base_channels=4"]),
                resume=tmp_path / "run")
    with pytest.raises(UserInputError, match="no checkpoint found"):
        Trainer(tiny_config(data, tmp_path / "run"), resume=tmp_path / "nothing")
    ckpt = find_checkpoint(tmp_path / "run")
    (ckpt / "model.safetensors").unlink()
    with pytest.raises(DataFormatError, match="does not fit"):
        Trainer(tiny_config(data, tmp_path / "run"), resume=tmp_path / "run")


def test_init_from_starts_at_the_exported_weights_and_rejects_other_models(data, tmp_path):
    first = Trainer(tiny_config(data, tmp_path / "a", steps=3)).fit()
    tuned = Trainer(tiny_config(data, tmp_path / "b", steps=1,
                                overrides=[f"train.init_from={first['export']}",
                                           "train.seed=5"]))
    start = weights(tuned)
    exported = load_export(first["export"])["model"].state_dict()
    assert max_diff(start, exported) == 0.0  # not the seed-5 initialisation
    with pytest.raises(UserInputError, match="does not fit this model"):
        Trainer(tiny_config(data, tmp_path / "c", steps=1, overrides=[
            f"train.init_from={first['export']}", "model.kwargs.base_channels=16"]))
    with pytest.raises(UserInputError, match="no backbone"):
        Trainer(tiny_config(data, tmp_path / "d", steps=1,
                            overrides=[f"train.init_from={tmp_path}"]))


def test_random_frame_offset_takes_contiguous_windows_per_sample(data, tmp_path):
    from genphys.train.config import DataConfig
    from genphys.train.data import crop

    x = torch.arange(6 * 10, dtype=torch.float32).reshape(6, 1, 10, 1).expand(6, 1, 10, 3)
    cfg = DataConfig(frames=8, time_stride=2, frame_offset="random")  # 8 stored -> 4 kept
    out = crop(x, cfg, torch.Generator().manual_seed(0))
    assert out.shape == (6, 1, 4, 3)
    t = out[:, 0, :, 0] - x[:, 0, :1, 0]  # frame indices of each window, (B, 4)
    start = t[:, :1]
    assert torch.equal(t, start + torch.tensor([0.0, 2.0, 4.0, 6.0]))  # strided, contiguous
    assert start.min() >= 0 and start.max() <= 2 and len(set(start.flatten().tolist())) > 1
    assert torch.equal(crop(x, cfg, torch.Generator().manual_seed(0)), out)  # seeded
    assert torch.equal(crop(x, cfg), x[:, :, 0:8:2])  # no generator (validation): frame 0
    with pytest.raises(UserInputError, match="needs data.frames"):
        DataConfig(frame_offset="random")
    with pytest.raises(UserInputError, match="longer than the 10 stored"):
        crop(x, DataConfig(frames=12, time_stride=2, frame_offset="random"),
             torch.Generator().manual_seed(0))
    res = Trainer(tiny_config(data, tmp_path / "run", steps=2, overrides=[
        "data.frames=4", "data.frame_offset=random"])).fit()
    assert load_export(res["export"])["representation"]["coeff_shape"] == [4, 2, 8]


def test_relative_floor_weights_each_trajectory_by_its_physical_mean_square(data, tmp_path):
    """objective.relative_floor: weight 1 / (mean (u / std)^2 + floor) in physical units, and
    the weighted loss is the plain loss with each sample's term scaled by it."""
    from genphys.train.data import model_inputs
    from genphys.train.tasks import DiffusionTask

    task = DiffusionTask(tiny_config(data, tmp_path / "r", overrides=[
        "objective.relative_floor=0.25"]))
    batch = torch.utils.data.default_collate([task.train_ds[i] for i in range(3)])
    x0, cond = model_inputs(batch, task.cfg.data, task.rep, task.device)
    phys = task.to_fields(x0)  # (B, C, T, X) physical
    std = torch.as_tensor(task.stats.scale(), dtype=phys.dtype).reshape(1, -1, 1, 1)
    want = 1.0 / ((phys / std).square().flatten(1).mean(1) + 0.25)
    torch.testing.assert_close(task.relative_weight(x0), want)
    assert float(want.max() / want.min()) > 1.05  # the toy trajectories differ in energy
    model = task.build_model()
    plain, _ = task.objective.loss(model, x0, cond, torch.Generator().manual_seed(3))
    weighted, _ = task.objective.loss(model, x0, cond, torch.Generator().manual_seed(3),
                                      sample_weight=want)
    assert float(weighted.detach()) != pytest.approx(float(plain.detach()))
    ones, _ = task.objective.loss(model, x0, cond, torch.Generator().manual_seed(3),
                                  sample_weight=torch.ones(3))
    torch.testing.assert_close(ones, plain)
    base = DiffusionTask(tiny_config(data, tmp_path / "p"))
    assert base.relative_weight(x0) is None
    with pytest.raises(UserInputError, match="relative_floor=0.0"):
        tiny_config(data, tmp_path / "e", overrides=["objective.relative_floor=0.0"])


def test_lr_follows_the_time_budget_when_it_is_further_along():
    cfg = ScheduleConfig(warmup_steps=2, min_lr_ratio=0.1)
    used = [0.0]
    f = lr_factor(cfg, total=102, clock=lambda: used[0])
    assert f(52) == pytest.approx(0.1 + 0.9 * 0.5)  # step progress 0.5 > time progress 0
    used[0] = 0.75
    assert f(52) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.75)))
    used[0] = 3.0
    assert f(52) == pytest.approx(0.1) and f(0) == pytest.approx(0.5)  # warm-up is by step


def test_max_minutes_stops_early_exports_and_resumes_the_clock(data, tmp_path):
    """train.max_minutes: the run stops on time (not interrupted), ends at the LR floor,
    exports, and a resumed run continues the elapsed time instead of restarting it."""
    cfg = tiny_config(data, tmp_path / "run", steps=100_000, overrides=[
        "train.max_minutes=0.05", "schedule.warmup_steps=1", "schedule.min_lr_ratio=0.05"])
    tr = Trainer(cfg)
    res = tr.fit()
    assert not res["interrupted"] and 1 <= res["step"] < 100_000 and "export" in res
    assert 0.05 <= res["minutes"] < 0.5
    # the LR was last set one step before the budget ran out: at the floor up to that step
    # (a 3 s budget against steps of ~10-30 ms: the last step starts past 98% of the budget,
    # where the cosine is within 0.1% of the floor)
    assert tr.scheduler.get_last_lr()[0] == pytest.approx(0.05 * cfg.optimizer.lr, rel=0.02)
    again = Trainer(cfg, resume=tmp_path / "run")
    assert 3.0 <= again.state.elapsed <= res["minutes"] * 60  # the clock at the last save
    out = again.fit()  # the budget is spent already: no further step
    assert out["step"] == res["step"]
    with pytest.raises(UserInputError, match="max_minutes=0"):
        tiny_config(data, tmp_path / "bad", overrides=["train.max_minutes=0"])
