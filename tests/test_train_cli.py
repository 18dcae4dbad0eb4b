"""``genphys train`` end to end on a tiny generated Burgers dataset; one-sentence errors."""

from __future__ import annotations

import json

import pytest
import yaml

from genphys.cli import main
from genphys.train import load_export, read_csv_log
from genphys.train.testing import tiny_config_dict


@pytest.fixture(scope="module")
def burgers(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "b.h5"
    rc = main(["data", "burgers1d", "--num", "8", "--set", "nx=32", "--set", "nt=16",
               "--out", str(path), "--no-progress"])
    assert rc == 0
    return path


def write_config(tmp_path, data, out, steps=3):
    d = tiny_config_dict(data, out, steps=steps)
    d["logging"]["trackers"] = ["csv", "tensorboard"]
    d["validation"]["every"] = 2
    d["data"]["split_fractions"] = [0.5, 0.5, 0.0]  # 8 trajectories: keep some for validation
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(d))
    return path


def test_train_end_to_end_and_resume(burgers, tmp_path, capsys):
    cfg = write_config(tmp_path, burgers, tmp_path / "run")
    assert main(["train", str(cfg), "--set", "checkpoint.every=2", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "trained 3 steps" in out and "val/rel_l2=" in out
    run = tmp_path / "run"
    log = read_csv_log(run / "logs" / "train_log.csv")
    assert [int(r["step"]) for r in log if "train/loss" in r] == [1, 2, 3]
    assert [int(r["step"]) for r in log if "val/loss" in r] == [2, 3]
    assert list((run / "logs" / "genphys").rglob("events.out.tfevents*"))  # TensorBoard
    exp = load_export(run / "export")
    assert exp["config"].train.steps == 3 and exp["stats"].field_names == ("u",)
    rep = json.loads((run / "export" / "representation.json").read_text())
    assert rep["field_shape"] == [1, 16, 32] and rep["coeff_shape"] == [4, 8, 16]
    # resume to a longer run continues at step 3
    assert main(["train", str(cfg), "--set", "train.steps=4", "--resume", str(run),
                 "--no-progress"]) == 0
    assert "trained 4 steps" in capsys.readouterr().out


@pytest.mark.parametrize("args, message", [
    (["--set", "data.path=/nonexistent/x.h5"], "data.path='/nonexistent/x.h5' does not exist"),
    (["--set", "optimizer.lr=-1"], "optimizer.lr=-1"),
    (["--set", "data.colour=red"], "unknown key 'data.colour'"),
    (["--resume", "/nonexistent/run"], "no checkpoint found"),
])
def test_errors_are_one_sentence_and_nonzero(burgers, tmp_path, capsys, args, message):
    cfg = write_config(tmp_path, burgers, tmp_path / "run")
    assert main(["train", str(cfg), "--no-progress", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("genphys train: error:") and message in err
    assert len(err.splitlines()) == 1 and "Traceback" not in err


def test_missing_config_file(tmp_path, capsys):
    assert main(["train", str(tmp_path / "nope.yaml")]) == 2
    assert "does not exist" in capsys.readouterr().err


@pytest.mark.slow
def test_ctrl_c_saves_a_checkpoint_and_exits_cleanly(burgers, tmp_path):
    """A real SIGINT to `python -m genphys train`: checkpoint written, exit status 130."""
    import os
    import signal
    import subprocess
    import sys
    import time

    cfg = write_config(tmp_path, burgers, tmp_path / "run", steps=100_000)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "genphys", "train", str(cfg), "--no-progress"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    log = tmp_path / "run" / "logs" / "train_log.csv"
    deadline = time.time() + 120
    while time.time() < deadline and not (log.is_file() and len(read_csv_log(log)) >= 3):
        time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    assert "interrupted at step" in out and "Traceback" not in err
    ckpts = list((tmp_path / "run" / "checkpoints").glob("step_*"))
    assert len(ckpts) == 1 and (ckpts[0] / "model.safetensors").is_file()
    step = int(ckpts[0].name.split("_")[1])
    assert step >= 3
    assert main(["train", str(cfg), "--set", f"train.steps={step + 1}", "--resume",
                 str(tmp_path / "run"), "--no-progress"]) == 0
