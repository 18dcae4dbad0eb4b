"""The sampler contract, checked on every entry of ``samplers.SAMPLERS``."""

import ast
import inspect
import pathlib
import subprocess
import sys

import pytest
import torch

import samplers as S

# options that make a stochastic sampler draw noise (the others draw it by default)
NOISY = {"heun": {"s_churn": 1.0}}
PKG = pathlib.Path(S.__file__).parent


class Counting:
    """Denoiser of data N(0, 0.25 I) (exact, per sample) that records every call."""

    def __init__(self):
        self.calls, self.sigmas = 0, []

    def __call__(self, x, sigma):
        assert sigma.shape == (x.shape[0],) and sigma.dtype == x.dtype
        assert sigma.device == x.device
        self.calls += 1
        self.sigmas.append(sigma)
        return x * (0.25 / (0.25 + sigma**2)).reshape(-1, *[1] * (x.ndim - 1))


def _run(name, x, sigmas, **kw):
    den = Counting()
    steps = []
    out = S.sample(name, den, x, sigmas, callback=steps.append, **kw)
    return out, den, steps


@pytest.mark.parametrize("name", sorted(S.SAMPLERS))
def test_signature(name):
    params = list(inspect.signature(S.SAMPLERS[name]).parameters.values())
    assert [p.name for p in params[:3]] == ["denoise", "x", "sigmas"]
    kw = {p.name: p for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY}
    assert kw["noise"].default is None and kw["callback"].default is None
    assert S.SAMPLERS[name] is getattr(S, f"sample_{name}")
    assert S.SAMPLERS[name].__doc__


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape", [(3, 4), (3, 2, 5), (2, 2, 3, 4), (2, 1, 2, 3, 4)])
@pytest.mark.parametrize("name", sorted(S.SAMPLERS))
def test_shapes_dtypes_nfe_and_callback(name, shape, dtype):
    n = 6
    sigmas = S.get_sigmas("loguniform", n, sigma_min=0.01, sigma_max=20.0)
    x = 20.0 * torch.randn(shape, generator=torch.Generator().manual_seed(0), dtype=dtype)
    out, den, steps = _run(name, x, sigmas, noise=S.seeded_noise(range(shape[0])),
                           **NOISY.get(name, {}))
    assert out.shape == x.shape and out.dtype == dtype and torch.isfinite(out).all()
    assert all(float(s.min()) > 0 for s in den.sigmas), "never call the model at sigma = 0"
    expected = S.nfe(name, n)
    if expected is None:  # adaptive: the callback reports the count
        expected = steps[-1]["nfe"]
    assert den.calls == expected
    assert {"i", "x", "sigma", "denoised"} <= set(steps[0])
    # the exact answer is 0.5/sqrt(0.25 + 400) x: every method must be near it
    ref = x.double() * (0.25 / (0.25 + 400.0)) ** 0.5
    if not S.SAMPLERS[name].stochastic:
        assert (out.double() - ref).norm() / ref.norm() < 0.5  # gross errors only (6 steps)


@pytest.mark.parametrize("name", sorted(S.SAMPLERS))
def test_determinism_and_batch_independence(name):
    sigmas = S.get_sigmas("loguniform", 8, sigma_min=0.01, sigma_max=20.0)
    g = torch.Generator().manual_seed(3)
    x = 20.0 * torch.randn(3, 2, 6, generator=g, dtype=torch.float64)
    opts = NOISY.get(name, {})
    a, _, _ = _run(name, x, sigmas, noise=S.seeded_noise([11, 12, 13]), **opts)
    b, _, _ = _run(name, x, sigmas, noise=S.seeded_noise([11, 12, 13]), **opts)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    single, _, _ = _run(name, x[1:2], sigmas, noise=S.seeded_noise([12]), **opts)
    torch.testing.assert_close(single, a[1:2], rtol=1e-12, atol=1e-12)
    if S.SAMPLERS[name].stochastic:  # other seeds give other samples
        c, _, _ = _run(name, x, sigmas, noise=S.seeded_noise([21, 22, 23]), **opts)
        assert (c - a).abs().max() > 1e-3


def test_noise_forms():
    sigmas = S.get_sigmas("karras", 5, sigma_min=0.01, sigma_max=10.0)
    x = torch.randn(2, 3, 4, generator=torch.Generator().manual_seed(0))
    draws = torch.randn(5, 2, 3, 4, generator=torch.Generator().manual_seed(1))
    a = S.sample_euler_ancestral(Counting(), x, sigmas, noise=draws)
    b = S.sample_euler_ancestral(Counting(), x, sigmas, noise=lambda i, shape: draws[i])
    torch.testing.assert_close(a, b)
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    torch.testing.assert_close(S.sample_dpmpp_2m_sde(Counting(), x, sigmas, noise=g1),
                               S.sample_dpmpp_2m_sde(Counting(), x, sigmas, noise=g2))
    with pytest.raises(ValueError, match="noise"):
        S.sample_euler_ancestral(Counting(), x, sigmas, noise="seed")
    with pytest.raises(ValueError, match="seeds"):
        S.sample_euler_ancestral(Counting(), x, sigmas, noise=S.seeded_noise([1, 2, 3]))


def test_bad_inputs():
    x = torch.zeros(2, 3)
    with pytest.raises(ValueError, match="allowed: deis, dpm_adaptive"):
        S.sample("ddim", Counting(), x, torch.tensor([1.0, 0.0]))
    with pytest.raises(ValueError, match="descending"):
        S.sample_euler(Counting(), x, torch.tensor([1.0, 2.0, 0.0]))
    with pytest.raises(ValueError, match="rank >= 2"):
        S.sample_euler(Counting(), torch.zeros(3), torch.tensor([1.0, 0.0]))
    with pytest.raises(ValueError, match="allowed: 1, 2, 3"):
        S.sample_deis(Counting(), x, torch.tensor([1.0, 0.0]), order=4)


def test_euler_is_ddim_and_dpm_solver_1():
    """DDIM eta=0, DPM-Solver-1, rho-AB-DEIS-1 and rf_euler are the same first-order map."""
    sigmas = S.get_sigmas("karras", 7, sigma_min=0.02, sigma_max=30.0)
    x = 30 * torch.randn(2, 3, 4, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    ref = S.sample_euler(Counting(), x, sigmas)
    for name, kw in [("dpm_solver_1", {}), ("deis", {"order": 1}), ("rf_euler", {}),
                     ("euler_ancestral", {"eta": 0.0}), ("dpmpp_2m_sde", {"eta": 0.0})]:
        out = S.sample(name, Counting(), x, sigmas, **kw)
        if name == "dpmpp_2m_sde":  # same first step, second order afterwards
            continue
        torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-10)


def _module_imports(path):
    """Top-level module names imported at module level (not inside functions)."""
    tree = ast.parse(path.read_text())
    names = []
    for node in tree.body:
        if isinstance(node, ast.Import):
            names += [a.name.split(".")[0] for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names.append(node.module.split(".")[0])
    return names


def test_samplers_imports_torch_only():
    allowed = {"torch", "math", "typing", "abc", "collections", "dataclasses", "__future__"}
    for path in sorted(PKG.glob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                assert not node.module.startswith("genphys"), path.name
            if isinstance(node, ast.Import):
                assert not any(a.name.startswith("genphys") for a in node.names), path.name
        assert set(_module_imports(path)) <= allowed, (path.name, _module_imports(path))
    code = ("import sys, samplers; bad = [m for m in sys.modules if m.split('.')[0] in "
            "('genphys', 'scipy', 'diffusers')]; assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=PKG.parent)


def test_nfe_rules_and_steps_for_nfe():
    assert [S.nfe(m, 10) for m in ("euler", "heun", "dpm_solver_3", "unipc")] == [10, 19, 28, 10]
    assert S.nfe("dpm_adaptive", 10) is None
    for name in sorted(S.SAMPLERS):
        if S.nfe(name, 1) is None:
            with pytest.raises(ValueError, match="adaptive"):
                S.steps_for_nfe(name, 10)
            continue
        for target in (5, 10, 20):
            n = S.steps_for_nfe(name, target)
            assert S.nfe(name, n) <= target < S.nfe(name, n + 1)
