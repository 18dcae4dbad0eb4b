"""The genphys command line: help, version, errors as one sentence, end-to-end data commands."""

import subprocess
import sys

import h5py
import numpy as np
import pytest

from genphys.cli import main


def run_cli(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_version_and_help_list_subcommands(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0
    assert capsys.readouterr().out.startswith("genphys 0.")
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for cmd in ("data", "inspect", "plot"):
        assert cmd in out


def test_console_script_error_has_no_traceback(tmp_path):
    r = subprocess.run([sys.executable, "-m", "genphys", "data", "nosuch", "--num", "1",
                        "--out", str(tmp_path / "x.h5")], capture_output=True, text=True)
    assert r.returncode != 0
    assert "Traceback" not in r.stderr
    assert r.stderr.strip().count("\n") == 0
    assert "unknown system 'nosuch'; available:" in r.stderr
    assert not (tmp_path / "x.h5").exists()


@pytest.mark.parametrize("argv, message", [
    (["data", "burgers1d", "--num", "2"], "--out FILE is required"),
    (["data", "burgers1d", "--num", "0", "--out", "{tmp}/a.h5"], "--num must be a positive"),
    (["data", "burgers1d", "--num", "1", "--out", "{tmp}/a.h5", "--set", "bogus=1"],
     "unknown key 'bogus'"),
    (["data", "burgers1d", "--num", "1", "--out", "{tmp}/a.h5", "--set", "nu=7"],
     "out of range"),
    (["data", "burgers1d", "--num", "1", "--out", "{tmp}/a.h5", "--set", "nu"],
     "--set expects KEY=VALUE"),
    (["data", "burgers1d", "--num", "1", "--out", "{tmp}/missing/dir/a.h5"], "does not exist"),
    (["inspect", "{tmp}/nothere.h5"], "nothere.h5"),
    (["plot", "{tmp}/nothere.h5", "--out", "{tmp}/p.png"], "nothere.h5"),
])
def test_bad_input_is_one_sentence_and_nonzero(capsys, tmp_path, argv, message):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    code, out, err = run_cli(capsys, *argv)
    assert code != 0
    assert message in err
    assert err.strip().count("\n") == 0
    assert not (tmp_path / "a.h5").exists()


def test_existing_output_needs_overwrite(capsys, tmp_path):
    out = tmp_path / "b.h5"
    out.write_bytes(b"keep me")
    code, _, err = run_cli(capsys, "data", "advection1d", "--num", "1", "--out", str(out))
    assert code != 0 and "already exists" in err and "--overwrite" in err
    assert out.read_bytes() == b"keep me"


def test_inspect_rejects_non_hdf5_and_foreign_hdf5(capsys, tmp_path):
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"not an hdf5 file at all")
    code, _, err = run_cli(capsys, "inspect", str(junk))
    assert code != 0 and "junk.h5" in err and err.strip().count("\n") == 0
    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as f:
        f["whatever"] = np.zeros(3)
    code, _, err = run_cli(capsys, "inspect", str(foreign))
    assert code != 0 and "foreign.h5" in err and err.strip().count("\n") == 0


def test_data_list_names_every_system_with_ranges(capsys):
    code, out, _ = run_cli(capsys, "data", "--list")
    assert code == 0
    for name in ("burgers1d", "advection1d", "ns2d", "advdiff_mesh2d"):
        assert f"{name}:" in out
    assert "param nu" in out and "log-uniform" in out
