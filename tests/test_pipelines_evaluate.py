"""genphys.pipelines.evaluate: rollout errors against stored long trajectories, CLI end to end."""

import json

import numpy as np
import pytest

from genphys.data import write_trajectories
from genphys.physics import get_system
from genphys.pipelines import RolloutPipeline
from genphys.pipelines.evaluate import by_decade, long_items, main, rollout_errors


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from genphys.train.testing import tiny_burgers_export

    d = tiny_burgers_export(tmp_path_factory.mktemp("evalroll"), num=4)
    # 2x the 16-frame window with the same dt (2/15): 31 frames over [0, 4]
    long = get_system("burgers1d", nx=32, nt=31, t_final=4.0).generate(3, seed=5)
    write_trajectories(d / "long.h5", [long], system_name="burgers1d")
    return d


def test_long_items_reads_physical_fields_and_params(setup):
    items = long_items(str(setup / "long.h5"), 2)
    assert items["x"].shape == (2, 1, 31, 32) and list(items["names"]) == ["nu"]
    assert np.all((items["params"] >= 1e-3) & (items["params"] <= 0.1))


def test_rollout_errors_are_zero_against_the_rollout_itself(setup):
    roll = RolloutPipeline.from_pretrained(setup / "export")
    items = long_items(str(setup / "long.h5"), 3)
    nu = items["params"][:, 0]
    r = roll(items["x"][:, :, 0], 31, overlap=1, num_inference_steps=2, sampler="rf_euler",
             params={"nu": nu})
    own = r.trajectories[:, 0, 0].numpy()  # (N, 31, 32)
    res = rollout_errors(roll, items, 2, "rf_euler", 2 / 15, ref=own)
    assert res["starts"] == [0, 15]
    assert res["mean"] == [0.0, 0.0] and res["vs_start"] == [0.0, 0.0]
    stored = rollout_errors(roll, items, 2, "rf_euler", 2 / 15, ref=items["x"][:, 0])
    assert all(e > 0 for e in stored["mean"])  # an untrained model is not the solver
    assert set(stored["by_decade"]) == set(by_decade(nu, nu))


def test_cli_writes_ic_and_rollout_figures(setup, tmp_path, capsys):
    out = tmp_path / "res.json"
    main([str(setup / "export"), str(setup / "b.h5"), "--split", "train", "--num", "2",
          "--steps", "2", "--guidance", "--rollout-data", str(setup / "long.h5"),
          "--rollout-num", "2", "--json", str(out)])
    res = json.loads(out.read_text())
    assert set(res["ic"]) == {"2"} and len(res["rollout"]["mean"]) == 2
    assert "windows starting at [0, 15]" in capsys.readouterr().out
