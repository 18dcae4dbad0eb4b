"""Evaluation: metrics on constructed cases with known answers; ``genphys eval`` end to end."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import numpy as np
import pytest
import yaml
from scipy.stats import norm

from genphys.cli import main
from genphys.errors import UserInputError
from genphys.evaluation import evaluate
from genphys.evaluation import metrics as M
from genphys.evaluation.harness import (
    Evaluation,
    HeldOut,
    build_report,
    by_decade,
    consistency,
    json_safe,
    model_grid,
    split_fractions,
)
from genphys.evaluation.plots import write_plots


def wave(n_t: int = 5, nx: int = 64, k: int = 1, amp: float = 1.0) -> np.ndarray:
    """(1, 1, T, X) travelling cosine of mode k on the unit cell centres."""
    x = (np.arange(nx) + 0.5) / nx
    t = np.linspace(0, 1, n_t)[:, None]
    return amp * np.cos(2 * np.pi * k * (x[None] - t))[None, None]


# ----------------------------------------------------------------- deterministic metrics
def test_relative_l2_of_a_scaled_field_is_the_scale_error():
    u = np.random.default_rng(0).normal(size=(3, 2, 4, 16))
    np.testing.assert_allclose(M.rel_l2(1.1 * u, u), 0.1, rtol=1e-12)
    np.testing.assert_allclose(M.rel_l2_per_time(0.7 * u, u), 0.3, rtol=1e-12)
    np.testing.assert_allclose(M.rel_l2(np.zeros_like(u), u), 1.0)
    assert M.rel_l2_per_time(u, u).shape == (3, 4)


def test_nrmse_of_an_offset_and_skipping_the_conditioning_frame():
    u = wave(n_t=4, amp=2.0)  # RMS over space 2/sqrt(2) in every frame
    p = u + 0.1
    p[:, :, 0] += 5.0  # a wrong frame 0 is ignored with t_start=1
    np.testing.assert_allclose(M.nrmse_per_time(p, u)[0, 1:], 0.1 * math.sqrt(2) / 2, rtol=1e-12)
    np.testing.assert_allclose(M.nrmse(p, u), 0.1 * math.sqrt(2) / 2, rtol=1e-12)
    np.testing.assert_allclose(M.nrmse(p, u, t_start=0), (5.1 + 3 * 0.1) * math.sqrt(2) / 2 / 4,
                               rtol=1e-12)


def test_high_frequency_perturbation_shows_only_in_the_high_band():
    u = np.random.default_rng(1).normal(size=(2, 1, 3, 64))
    bump = 0.01 * wave(n_t=3, k=14)  # PDEBench high band: k >= 12
    f = M.frmse(u + bump, u)
    assert f["low"].max() < 1e-15 and f["mid"].max() < 1e-15
    # one mode of amplitude a has |F_k| / nx = a / 2; the band averages shells 12..32
    np.testing.assert_allclose(f["high"], 0.01 / 2 / 21, rtol=1e-10)
    g = M.frmse(u + 0.01 * wave(n_t=3, k=2), u)
    np.testing.assert_allclose(g["low"], 0.01 / 2 / 4, rtol=1e-10)
    assert g["mid"].max() < 1e-15 and g["high"].max() < 1e-15


def test_shell_errors_match_the_one_sided_rfft_in_1d_and_are_isotropic_in_2d():
    rng = np.random.default_rng(2)
    u, p = rng.normal(size=(2, 1, 2, 32)), rng.normal(size=(2, 1, 2, 32))
    ref = np.abs(np.fft.rfft(p - u, axis=-1)) / 32  # PDEBench's per-mode 1D error
    np.testing.assert_allclose(M.shell_errors(p, u), ref, rtol=1e-10)
    x = (np.arange(32) + 0.5) / 32
    along_x = np.cos(2 * np.pi * 14 * x)[:, None] * np.ones(32)  # (H, W)
    along_y = along_x.T
    zero = np.zeros((1, 1, 1, 32, 32))
    fx = M.frmse(zero + along_x, zero, t_start=0)["high"]
    fy = M.frmse(zero + along_y, zero, t_start=0)["high"]
    # as in 1D: one mode pair of amplitude 1 -> 1/2, averaged over shells 12..16
    np.testing.assert_allclose([fx[0], fy[0]], [0.5 / 5, 0.5 / 5], rtol=1e-10)


def test_power_spectrum_of_a_single_mode():
    s = M.power_spectrum(wave(n_t=4, nx=32, k=3, amp=2.0))  # (1, 1, 17)
    expect = np.zeros(17)
    expect[3] = 1.0  # |F_3 / N|^2 = (amp / 2)^2
    np.testing.assert_allclose(s[0, 0], expect, atol=1e-12)


def test_conservation_drift():
    u = wave(n_t=5) + 0.5  # periodic transport conserves the mean exactly
    assert np.abs(M.conservation_drift(u)).max() < 1e-14
    t = np.linspace(0, 1, 5)
    grown = u + 0.1 * t[None, None, :, None]
    # RMS of cos + 0.5 on a uniform grid: sqrt(1/2 + 1/4)
    np.testing.assert_allclose(M.conservation_drift(grown)[0, 0], 0.1 * t / math.sqrt(0.75),
                               atol=1e-14)


def test_shape_mismatch_is_one_clear_error():
    with pytest.raises(UserInputError, match="same shape"):
        M.rel_l2(np.zeros((1, 1, 2, 8)), np.zeros((1, 1, 2, 4)))
    with pytest.raises(UserInputError, match=r"\(B, K, \.\.\.\)"):
        M.crps_ensemble(np.zeros((2, 3, 4)), np.zeros((2, 5)))


# ----------------------------------------------------------------- ensemble metrics
def test_crps_of_one_member_is_the_mean_absolute_error():
    rng = np.random.default_rng(3)
    y, x = rng.normal(size=(4, 1, 3, 8)), rng.normal(size=(4, 1, 1, 3, 8))
    np.testing.assert_allclose(M.crps_ensemble(x, y), np.abs(x[:, 0] - y).mean(axis=(1, 2, 3)))


def test_crps_known_values_and_brute_force():
    # members {-1, 1} at truth 0: E|X - y| = 1, E|X - X'| = 1 -> 0.5
    np.testing.assert_allclose(M.crps_ensemble(np.array([[[-1.0], [1.0]]]), np.zeros((1, 1))),
                               0.5)
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(2, 5, 7)), rng.normal(size=(2, 7))
    pairs = np.abs(x[:, :, None] - x[:, None, :]).mean(axis=(1, 2))  # (B, 7)
    brute = (np.abs(x - y[:, None]).mean(axis=1) - 0.5 * pairs).mean(axis=1)
    np.testing.assert_allclose(M.crps_ensemble(x, y), brute, rtol=1e-12)


def test_crps_of_a_large_gaussian_ensemble_matches_the_closed_form():
    """CRPS(N(0, 1), y) = y(2 Phi(y) - 1) + 2 phi(y) - 1/sqrt(pi) (Gneiting & Raftery 2007)."""
    y = np.array([[-1.0, 0.0, 0.3, 2.0]])
    x = np.random.default_rng(5).normal(size=(1, 4000, 4))
    exact = (y * (2 * norm.cdf(y) - 1) + 2 * norm.pdf(y) - 1 / math.sqrt(math.pi)).mean()
    assert abs(M.crps_ensemble(x, y)[0] - exact) < 0.01


def test_spread_skill_of_a_reliable_ensemble_is_one():
    rng = np.random.default_rng(6)
    k, n = 4, 100_000
    y = rng.normal(size=(1, n))
    x = rng.normal(size=(1, k, n))  # members and truth from the same distribution
    # MC error of the ratio ~ 1/sqrt(n) per factor: 0.01 is several standard errors
    assert abs(M.spread_skill(x, y)[0] - 1.0) < 0.01
    assert M.spread_skill(0.5 * x, y)[0] < 0.7  # an under-dispersed ensemble scores < 1
    with pytest.raises(UserInputError, match="at least 2 ensemble members"):
        M.spread_skill(x[:, :1], y)


# ----------------------------------------------------------------- harness helpers
def test_model_grid_crops_to_the_training_frames_and_points():
    spec = SimpleNamespace(field_shape=(1, 3, 4),
                           extra={"time": [0.0, 0.2, 0.4], "coords": {"x": [0.0, 0.25, 0.5,
                                                                            0.75]}})
    time, x = np.linspace(0, 1, 6), np.arange(8) / 8
    u = np.arange(2 * 6 * 8, dtype=float).reshape(1, 2, 6, 8)[:, :1]  # (1, 1, 6, 8)
    v, t = model_grid(spec, u, time, {"x": x})
    np.testing.assert_array_equal(v, u[:, :, :3, ::2])
    np.testing.assert_allclose(t, [0.0, 0.2, 0.4])
    bad = SimpleNamespace(field_shape=(1, 3, 5), extra={})
    with pytest.raises(UserInputError, match="differs from the model grid"):
        model_grid(bad, u, time, {"x": x})


def test_split_fractions_come_from_the_export_config(tmp_path):
    assert split_fractions(tmp_path) == (0.8, 0.1, 0.1)  # no config.yaml: the defaults
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({"data": {"split_fractions":
                                                                   [0.5, 0.25, 0.25]}}))
    assert split_fractions(tmp_path) == (0.5, 0.25, 0.25)


def test_by_decade_and_json_safe():
    nu = np.array([0.002, 0.005, 0.02, 0.09])
    rows = by_decade(nu, {"e": np.array([1.0, 3.0, 10.0, np.nan])})
    assert rows == {"[1e-3, 1e-2)": {"n": 2, "e": 2.0}, "[1e-2, 1e-1)": {"n": 2, "e": 10.0}}
    assert json_safe({"a": np.float32(np.nan), "b": np.arange(2), "c": (np.inf, 1.5)}) == \
        {"a": None, "b": [0, 1], "c": [None, 1.5]}


def test_report_and_plots_of_a_2d_ensemble(tmp_path):
    """2D fields through the report and the figures; no re-solver for ns2d: NaN and a note."""
    rng = np.random.default_rng(7)
    truth = rng.normal(size=(3, 1, 4, 16, 16))
    samples = truth[:, None] + 0.1 * rng.normal(size=(3, 2, 1, 4, 16, 16))
    data = HeldOut(truth=truth, params={"nu": np.array([1e-3, 2e-3, 2e-4])}, captions=["a"] * 3,
                   seeds=[1, 2, 3], indices=[0, 1, 2], time=np.linspace(0, 1, 4), system="ns2d")
    notes: list[str] = []
    cons, cons_truth = consistency(data, samples, notes)
    assert np.isnan(cons).all() and "not measured for 'ns2d'" in notes[0]
    report, curves = build_report(data, samples, cons, cons_truth, {"split": "test"}, notes,
                                  ["vorticity"])
    s = report["summary"]
    # iid noise of std 0.1 on unit-variance fields: relative L2 ~ 0.1 in every frame
    assert abs(s["rel_l2"] - 0.1) < 0.01 and curves["rel_l2"].shape == (3, 4)
    assert s["consistency"] != s["consistency"]  # NaN
    assert set(report["by_viscosity_decade"]) == {"[1e-4, 1e-3)", "[1e-3, 1e-2)"}
    assert len(report["spectra"]["k"]) == 9
    ev = Evaluation(report=report, data=data, samples=samples, per_time=curves)
    paths = write_plots(ev, tmp_path)
    assert [p.name for p in paths] == ["error_vs_time.png", "spectra.png", "sample_vs_truth.png"]
    assert all(p.stat().st_size > 1000 for p in paths)


# ----------------------------------------------------------------- CLI end to end
@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """24 tiny Burgers trajectories (run seed 2: 2 land in the test split) and a 3-step text +
    first-frame + viscosity model."""
    from genphys.train.testing import tiny_config_dict

    root = tmp_path_factory.mktemp("eval")
    data = root / "b.h5"
    assert main(["data", "burgers1d", "--num", "24", "--seed", "2", "--set", "nx=32", "--set",
                 "nt=8", "--set", "nu_min=0.02", "--out", str(data), "--no-progress"]) == 0
    cfg = tiny_config_dict(data, root / "run", steps=3)
    cfg["data"]["text"] = "both"
    (root / "exp.yaml").write_text(yaml.safe_dump(cfg))
    assert main(["train", str(root / "exp.yaml"), "--no-progress"]) == 0
    return {"root": root, "data": data, "model": root / "run" / "export"}


def test_eval_end_to_end(trained, capsys):
    out = trained["root"] / "ev"
    args = ["eval", "--model", str(trained["model"]), "--data", str(trained["data"]),
            "--num-samples", "2", "--steps", "2", "--out", str(out), "--no-progress"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "2 test trajectories x 2 samples" in printed and "| nRMSE (PDEBench) |" in printed
    rep = json.loads((out / "metrics.json").read_text())
    assert rep["n_trajectories"] == 2 and rep["system"] == "burgers1d" and rep["notes"] == []
    assert rep["split_fractions"] == [0.8, 0.1, 0.1]
    assert rep["fourier_bands"] == {"low": [0, 4], "mid": [4, 12], "high": [12, 17]}
    keys = {"rel_l2", "rel_l2_median", "nrmse", "frmse_low", "frmse_mid", "frmse_high",
            "conservation_drift_pred", "conservation_drift_true", "crps", "spread_skill",
            "spread_skill_pooled", "ensemble_mean_rel_l2", "consistency", "consistency_truth"}
    assert set(rep["summary"]) == keys
    assert all(isinstance(v, float) and math.isfinite(v) for v in rep["summary"].values())
    # the solver data conserve the mean and agree with the spectral re-solve
    assert rep["summary"]["conservation_drift_true"] < 1e-6
    assert rep["summary"]["consistency_truth"] < 1e-3
    assert len(rep["per_time"]["rel_l2"]["mean"]) == 8 and len(rep["spectra"]["k"]) == 17
    rows = rep["per_trajectory"]
    assert len(rows) == 2 and rows[0]["caption"] and set(rows[0]["params"]) == {"nu"}
    np.testing.assert_allclose(np.mean([r["rel_l2"] for r in rows]), rep["summary"]["rel_l2"])
    assert sum(r["n"] for r in rep["by_viscosity_decade"].values()) == 2
    for name in ("error_vs_time.png", "spectra.png", "sample_vs_truth.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # trajectory 0 alone, one per batch: the same samples (per-sample seeds, not per batch)
    rep2 = evaluate(trained["model"], trained["data"], steps=2, num_samples=2, limit=1,
                    batch_size=1, progress=False, check_consistency=False)
    for key in ("rel_l2", "crps", "spread_skill"):
        np.testing.assert_allclose(rep2["per_trajectory"][0][key], rows[0][key], rtol=1e-6)
    assert math.isnan(rep2["summary"]["consistency"]) and "skipped" in rep2["notes"][0]
    # burgers1d conserves the mean: projected by default, the raw model drifts without it
    assert rep["conserve"] and rep["summary"]["conservation_drift_pred"] < 1e-5
    raw = evaluate(trained["model"], trained["data"], steps=2, limit=1, progress=False,
                   check_consistency=False, conserve=False)
    assert not raw["conserve"] and raw["summary"]["conservation_drift_pred"] > 1e-3


def test_parameter_only_model_gets_each_trajectorys_parameters(trained, tmp_path):
    """A model without first-frame conditioning: trajectory i is sampled with its own nu."""
    import torch

    from genphys.backbone import SpaceTimeUNet
    from genphys.diffusion import ObjectiveConfig, WaveletRepresentation
    from genphys.evaluation.harness import run_evaluation
    from genphys.pipelines import PipelineSpec, TextToSimulationPipeline

    torch.manual_seed(0)
    net = SpaceTimeUNet(in_channels=4, spatial_dims=1, base_channels=8, channel_mult=(1,),
                        num_heads=1, groups=4, freq_dim=16, param_dim=1).eval()
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.1 * torch.randn_like(p))  # zero-initialised output layers would hide nu
    spec = PipelineSpec(model_kind="unet", objective=ObjectiveConfig().to_dict(),
                        representation=WaveletRepresentation("haar", 1, (-2, -1)).to_dict(),
                        field_shape=(1, 8, 32), coeff_shape=(4, 4, 16), params=True,
                        param_transform="log10", param_names=("nu",), system="burgers1d",
                        stats={"field_names": ["u"], "mean": [0.0], "std": [1.0], "count": 1})
    pipe = TextToSimulationPipeline(backbone=net, spec=spec)
    pipe.save_pretrained(tmp_path / "p")
    ev = run_evaluation(tmp_path / "p", trained["data"], steps=2, num_samples=2, seed=5,
                        progress=False, check_consistency=False)
    assert "not first-frame conditioned" in ev.notes[0]
    nu = ev.data.params["nu"]
    assert len(nu) == 2 and nu[0] != nu[1]
    for i in range(2):
        ref = pipe(params={"nu": float(nu[i])}, num_samples=2, num_inference_steps=2,
                   generator=[5 + 2 * i, 5 + 2 * i + 1]).trajectories.numpy()
        np.testing.assert_allclose(ev.samples[i], ref, rtol=1e-10)


@pytest.mark.parametrize("extra, message", [
    (["--steps", "0"], "num_inference_steps=0 is invalid"),
    (["--sampler", "nope"], "sampler='nope' is unknown"),
    (["--num-samples", "0"], "num_samples=0 is invalid"),
    (["--split", "dev"], "split='dev' is not allowed"),
    (["--model", "/nonexistent/model"], "does not exist"),
    (["--data", "/nonexistent/d.h5"], "data file '/nonexistent/d.h5' does not exist"),
])
def test_bad_input_is_one_line_and_nonzero(trained, tmp_path, capsys, extra, message):
    base = {"--model": str(trained["model"]), "--data": str(trained["data"]),
            "--out": str(tmp_path / "ev")}
    base.update(dict(zip(extra[::2], extra[1::2])))
    assert main(["eval", *[a for kv in base.items() for a in kv], "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("genphys eval: error:") and message in err
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "ev" / "metrics.json").exists()


@pytest.mark.parametrize("system, sets, message", [
    ("advection1d", ["nx=32", "nt=8"], "holds 'advection1d' trajectories but the model was "
     "trained on 'burgers1d'"),
    ("burgers1d", ["nx=16", "nt=8", "nu_min=0.02"], "differs from the model grid"),
])
def test_data_of_another_system_or_grid(trained, tmp_path, capsys, system, sets, message):
    data = tmp_path / "other.h5"
    sets = [a for s in sets for a in ("--set", s)]
    assert main(["data", system, "--num", "4", *sets, "--out", str(data), "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["eval", "--model", str(trained["model"]), "--data", str(data), "--split", "all",
                 "--out", str(tmp_path / "ev"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
