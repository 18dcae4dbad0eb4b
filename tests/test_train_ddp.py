"""Real 2-process DDP on CPU (gloo) through ``accelerate launch --multi_gpu``: both ranks end
with identical weights, equal to one process with the same global batch (b x 2 micro-steps)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from genphys.train import Trainer
from genphys.train.testing import tiny_config, toy_dataset

DRIVER = """
import sys, torch
from genphys.train import Trainer
from genphys.train.testing import tiny_config
data, out = sys.argv[1], sys.argv[2]
tr = Trainer(tiny_config(data, out, steps=3))
res = tr.fit()
m = tr.acc.unwrap_model(tr.model)
torch.save({k: v.detach().clone() for k, v in m.state_dict().items()},
           f"{out}/rank{tr.acc.process_index}.pt")
assert tr.acc.num_processes == 2, tr.acc.num_processes
"""


def launch(script: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "ACCELERATE_USE_CPU": "1"}
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu",
           "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no",
           "--dynamo_backend", "no", script, *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)


@pytest.mark.slow
def test_two_process_ddp_matches_single_process(tmp_path):
    data = toy_dataset(tmp_path / "toy.h5")
    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    proc = launch(str(script), str(data), str(tmp_path / "ddp"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    r0 = torch.load(tmp_path / "ddp" / "rank0.pt")
    r1 = torch.load(tmp_path / "ddp" / "rank1.pt")
    assert all(torch.equal(r0[k], r1[k]) for k in r0)

    single = Trainer(tiny_config(data, tmp_path / "single", steps=3,
                                 overrides=["optimizer.grad_accum=2"]))
    init = {k: v.clone() for k, v in single.acc.unwrap_model(single.model).state_dict().items()}
    single.fit()
    w = single.acc.unwrap_model(single.model).state_dict()
    diff = max(float((r0[k] - w[k]).abs().max()) for k in r0)
    moved = max(float((init[k] - w[k]).abs().max()) for k in w)
    assert diff <= 1e-5 and moved > 1e-3, (diff, moved)
    # the ranks split the same global data order: 3 steps x 2 ranks x b=2 = 12 samples
    assert single.state.samples_in_epoch == 12
