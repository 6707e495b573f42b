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
