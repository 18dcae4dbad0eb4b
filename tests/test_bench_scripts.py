"""Smoke tests of benchmarks/sampler_sweep.py and benchmarks/throughput.py on a tiny model."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

import samplers

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def load_script(name: str):
    """Import a benchmark script as a module (benchmarks/ is not a package)."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny untrained burgers1d export (first frame + nu conditioned) and its data file."""
    from genphys.train.testing import tiny_burgers_export

    return tiny_burgers_export(tmp_path_factory.mktemp("bench"), num=4)


def test_sampler_sweep_smoke(tiny):
    sweep = load_script("sampler_sweep")
    out = tiny / "res" / "sweep"
    sweep.main(["--model", str(tiny / "export"), "--data", str(tiny / "b.h5"), "--split",
                "train", "--limit", "2", "--nfe", "2", "4", "--adaptive-rtol", "0.05",
                "--out", str(out)])
    doc = json.loads(out.with_suffix(".json").read_text())
    assert doc["num_trajectories"] == 2 and doc["trajectory_shape"] == [1, 16, 32]
    rows = doc["rows"]
    fixed = [r for r in rows if r["family"] == "genphys" and r["method"] != "dpm_adaptive"]
    assert {r["method"] for r in fixed} == set(samplers.SAMPLERS) - set(sweep.SKIPPED)
    for r in fixed:  # counted backbone calls = the registry's NFE rule, within the target
        assert r["nfe"] == samplers.nfe(r["method"], r["steps"]) <= r["nfe_target"]
        assert r["rel_l2_mean"] > 0 and r["rel_l2_median"] > 0
    ddim = [r for r in rows if r["method"].startswith("diffusers DDIM")]
    assert [r["nfe"] for r in ddim] == [2, 4]
    flow = [r for r in rows if "FlowMatch" in r["method"]]
    assert flow and all("alphas_cumprod" in r["error"] for r in flow)
    assert "| dpmpp_2m |" in out.with_suffix(".md").read_text()
    assert out.with_suffix(".png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow  # ~16 s: two fresh worker processes each import torch and genphys
def test_throughput_smoke(tiny):
    tp = load_script("throughput")
    out = tiny / "res" / "tp"
    tp.main(["--model", str(tiny / "export"), "--batch", "1", "2", "--steps", "2",
             "--repeats", "2", "--threads", "1", "--out", str(out)])
    doc = json.loads(out.with_suffix(".json").read_text())
    assert [r["batch"] for r in doc["rows"]] == [1, 2]
    for r in doc["rows"]:
        assert len(r["seconds"]) == 2 and r["nfe"] == 2 and r["torch_threads"] == 1
        assert r["trajectories_per_s"] == pytest.approx(r["batch"] / r["median_s"], rel=1e-2)
        assert r["peak_mem_mib"] >= 0 and r["mem_kind"] == "ru_maxrss growth"
    assert "| batch |" in out.with_suffix(".md").read_text()


def test_first_frames_are_seeded_and_periodic():
    tp = load_script("throughput")
    a, b = tp.first_frames(3, (8,), 1, seed=5), tp.first_frames(3, (8,), 1, seed=5)
    assert a.shape == (3, 1, 8) and (a == b).all()
    np.testing.assert_allclose(a.mean(axis=-1), 0, atol=1e-12)  # a full sine period
