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
        version = f.attrs["genphys_version"]
        assert meta["merged_from"] == [
            {"path": str(a.resolve()), "n": 3, "seed": 0, "overrides": [],
             "genphys_version": version},
            {"path": str(b.resolve()), "n": 4, "seed": 0, "overrides": ["x=1"],
             "genphys_version": version}]


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


def test_mesh_shards_with_another_solver_config_are_refused(tmp_path, capsys):
    small = ["--set", "max_area=2e-2", "--no-progress", "--num", "1"]
    for name, extra in [("a", ["--set", "nt=3"]), ("b", ["--set", "nt=5"]),
                        ("c", ["--set", "nt=3"])]:
        assert main(["data", "advdiff_mesh2d", *small, *extra, "--seed", str(ord(name)),
                     "--out", str(tmp_path / f"{name}.h5")]) == 0
    with pytest.raises(UserInputError, match="differ in config, time "):
        merge_trajectories(tmp_path / "m.h5", [tmp_path / "a.h5", tmp_path / "b.h5"])
    m = merge_trajectories(tmp_path / "m.h5", [tmp_path / "a.h5", tmp_path / "c.h5"])
    with open_trajectories(m) as f:
        assert len(f) == 2 and f.attrs["genphys_attrs"]["config"]["nt"] == 3


def test_speed_only_options_may_differ_and_provenance_nests(tmp_path, capsys):
    """ns2d shards solved with different torch thread counts hold the same physics."""
    small = ["--set", "resolution=16", "--set", "nt=2", "--set", "t_final=0.2", "--num", "1",
             "--no-progress"]
    for seed, threads in [(1, 1), (2, 2), (3, 1)]:
        assert main(["data", "ns2d", *small, "--set", f"threads={threads}", "--seed", str(seed),
                     "--out", str(tmp_path / f"s{seed}.h5")]) == 0
    ab = merge_trajectories(tmp_path / "ab.h5", [tmp_path / "s1.h5", str(tmp_path / "s2.h5")])
    abc = merge_trajectories(tmp_path / "abc.h5", [ab, tmp_path / "s3.h5"])
    with open_trajectories(abc) as f:
        assert len(f) == 3 and len(set(f.seeds().tolist())) == 3
        # the Well root attribute of a parameter: its value if constant, else NaN
        assert np.isnan(f.attrs["nu"]) and f.attrs["forcing"] == pytest.approx(0.1)
        src = f.attrs["genphys_attrs"]["merged_from"]
        assert [s["n"] for s in src] == [2, 1] and src[1]["seed"] == 3
        assert [s["seed"] for s in src[0]["merged_from"]] == [1, 2]
        assert src[0]["path"] == str(ab.resolve())
    assert main(["data", "ns2d", *small, "--set", "resolution=8", "--seed", "4",
                 "--out", str(tmp_path / "s4.h5")]) == 0
    with pytest.raises(UserInputError, match="differ in config, coords "):
        merge_trajectories(tmp_path / "x.h5", [tmp_path / "s1.h5", tmp_path / "s4.h5"])


@pytest.mark.parametrize("first", [True, False])
def test_foreign_and_empty_files_are_refused(tmp_path, first):
    import h5py

    ours = write_trajectories(tmp_path / "a.h5", [toy_grid(2)], system_name="toy")
    pdb = tmp_path / "pdebench.h5"
    with h5py.File(pdb, "w") as f:  # PDEBench's 1D single-tensor layout
        f["tensor"] = np.zeros((2, 3, 8), np.float32)
        f["x-coordinate"] = np.linspace(0, 1, 8, dtype=np.float32)
        f["t-coordinate"] = np.linspace(0, 1, 4, dtype=np.float32)
    with pytest.raises(UserInputError, match="is a .*pdebench.* file; merge joins only"):
        merge_trajectories(tmp_path / "m.h5", [pdb, ours] if first else [ours, pdb])
    empty = write_trajectories(tmp_path / "e.h5", [toy_grid(1, seed=9)], system_name="toy")
    with h5py.File(empty, "r+") as f:
        f.attrs["n_trajectories"] = 0
    with pytest.raises(UserInputError, match="e.h5 holds no trajectories"):
        merge_trajectories(tmp_path / "m.h5", [empty, ours] if first else [ours, empty])
    with pytest.raises(UserInputError, match="not one path"):
        merge_trajectories(tmp_path / "m.h5", str(ours))
    with pytest.raises(UserInputError, match="batch_size"):
        merge_trajectories(tmp_path / "m.h5", [ours], batch_size="4")
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
         "--merge takes input files, --out"),
        (["--merge", str(tmp_path / "s1.h5"), "--seed", "3", "--out", str(tmp_path / "y.h5")],
         "drop the system name, --num, --seed and --set"),
        (["--merge", str(tmp_path / "s1.h5")], "--out FILE is required"),
    ]:
        assert main(["data", *argv]) == 2
        err = capsys.readouterr().err
        assert msg in err and err.count("\n") == 1
    assert not (tmp_path / "x.h5").exists() and not (tmp_path / "y.h5").exists()
