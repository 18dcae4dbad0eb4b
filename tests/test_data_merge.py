"""Merging shards: exact concatenation, provenance, refusals that leave no file, the CLI."""

import numpy as np
import pytest

from genphys.cli import main
from genphys.data import merge_trajectories, open_trajectories, write_trajectories
from genphys.data.synthetic import toy_grid, toy_mesh
from genphys.errors import UserInputError


def _items_equal(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        if isinstance(a[k], np.ndarray):
            np.testing.assert_array_equal(a[k], b[k])
        elif isinstance(a[k], dict) and a[k] and isinstance(next(iter(a[k].values())), np.ndarray):
            for c in a[k]:
                np.testing.assert_array_equal(a[k][c], b[k][c])
        else:
            assert a[k] == b[k], k


@pytest.mark.parametrize("space", [(8,), (6, 4)])
def test_grid_shards_merge_to_the_single_run_file(tmp_path, space):
    one = write_trajectories(tmp_path / "one.h5", [toy_grid(7, space=space, periodic=False)],
                             system_name="toy", attrs={"seed": 0})
    a = write_trajectories(tmp_path / "a.h5", [toy_grid(3, space=space, periodic=False)],
                           system_name="toy", attrs={"seed": 0})
    b = write_trajectories(tmp_path / "b.h5", [toy_grid(4, start=3, space=space,
                                                        periodic=False)],
                           system_name="toy", attrs={"seed": 0, "overrides": ["x=1"]})
    m = merge_trajectories(tmp_path / "m.h5", [a, b], batch_size=2)
    with open_trajectories(one) as ref, open_trajectories(m) as f:
        assert (len(f), f.system, f.layout, f.field_names) == (7, "toy", "well (genphys)", ["u"])
        assert f.info() == ref.info()  # same shape, extents and (open) boundary
        for i in range(7):
            _items_equal(f[i], ref[i])
        np.testing.assert_array_equal(f.seeds(), ref.seeds())
        meta = f.attrs["genphys_attrs"]
        assert meta["solver"] == "toy" and "seed" not in meta
        assert meta["merged_from"] == [
            {"path": str(a), "n": 3, "seed": 0, "overrides": []},
            {"path": str(b), "n": 4, "seed": 0, "overrides": ["x=1"]}]


def test_mesh_shards_merge_in_order(tmp_path):
    t1, t2 = toy_mesh(3, seed=1), toy_mesh(2, seed=2)
    a = write_trajectories(tmp_path / "a.h5", [t1], system_name="toymesh", attrs={"seed": 1})
    b = write_trajectories(tmp_path / "b.h5", [t2], system_name="toymesh", attrs={"seed": 2})
    m = merge_trajectories(tmp_path / "m.h5", [a, b])
    with open_trajectories(m) as f, open_trajectories(a) as fa, open_trajectories(b) as fb:
        assert (len(f), f.kind, f.field_names, f.param_names) == (5, "mesh", ["c", "p"],
                                                                 ["kappa"])
        for i, src in enumerate([fa[0], fa[1], fa[2], fb[0], fb[1]]):
            _items_equal(f[i], src)
        assert [s["seed"] for s in f.attrs["genphys_attrs"]["merged_from"]] == [1, 2]


def test_overlapping_shards_are_refused_without_a_file(tmp_path):
    a = write_trajectories(tmp_path / "a.h5", [toy_grid(4)], system_name="toy")
    b = write_trajectories(tmp_path / "b.h5", [toy_grid(4, start=2)], system_name="toy")
    seed = int(toy_grid(1, start=2).seeds[0])
    with pytest.raises(UserInputError, match=f"seed {seed} is in both .*a.h5 and .*b.h5"):
        merge_trajectories(tmp_path / "m.h5", [a, b])
    assert sorted(tmp_path.iterdir()) == sorted([a, b])


@pytest.mark.parametrize("other, what", [
    (dict(space=(10,)), "coords"),
    (dict(fields=("u", "v")), "fields"),
    (dict(n_t=6), "config, time"),
    (dict(periodic=False), "boundary"),
    (dict(system="toy2"), "system"),
])
def test_different_systems_or_grids_are_refused(tmp_path, other, what):
    a = write_trajectories(tmp_path / "a.h5", [toy_grid(2, space=(8,))], system_name="toy")
    kw = {"space": (8,), **other}
    system = kw.pop("system", "toy")
    b = write_trajectories(tmp_path / "b.h5", [toy_grid(2, seed=5, system=system, **kw)],
                           system_name=system)
    with pytest.raises(UserInputError, match=f"differ in {what} "):
        merge_trajectories(tmp_path / "m.h5", [a, b])
    assert not (tmp_path / "m.h5").exists()


def test_grid_and_mesh_files_are_not_merged(tmp_path):
    a = write_trajectories(tmp_path / "a.h5", [toy_grid(2)], system_name="toy")
    b = write_trajectories(tmp_path / "b.h5", [toy_mesh(2)], system_name="toy")
    with pytest.raises(UserInputError, match="differ in .*kind"):
        merge_trajectories(tmp_path / "m.h5", [a, b])


def test_output_must_be_new_and_not_an_input(tmp_path):
    a = write_trajectories(tmp_path / "a.h5", [toy_grid(2)], system_name="toy")
    with pytest.raises(UserInputError, match="already exists"):
        merge_trajectories(a, [a])
    with pytest.raises(UserInputError, match="is also an input"):
        merge_trajectories(a, [a], overwrite=True)
    with pytest.raises(UserInputError, match="at least one input"):
        merge_trajectories(tmp_path / "m.h5", [])


def test_cli_merges_generated_shards(tmp_path, capsys):
    small = ["--set", "nx=16", "--set", "nt=3", "--no-progress"]
    for seed in (1, 2):
        assert main(["data", "burgers1d", "--num", "2", "--seed", str(seed),
                     "--out", str(tmp_path / f"s{seed}.h5"), *small]) == 0
    out = tmp_path / "all.h5"
    assert main(["data", "--merge", str(tmp_path / "s1.h5"), str(tmp_path / "s2.h5"),
                 "--out", str(out)]) == 0
    assert "wrote 4 burgers1d trajectories from 2 files" in capsys.readouterr().out
    with open_trajectories(out) as f, open_trajectories(tmp_path / "s2.h5") as s2:
        assert len(f) == 4
        np.testing.assert_array_equal(f[3]["fields"], s2[1]["fields"])
        assert f.attrs["genphys_attrs"]["config"]["nx"] == 16

    # the same shard twice, an existing output, a system name: one sentence, exit 2
    for argv, msg in [
        (["--merge", str(tmp_path / "s1.h5"), str(tmp_path / "s1.h5"), "--out",
          str(tmp_path / "x.h5")], "the shards overlap"),
        (["--merge", str(tmp_path / "s1.h5"), "--out", str(out)], "already exists"),
        (["burgers1d", "--merge", str(tmp_path / "s1.h5"), "--out", str(tmp_path / "y.h5")],
         "--merge takes input files and --out only"),
        (["--merge", str(tmp_path / "s1.h5")], "--out FILE is required"),
    ]:
        assert main(["data", *argv]) == 2
        err = capsys.readouterr().err
        assert msg in err and err.count("\n") == 1
    assert not (tmp_path / "x.h5").exists() and not (tmp_path / "y.h5").exists()
