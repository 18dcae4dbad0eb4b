"""Pipelines: save/load, per-sample seeding, CFG, samplers and diffusers schedulers, rollout."""

from __future__ import annotations

import json
import math

import diffusers
import numpy as np
import pytest
import torch

import samplers
from genphys.backbone import SpaceTimeUNet
from genphys.diffusion import ObjectiveConfig, WaveletRepresentation
from genphys.errors import UserInputError
from genphys.pipelines import (
    PipelineSpec,
    RolloutPipeline,
    TextToSimulationPipeline,
    parse_params,
)
from genphys.pipelines.sampling import run_scheduler, step_sigmas

STATS = {"field_names": ["u"], "mean": [0.5], "std": [2.0], "count": 10}


def tiny_net(seed: int = 0, token_dim: int = 0, pooled_dim: int = 0) -> SpaceTimeUNet:
    """A random-weight ~5k-parameter UNet (zero-initialised layers perturbed too)."""
    torch.manual_seed(seed)
    net = SpaceTimeUNet(in_channels=4, spatial_dims=1, base_channels=8, channel_mult=(1,),
                        num_heads=1, groups=4, freq_dim=16, param_dim=1, cond_channels=4,
                        token_dim=token_dim, pooled_dim=pooled_dim)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return net.eval()


def tiny_spec(**kw) -> PipelineSpec:
    rep = WaveletRepresentation("haar", 1, (-2, -1))
    base = dict(model_kind="unet", objective=ObjectiveConfig().to_dict(),
                representation=rep.to_dict(), field_shape=(1, 8, 16), coeff_shape=(4, 4, 8),
                stats=STATS, condition="first_frame", params=True, param_transform="log10",
                param_names=("nu",))
    return PipelineSpec(**{**base, **kw})


@pytest.fixture(scope="module")
def pipe() -> TextToSimulationPipeline:
    return TextToSimulationPipeline(backbone=tiny_net(), spec=tiny_spec())


@pytest.fixture(scope="module")
def u0() -> torch.Tensor:
    x = torch.linspace(0, 1, 17)[:-1]
    return (torch.sin(2 * math.pi * x) + 0.5)[None]  # (C=1, X=16), physical units


def test_save_load_identical(pipe, u0, tmp_path):
    kw = dict(num_samples=2, generator=7, initial_state=u0, num_inference_steps=4)
    ref = pipe("Burgers flow, viscosity 0.01", **kw).trajectories
    pipe.save_pretrained(tmp_path / "p")
    index = json.loads((tmp_path / "p" / "model_index.json").read_text())
    assert index["_class_name"] == "TextToSimulationPipeline"
    assert (tmp_path / "p" / "backbone" / "diffusion_pytorch_model.safetensors").is_file()
    loaded = TextToSimulationPipeline.from_pretrained(tmp_path / "p")
    assert loaded.spec == pipe.spec  # JSON lists come back as tuples
    out = loaded("Burgers flow, viscosity 0.01", **kw).trajectories
    assert torch.equal(out, ref)
    # the same folder loads as a rollout pipeline too
    assert isinstance(RolloutPipeline.from_pretrained(tmp_path / "p"), RolloutPipeline)


@pytest.mark.parametrize("sampler", ["dpmpp_2m", "dpmpp_2m_sde", "euler_ancestral"])
def test_per_sample_seeding(pipe, u0, sampler):
    kw = dict(initial_state=u0, sampler=sampler, num_inference_steps=3)
    many = pipe("viscosity 0.02", num_samples=3, generator=[11, 12, 13], **kw).trajectories
    one = pipe("viscosity 0.02", num_samples=1, generator=[12], **kw).trajectories
    torch.testing.assert_close(many[1:2], one, rtol=1e-5, atol=1e-5)  # fp32 batch effects
    assert not torch.allclose(many[0], many[1])  # different seeds, different samples
    again = pipe("viscosity 0.02", num_samples=3, generator=11, **kw).trajectories
    assert torch.equal(again, many)  # int seed s means seeds s, s+1, ...


def test_cfg_scale_one_is_conditional(pipe, u0):
    kw = dict(initial_state=u0, generator=3, num_samples=2, num_inference_steps=4)
    cond = pipe("viscosity 0.01", **kw).trajectories
    assert torch.equal(pipe("viscosity 0.01", guidance_scale=1.0, **kw).trajectories, cond)
    guided = pipe("viscosity 0.01", guidance_scale=3.0, **kw).trajectories
    assert (guided - cond).abs().max() > 1e-3  # guidance changes the samples
    # per-condition scales of 1 for one key and 3 for the other differ from both
    mixed = pipe("viscosity 0.01", guidance_scale={"field": 3.0}, **kw).trajectories
    assert torch.isfinite(mixed).all() and (mixed - cond).abs().max() > 1e-3


@pytest.mark.parametrize("name", sorted(samplers.SAMPLERS))
def test_every_sampler_runs(pipe, u0, name):
    opts = {"num_particles": 2} if name == "fkc" else {}
    out = pipe("viscosity 0.01", initial_state=u0, sampler=name, num_inference_steps=2,
               generator=0, sampler_options=opts)
    assert out.trajectories.shape == (1, 1, 8, 16)
    assert torch.isfinite(out.trajectories).all()


@pytest.mark.parametrize("cls,kw", [
    ("DPMSolverMultistepScheduler", {}),
    ("DDIMScheduler", {"clip_sample": False, "timestep_spacing": "trailing"}),
    ("EulerDiscreteScheduler", {}),
    ("UniPCMultistepScheduler", {}),
])
def test_diffusers_scheduler_runs(pipe, u0, cls, kw):
    sched = getattr(diffusers, cls)(**kw)
    out = pipe("viscosity 0.01", initial_state=u0, sampler=sched, num_inference_steps=4,
               generator=[1, 2], num_samples=2).trajectories
    assert out.shape == (2, 1, 8, 16) and torch.isfinite(out).all()


KARRAS = {"use_karras_sigmas": True}


@pytest.mark.parametrize("cls,kw,order", [
    ("DPMSolverMultistepScheduler", {"prediction_type": "epsilon", **KARRAS}, 2),
    ("DPMSolverMultistepScheduler", {"prediction_type": "sample", **KARRAS}, 2),
    ("DPMSolverMultistepScheduler", {"prediction_type": "v_prediction", **KARRAS}, 2),
    ("DDIMScheduler", {"clip_sample": False, "timestep_spacing": "trailing"}, 1),
    ("EulerDiscreteScheduler", KARRAS, 1),
])
def test_diffusers_adapter_on_exact_gaussian(cls, kw, order):
    """Data N(0, s^2): D(x, sigma) = x s^2/(s^2+sigma^2); the PF-ODE maps x_T to x_T s/sqrt(.)."""
    s_d = 0.7
    denoise = lambda x, sigma: x * s_d**2 / (s_d**2 + sigma.reshape(-1, 1, 1, 1) ** 2)  # noqa: E731
    sched = getattr(diffusers, cls)(**kw)
    z = torch.randn(3, 1, 4, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    errs = []
    for steps in (25, 100):
        out = run_scheduler(sched, denoise, z, steps)
        sigma_t = float(step_sigmas(sched)[0])
        exact = z * math.sqrt(1 + sigma_t**2) * s_d / math.sqrt(s_d**2 + sigma_t**2)
        errs.append(float((out - exact).norm() / exact.norm()))
    print(f"{cls} {kw}: rel err 25 steps {errs[0]:.2e}, 100 steps {errs[1]:.2e}")
    measured = math.log(errs[0] / errs[1]) / math.log(4)  # 4x the steps
    assert measured > order - 0.25, (errs, measured)  # converges to the exact ODE map


def test_rollout_horizon_continuity_and_ensemble(u0):
    roll = RolloutPipeline(backbone=tiny_net(), spec=tiny_spec())
    out = roll(u0, horizon=20, overlap=2, ensemble_size=3, num_inference_steps=3,
               params={"nu": 0.01}, generator=5)
    assert out.trajectories.shape == (1, 3, 1, 20, 16)
    assert out.mean.shape == out.std.shape == (1, 1, 20, 16)
    assert out.starts == [0, 6, 12]  # windows of 8 frames sharing 2
    torch.testing.assert_close(out.mean, out.trajectories.mean(dim=1))
    torch.testing.assert_close(out.trajectories[:, :, :, 0], u0.double()[None, None]
                               .expand(1, 3, 1, 16), rtol=0, atol=1e-5)  # frame 0 is imposed
    for k in range(1, len(out.windows)):  # conditioned frames equal the previous window's last
        torch.testing.assert_close(out.windows[k][..., :2, :], out.windows[k - 1][..., -2:, :],
                                   rtol=0, atol=1e-5)
    assert float(out.std[..., 1:, :].min()) >= 0 and float(out.std[..., 8:, :].max()) > 1e-3
    single = roll(u0, horizon=20, overlap=2, ensemble_size=1, num_inference_steps=3,
                  params={"nu": 0.01}, generator=5)
    torch.testing.assert_close(single.trajectories[:, 0], out.trajectories[:, 0], rtol=1e-5,
                               atol=1e-5)  # member 0 does not depend on the ensemble size


def test_export_folder_matches_trainer_sampling(tmp_path):
    """A trainer export loads as a pipeline and samples exactly what the trainer samples."""
    from genphys.train.data import model_inputs
    from genphys.train.tasks import DiffusionTask
    from genphys.train.testing import tiny_config, toy_dataset

    data = toy_dataset(tmp_path / "toy.h5", num=12)
    task = DiffusionTask(tiny_config(data, tmp_path / "run", overrides=["data.batch_size=1"]))
    model = task.build_model()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    task.export(model, tmp_path / "export")
    pipe = TextToSimulationPipeline.from_pretrained(tmp_path / "export")
    batch = torch.utils.data.default_collate([task.train_ds[0]])
    _, cond = model_inputs(batch, task.cfg.data, task.rep, torch.device("cpu"))
    cond = {k: v.expand(2, *v.shape[1:]) for k, v in cond.items()}  # two samples
    ref = task.to_fields(task.sample(model.eval(), cond, 2, 40, "rf_euler", 3)).double()
    first = task.train_ds.denormalize(batch["x"][:, :, 0], channel_dim=1)[0]  # (C, X)
    names = pipe.spec.param_names
    params = {n: float(batch["params"][0, j]) for j, n in enumerate(names)}
    kw = dict(initial_state=first, params=params, num_samples=2, generator=40,
              sampler="rf_euler", num_inference_steps=3)
    out = pipe(**kw, impose_initial_state=False).trajectories
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)
    imposed = pipe(**kw).trajectories  # default: frame 0 equals the given state exactly
    torch.testing.assert_close(imposed[:, :, 0], first.double().expand(2, -1, -1), rtol=1e-5,
                               atol=1e-6)  # fp32 round trip through the wavelets
    assert (imposed[:, :, 1:] - out[:, :, 1:]).abs().max() > 0  # and the rest follows it


def test_initial_state_on_another_grid_is_interpolated(pipe):
    fine = torch.sin(2 * math.pi * (torch.arange(32) + 0.5) / 32)[None]  # (1, 32)
    with pytest.warns(UserWarning, match="interpolating"):
        out = pipe(initial_state=fine, params={"nu": 0.01}, generator=0, num_inference_steps=2)
    assert out.trajectories.shape == (1, 1, 8, 16)
    with pytest.raises(UserInputError, match="C=1"):
        pipe(initial_state=torch.zeros(2, 16), generator=0)


@pytest.mark.parametrize("call,match", [
    (lambda p: p(""), "empty"),
    (lambda p: p("   "), "empty"),
    (lambda p: p("viscosity 0.01", sampler="dpm_fast"), "valid names: deis"),
    (lambda p: p("viscosity 0.01", num_inference_steps=0), "num_inference_steps=0"),
    (lambda p: p("viscosity 0.01", generator=[1, 2]), "list of 1 int seeds"),
    (lambda p: p("viscosity 0.01", params={"rho": 1.0}), "unknown"),
    (lambda p: p("viscosity 0.01", guidance_scale={"colour": 2.0}), "colour"),
    (lambda p: p(), "nothing to condition on"),
])
def test_bad_input(pipe, call, match):
    with pytest.raises(UserInputError, match=match):
        call(pipe)


def test_bad_model_directories(pipe, tmp_path):
    with pytest.raises(UserInputError, match="does not exist"):
        TextToSimulationPipeline.from_pretrained(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserInputError, match="not a genphys model directory"):
        TextToSimulationPipeline.from_pretrained(tmp_path / "empty")
    pipe.save_pretrained(tmp_path / "p")
    spec = json.loads((tmp_path / "p" / "pipeline.json").read_text())
    spec["coeff_shape"] = [8, 4, 8]  # a spec that does not fit the saved backbone
    (tmp_path / "p" / "pipeline.json").write_text(json.dumps(spec))
    with pytest.raises(UserInputError, match="in_channels=4 but the data needs 8"):
        TextToSimulationPipeline.from_pretrained(tmp_path / "p")


def test_rollout_bad_input(u0):
    roll = RolloutPipeline(backbone=tiny_net(), spec=tiny_spec())
    with pytest.raises(UserInputError, match="overlap=8"):
        roll(u0, horizon=20, overlap=8)
    with pytest.raises(UserInputError, match="ensemble_size=0"):
        roll(u0, horizon=20, ensemble_size=0)


def test_prompt_parameters(pipe):
    assert parse_params("Burgers flow, viscosity 0.003, two bumps", ("nu",)) == {"nu": 0.003}
    assert parse_params("nu=1e-3 and c: 2.5", ("nu", "c")) == {"nu": 1e-3, "c": 2.5}
    # every way the burgers1d captions state nu (genphys.physics.burgers)
    for phrase in ("viscosity", "ν =", "kinematic viscosity", "diffusion coefficient"):
        assert parse_params(f"A 1D Burgers flow, {phrase} 0.0048.", ("nu",)) == {"nu": 0.0048}
    assert parse_params("a shock forms", ("nu",)) == {}
    out = pipe(["viscosity 0.003", "a shock", "nu = 0.1"], generator=0, num_inference_steps=1,
               params=None)
    np.testing.assert_array_equal(np.isnan(out.params["nu"]), [False, True, False])
    assert out.params["nu"][0] == 0.003 and out.params["nu"][2] == 0.1


@pytest.fixture(scope="module")
def burgers_export(tmp_path_factory):
    """A tiny untrained burgers1d model exported by the trainer's export function."""
    from genphys.train.testing import tiny_burgers_export

    return tiny_burgers_export(tmp_path_factory.mktemp("burgers"), num=6)


def test_cli_generate_and_rollout(burgers_export, capsys):
    from genphys.cli import main
    from genphys.data.reader import open_trajectories

    d = burgers_export
    rc = main(["generate", "Burgers flow, viscosity 0.01, one bump", "--model",
               str(d / "export"), "--num-samples", "2", "--steps", "3", "--seed", "4",
               "--out", str(d / "sim.h5"), "--check"])
    out = capsys.readouterr().out
    assert rc == 0 and "physical-consistency error" in out and "nu: 0.01, 0.01" in out
    with open_trajectories(d / "sim.h5") as f:  # the data engine reads it back
        assert len(f) == 2 and f.system == "burgers1d" and f.field_names == ["u"]
        item = f[1]
        assert item["fields"].shape == (1, 16, 32) and item["params"]["nu"] == 0.01
        assert item["captions"][0] == "Burgers flow, viscosity 0.01, one bump"
    rc = main(["generate", "a shock", "--model", str(d / "export"), "--steps", "2",
               "--out", str(d / "nonu.h5"), "--plot", str(d / "nonu.png")])
    out = capsys.readouterr().out  # no viscosity stated: --check (default on) infers it
    assert rc == 0 and "nu inferred from the trajectory" in out and (d / "nonu.png").is_file()
    rc = main(["rollout", "--model", str(d / "export"), "--init", f"{d / 'b.h5'}:2",
               "--horizon", "40", "--overlap", "2", "--ensemble", "2", "--steps", "2",
               "--out", str(d / "roll.h5")])
    assert rc == 0 and "rolled out 3 windows" in capsys.readouterr().out
    with open_trajectories(d / "roll.h5") as f:
        assert len(f) == 2 and f[0]["fields"].shape == (1, 40, 32)
        np.testing.assert_allclose(np.diff(f[0]["time"]), 2.0 / 15, rtol=1e-6)
        m = f[0]["fields"].mean(-1)  # (1, 40): burgers1d conserves the mean (default on)
        np.testing.assert_allclose(m, m[:, :1].repeat(40, 1), rtol=0, atol=1e-5)
    for flag, name in (("--conserve", "on.h5"), ("--no-conserve", "off.h5")):
        assert main(["generate", "--init", f"{d / 'b.h5'}:1", "--model", str(d / "export"),
                     "--steps", "2", "--out", str(d / name), flag, "--no-check"]) == 0
    with open_trajectories(d / "on.h5") as on, open_trajectories(d / "off.h5") as off:
        drift = [np.abs(g[0]["fields"].mean(-1) - g[0]["fields"][:, :1].mean(-1)).max()
                 for g in (on, off)]
    assert drift[0] < 1e-5 < 1e-2 < drift[1]  # an untrained model drifts unless projected


@pytest.mark.parametrize("argv,match", [
    (["generate", "", "--model", "{export}"], "is empty"),
    (["generate", "x", "--model", "{export}", "--sampler", "foo"], "valid names"),
    (["generate", "x", "--model", "{export}", "--steps", "0"], "num_inference_steps=0"),
    (["generate", "x", "--model", "{missing}"], "does not exist"),
    (["generate", "x", "--model", "{export}", "--param", "nu"], "NAME=NUMBER"),
    (["rollout", "--model", "{export}", "--init", "{missing}", "--horizon", "9"],
     "does not exist"),
])
def test_cli_bad_input(burgers_export, capsys, argv, match):
    from genphys.cli import main

    d = burgers_export
    argv = [a.format(export=d / "export", missing=d / "nope") for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert match in err and "Traceback" not in err


@pytest.fixture(scope="module")
def text_encoder():
    conditioning = pytest.importorskip("genphys.conditioning.text")
    return conditioning.TextEncoder()  # packaged all-MiniLM-L6-v2, offline


def test_text_conditioning_save_load_and_guidance(text_encoder, u0, tmp_path):
    d = text_encoder.dim
    pipe = TextToSimulationPipeline(backbone=tiny_net(1, token_dim=d, pooled_dim=d),
                                    spec=tiny_spec(), text_encoder=text_encoder)
    kw = dict(initial_state=u0, generator=2, num_inference_steps=3)
    a = pipe("Burgers flow, viscosity 0.01, a shock forms", **kw).trajectories
    b = pipe("Burgers flow, viscosity 0.01, smooth decay", **kw).trajectories
    assert (a - b).abs().max() > 1e-4  # the text reaches the network
    pipe.save_pretrained(tmp_path / "p")
    assert json.loads((tmp_path / "p" / "text_encoder.json").read_text())["model"] == "default"
    loaded = TextToSimulationPipeline.from_pretrained(tmp_path / "p")  # rebuilds the encoder
    assert type(loaded.text_encoder) is type(text_encoder)
    again = loaded("Burgers flow, viscosity 0.01, a shock forms", **kw).trajectories
    print("text pipeline reload max abs diff", float((again - a).abs().max()))
    torch.testing.assert_close(again, a, rtol=1e-5, atol=1e-5)  # encoder re-loaded from disk
    one = pipe("Burgers flow, viscosity 0.01, a shock forms", guidance_scale={"text": 1.0,
               "field": 1.0, "params": 1.0, "pooled": 1.0}, **kw).trajectories
    guided = pipe("Burgers flow, viscosity 0.01, a shock forms", guidance_scale={"text": 4.0},
                  **kw).trajectories
    assert torch.isfinite(one).all() and (guided - one).abs().max() > 1e-4


def test_consistency_check_on_solver_data(burgers_export):
    """--check's error is ~0 on the solver's own trajectories and grows with a perturbation."""
    from genphys.data.reader import open_trajectories
    from genphys.pipelines.evaluate import by_decade, rel_l2
    from genphys.pipelines.io import consistency

    spec = TextToSimulationPipeline.from_pretrained(burgers_export / "export").spec
    with open_trajectories(burgers_export / "b.h5") as f:
        items = [f[i] for i in range(3)]
    u = torch.tensor(np.stack([it["fields"] for it in items]))  # (3, 1, T, X)
    nu = np.array([it["params"]["nu"] for it in items])
    err, used, inferred = consistency(spec, u, {"nu": nu})
    bumped, _, _ = consistency(spec, u * 1.1, {"nu": nu})
    print("consistency on solver data", err, "scaled by 1.1", bumped)
    assert err.max() < 1e-6 and bumped.min() > 5e-3  # measured 2.7e-8 and 9.4e-3
    assert not inferred.any() and np.array_equal(used, nu)
    # viscosity not stated: inferred by re-solving, close to the solver's own value
    err2, fit, inferred = consistency(spec, u, {"nu": np.full(3, np.nan)})
    print("inferred nu", fit, "true", nu, "error", err2)
    assert inferred.all() and np.abs(np.log10(fit / nu)).max() < 0.1 and err2.max() < 1e-2
    np.testing.assert_allclose(rel_l2(u.numpy() * 1.1, u.numpy()), 0.1, rtol=1e-6)
    assert by_decade(np.array([2e-3, 5e-3, 0.02]), np.array([1.0, 3.0, 5.0])) == {
        "[1e-3, 1e-2)": 2.0, "[1e-2, 1e-1)": 5.0}


def test_conserved_mean_is_imposed_for_a_conservation_law(u0):
    """burgers1d conserves the mean of u: every frame keeps frame 0's mean (given frame 0) or
    one common mean (text/params only); conserve=False leaves the drift; clear errors."""
    pipe = TextToSimulationPipeline(backbone=tiny_net(), spec=tiny_spec(system="burgers1d"))
    kw = dict(params={"nu": 0.01}, num_inference_steps=3, sampler="rf_euler", generator=0)
    on = pipe(initial_state=u0, **kw).trajectories  # (1, 1, 8, 16) physical
    off = pipe(initial_state=u0, conserve=False, **kw).trajectories
    means, m0 = on.mean(-1), float(u0.double().mean())
    torch.testing.assert_close(means, torch.full_like(means, m0), rtol=0, atol=1e-5)
    assert float((off.mean(-1) - m0).abs().max()) > 1e-2  # a random net drifts
    free = pipe(**kw, num_samples=2).trajectories.mean(-1)  # (2, 1, 8): no frame 0 given
    torch.testing.assert_close(free, free[..., :1].expand_as(free), rtol=0, atol=1e-5)
    # the correction is the orthogonal projection: idempotent, a constant shift per frame
    fix = pipe._in_field_space([pipe._conserve_means([0], anchored=False)])
    c = torch.randn(2, 4, 4, 8, generator=torch.Generator().manual_seed(0))
    once = fix(c, torch.ones(2))
    torch.testing.assert_close(fix(once, torch.ones(2)), once, rtol=0, atol=1e-6)
    shift = pipe.rep.decode(once) - pipe.rep.decode(c)  # (2, 1, 8, 16)
    torch.testing.assert_close(shift, shift[..., :1].expand_as(shift), rtol=0, atol=1e-6)
    roll = RolloutPipeline(backbone=tiny_net(), spec=tiny_spec(system="burgers1d"))
    r = roll(u0, horizon=14, overlap=2, num_inference_steps=3, params={"nu": 0.01})
    rm = r.trajectories.mean(-1)
    torch.testing.assert_close(rm, torch.full_like(rm, m0), rtol=0, atol=1e-5)
    with pytest.raises(UserInputError, match="declares no conserved"):
        TextToSimulationPipeline(backbone=tiny_net(), spec=tiny_spec())(
            initial_state=u0, conserve=True, **kw)
    with pytest.raises(UserInputError, match="conserve='yes'"):
        pipe(initial_state=u0, conserve="yes", **kw)
