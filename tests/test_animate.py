"""``genphys.viz.animate`` and the ``--gif`` flag of ``generate``/``rollout``."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageSequence

from genphys.errors import UserInputError
from genphys.viz.animate import animate_1d, animate_fields, check_gif_path, save_gif


def frames(path) -> list[np.ndarray]:
    """All frames of a GIF as RGB arrays."""
    with Image.open(path) as im:
        return [np.asarray(f.convert("RGB")) for f in ImageSequence.Iterator(im)]


def test_1d_ensemble_gif_has_one_frame_per_time(tmp_path):
    x = (np.arange(16) + 0.5) / 16
    t = np.linspace(0, 2, 5)
    rng = np.random.default_rng(0)
    u = np.sin(2 * np.pi * x)[None, None] * np.exp(-t)[None, :, None] \
        + 0.1 * rng.standard_normal((3, 5, 16))  # (E=3, T=5, X=16)
    out = animate_fields(u, t, {"x": x}, tmp_path / "a.gif")
    assert out == tmp_path / "a.gif"
    imgs = frames(out)
    assert len(imgs) == 5 and imgs[0].shape[2] == 3
    assert all(np.abs(a.astype(int) - b).sum() > 0 for a, b in zip(imgs, imgs[1:]))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.gif"]  # no temp file left


def test_1d_band_is_mean_plus_minus_std(tmp_path):
    x = np.linspace(0, 1, 9)
    u = np.stack([np.full((2, 9), v) for v in (1.0, 2.0, 6.0)])  # (E=3, T=2, X=9)
    u[:, 1] *= -1
    anim = animate_1d(u, x, np.array([0.0, 0.5]))
    ax = anim._fig.axes[0]
    save_gif(anim, tmp_path / "b.gif")  # the figure is left at the last frame (t = 0.5)
    np.testing.assert_allclose(ax.lines[0].get_ydata(), -3.0)  # mean of -1, -2, -6
    band = ax.collections[0].get_paths()[0].vertices[:, 1]
    std = np.std([1.0, 2.0, 6.0])
    np.testing.assert_allclose([band.min(), band.max()], [-3 - std, -3 + std])
    assert ax.get_title() == "u  t = 0.5"
    lo, hi = ax.get_ylim()  # fixed over frames: covers both frames' bands
    assert lo < -3 - std and hi > 3 + std


def test_2d_gif_and_single_sample_1d(tmp_path):
    t = np.linspace(0, 1, 4)
    w = np.random.default_rng(1).standard_normal((2, 4, 8, 6))  # (B, T, H, W)
    assert len(frames(animate_fields(w, t, {"x": np.arange(8), "y": np.arange(6)},
                                     tmp_path / "w.gif"))) == 4
    u = np.cos(np.linspace(0, 6, 7))[None, None] * np.ones((1, 3, 1))  # (B=1, T=3, X=7)
    assert len(frames(animate_fields(u, t[:3], {"x": np.arange(7)}, tmp_path / "u.gif"))) == 3


def test_bad_paths_and_shapes(tmp_path):
    with pytest.raises(UserInputError, match="must end in .gif"):
        check_gif_path(tmp_path / "a.png")
    with pytest.raises(UserInputError, match="missing or not writable"):
        check_gif_path(tmp_path / "nope" / "a.gif")
    with pytest.raises(UserInputError, match="3 spatial dimensions"):
        animate_fields(np.zeros((1, 2, 3, 3, 3)), np.arange(2), {}, tmp_path / "a.gif")
    assert list(tmp_path.iterdir()) == []


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    """A tiny (untrained) burgers1d model exported by the trainer, and its data file."""
    from genphys.train.testing import tiny_burgers_export

    return tiny_burgers_export(tmp_path_factory.mktemp("gif"), num=4)


def test_cli_gif_generate_and_rollout(export, capsys):
    from genphys.cli import main

    d = export
    assert main(["generate", "--init", f"{d / 'b.h5'}:1", "--model", str(d / "export"),
                 "--num-samples", "3", "--steps", "2", "--gif", str(d / "g.gif"),
                 "--out", str(d / "g.h5")]) == 0
    assert f"wrote {d / 'g.gif'}" in capsys.readouterr().out
    assert len(frames(d / "g.gif")) == 16
    assert main(["rollout", "--model", str(d / "export"), "--init", f"{d / 'b.h5'}:0",
                 "--horizon", "20", "--ensemble", "2", "--steps", "2",
                 "--gif", str(d / "r.gif"), "--out", str(d / "r.h5")]) == 0
    assert len(frames(d / "r.gif")) == 20


def test_cli_bad_gif_fails_before_sampling(export, capsys):
    from genphys.cli import main

    with pytest.raises(SystemExit) as e:
        main(["generate", "x", "--model", str(export / "export"), "--gif",
              str(export / "g.png")])
    assert e.value.code == 2
    assert "must end in .gif" in capsys.readouterr().err
