"""The command line: help lists the commands, bad input gives a one-line error and exit code 2."""

import pytest

from pe3d.cli import main


def test_help_lists_commands(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for command in ("world", "fit", "eval", "pairs", "styles", "demo"):
        assert command in out


def test_unknown_style_and_bad_override_are_clear_errors(capsys, tmp_path):
    assert main(["pairs", "--style", "no_such_style", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "no_such_style" in err and "bronze_statue" in err
    assert main(["fit", "prior", "trainer.max_steps=lots"]) == 2
    assert "trainer.max_steps" in capsys.readouterr().err
    assert main(["eval", "prior", "--weights", str(tmp_path / "missing.safetensors")]) == 2
    assert "missing.safetensors" in capsys.readouterr().err


def test_world_command_writes_images(tmp_path, capsys):
    assert main(["world", "--out", str(tmp_path), "--count", "1", "--resolution", "32"]) == 0
    assert (tmp_path / "turntable.gif").is_file() and list(tmp_path.glob("*.png"))


def test_edit_command_writes_image_depth_and_turntable(tmp_path, capsys):
    import numpy as np
    from PIL import Image

    photo = tmp_path / "photo.png"
    Image.fromarray((np.random.default_rng(0).random((80, 60, 3)) * 255).astype("uint8")).save(photo)
    out = tmp_path / "out"
    assert main(["edit", str(photo), "--style", "bronze_statue", "--out", str(out), "--views", "3", "--no-align"]) == 0
    for name in ("edited.png", "depth.png", "turntable.gif"):
        assert (out / name).is_file()
    assert Image.open(out / "edited.png").size == (64, 64)
    assert main(["edit", str(tmp_path / "nope.png"), "--prompt", "x", "--out", str(out)]) == 2
    assert "nope.png" in capsys.readouterr().err
