"""PDESystem base: overrides, parameter sampling, per-trajectory seeds, caption helpers."""

from dataclasses import dataclass

import numpy as np
import pytest

from genphys.physics import ParamSpec, PDESystem, SpecError, get_system, trajectory_seeds
from genphys.physics.captions import compose_captions, fmt


@dataclass(frozen=True)
class ToyConfig:
    nx: int = 8
    smooth: bool = False


class Toy(PDESystem):
    name = "toy"
    description = "a toy system"
    param_specs = (ParamSpec("nu", 1e-2, 1e-3, 1e-1, log=True), ParamSpec("beta", 1.0, -2, 2))
    field_names = ("u",)
    Config = ToyConfig

    def generate(self, num, seed=0, *, start=0, batch_size=None, progress=None):
        seeds = trajectory_seeds(seed, num, start)
        return [self.sample_params(np.random.default_rng(s)) for s in seeds]


def test_overrides_split_into_config_fixed_and_ranges():
    t = Toy(nx="16", smooth="yes", nu="0.05", beta_min=0.5)
    assert t.config == ToyConfig(nx=16, smooth=True)
    assert t.fixed == {"nu": 0.05}
    assert t.ranges["beta"] == (0.5, 2.0)
    params = t.generate(50, seed=3)
    assert all(p["nu"] == 0.05 for p in params)
    assert all(0.5 <= p["beta"] <= 2.0 for p in params)


@pytest.mark.parametrize("kw, words", [
    ({"bogus": 1}, ["unknown key 'bogus'", "nx", "nu_min"]),
    ({"nu": 5.0}, ["nu=5.0 is out of range", "[0.001, 0.1]"]),
    ({"nu_min": 0.05, "nu_max": 0.01}, ["larger than nu_max"]),
    ({"nx": "1.5"}, ["not a valid int"]),
    ({"smooth": "maybe"}, ["not a valid bool"]),
])
def test_bad_overrides_are_one_clear_sentence(kw, words):
    with pytest.raises(SpecError) as e:
        Toy(**kw)
    msg = str(e.value)
    assert msg.count("\n") == 0 and msg.endswith(".")
    for w in words:
        assert w in msg


def test_unknown_system_lists_available():
    with pytest.raises(SpecError, match="unknown system 'nope'; available: burgers1d"):
        get_system("nope")


def test_log_uniform_sampling_is_log_uniform():
    spec = ParamSpec("nu", 1e-2, 1e-3, 1e-1, log=True)
    rng = np.random.default_rng(0)
    x = np.log10([spec.sample(rng) for _ in range(20000)])
    assert x.min() >= -3 and x.max() <= -1
    # uniform on [-3, -1]: mean -2, variance 4/12
    assert abs(x.mean() + 2) < 0.02 and abs(x.var() - 1 / 3) < 0.02


def test_trajectory_seeds_do_not_depend_on_batching():
    full = trajectory_seeds(7, 10)
    assert np.array_equal(np.concatenate([trajectory_seeds(7, 4), trajectory_seeds(7, 6, 4)]),
                          full)
    assert len(set(full.tolist())) == 10
    assert not np.array_equal(trajectory_seeds(8, 10), full)
    t = Toy()
    assert t.generate(6, seed=1) == t.generate(3, seed=1) + t.generate(3, seed=1, start=3)


def test_compose_captions_distinct_deterministic_and_state_facts():
    facts = [["viscosity 0.004", "a viscosity of 0.004"], ["two bumps", "2 initial bumps"],
             ["a shock near x=0.5", "a shock forming at x=0.5"]]
    caps = compose_captions(np.random.default_rng(1), ["Burgers flow", "A Burgers run"], facts, k=3)
    assert len(caps) == 3 and len(set(caps)) == 3
    assert caps == compose_captions(np.random.default_rng(1), ["Burgers flow", "A Burgers run"],
                                    facts, k=3)
    for c in caps:  # every caption states every fact (min_facts defaults to all)
        assert "0.004" in c and ("two" in c.lower() or "2 " in c) and "0.5" in c
        assert c[0].isupper() and c.endswith(".")


def test_fmt_numbers():
    assert fmt(0.004) == "0.004"
    assert fmt(3.2e-5) == "3.2e-5"
    assert fmt(12) == "12"
    assert fmt(0) == "0"
    assert fmt(1e-5) == "1e-5" and fmt(2.5e4) == "2.5e4"
