"""Bad inputs, one row each: the public entry point, what goes in, and the message that must come out.

Every row runs the real entry point (the CLI with its exit code, or the library call) and
checks a one-line error naming the file / key / value. A second part feeds a folder of crafted
bad files (truncated PNG / JPEG, zero bytes, wrong extension, a pickle that would run code)
through every loader: each must refuse with its own error type and never execute anything.
"""

from __future__ import annotations

import pickle
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pe3d.cli import main

ROOT = Path(__file__).resolve().parents[1]


def _png(path: Path, size=(64, 64)) -> Path:
    Image.fromarray(np.zeros((*size, 3), np.uint8)).save(path)
    return path


def _two_faces_png(path: Path) -> Path:
    from skimage.data import astronaut

    face = astronaut()[:256, 100:356]
    Image.fromarray(np.concatenate([face, face], axis=1)).save(path)
    return path


def _eg3d_bomb(tmp: Path) -> Path:
    (tmp / "ffhq512-128.pkl").write_bytes(pickle.dumps({"G_ema": _RunsCode(str(tmp / "PWNED"))}))
    return tmp / "ffhq512-128.pkl"


def _huge_png(path: Path) -> Path:
    Image.new("1", (9500, 9500)).save(path)  # 90 M pixels in the header; refused before decoding
    return path


CLI_CASES = [
    # (id, args builder, expected message)
    ("missing photo", lambda t: ["edit", str(t / "missing.png"), "--prompt", "x", "--out", str(t / "o")], r"missing\.png: file not found"),
    ("not an image", lambda t: ["edit", str((t / "notes.png").write_text("hi") and t / "notes.png"), "--prompt", "x", "--out", str(t / "o")], r"notes\.png: not an image"),
    ("truncated image", lambda t: ["edit", str(_truncated(t)), "--prompt", "x", "--out", str(t / "o")], r"cut\.png: cannot read image"),
    ("tiny image", lambda t: ["edit", str(_png(t / "tiny.png", (8, 8))), "--prompt", "x", "--out", str(t / "o")], r"tiny\.png: 8x8 image is smaller than"),
    ("huge image", lambda t: ["edit", str(_huge_png(t / "huge.png")), "--prompt", "x", "--out", str(t / "o")], r"huge\.png: 9500x9500 image exceeds"),
    ("no face", lambda t: ["edit", str(_png(t / "blank.png")), "--prompt", "x", "--out", str(t / "o")], r"blank\.png: no face found"),
    ("several faces", lambda t: ["edit", str(_two_faces_png(t / "two.png")), "--prompt", "x", "--out", str(t / "o")], r"two\.png: found 2 faces; choose one with --face largest or --face N"),
    ("face index out of range", lambda t: ["edit", str(_two_faces_png(t / "two.png")), "--prompt", "x", "--face", "5", "--out", str(t / "o")], r"two\.png: --face 5 is out of range; found 2"),
    ("no prompt", lambda t: ["edit", str(_png(t / "a.png")), "--out", str(t / "o")], r"give --style NAME, --prompt TEXT or --prompt-image"),
    ("empty prompt", lambda t: ["edit", str(_png(t / "a.png")), "--prompt", "   ", "--out", str(t / "o")], r"prompt 0 is empty"),
    ("unknown style", lambda t: ["pairs", "--style", "no_such_style"], r"no_such_style.*bronze_statue"),
    ("style path traversal", lambda t: ["pairs", "--style", "../outside"], r"escape the styles folder"),
    ("override of wrong type", lambda t: ["fit", "prior", "trainer.max_steps=lots"], r"trainer\.max_steps"),
    ("unknown config key", lambda t: ["fit", "prior", "trainer.max_stepz=3"], r"trainer\.max_stepz"),
    ("value refused by a config's own check", lambda t: ["fit", "prior", "teacher.kind=foo"], r"teacher\.kind must be one of"),
    ("adapt override that cannot be used", lambda t: ["fit", "adapt", "--style", "golden_statue", "trainer.max_steps=0"], r"trainer\.max_steps=0"),
    ("missing weights", lambda t: ["eval", "prior", "--weights", str(t / "w.safetensors")], r"w\.safetensors: file not found"),
    ("truncated weights", lambda t: ["eval", "prior", "--weights", str(_truncated_weights(t))], r"cut\.safetensors: truncated"),
    ("EG3D pickle that runs code", lambda t: ["import-eg3d", str(_eg3d_bomb(t)), str(t / "out.safetensors")], r"ffhq512-128\.pkl: .*pathlib"),
    ("wrong kind of weights", lambda t: ["eval", "prior", "--weights", str(ROOT / "pe3d/weights/editor_mini.safetensors")], r"expected a pe3d-prior checkpoint"),
]


def _truncated(tmp: Path) -> Path:
    data = _png(tmp / "full.png").read_bytes()
    (tmp / "cut.png").write_bytes(data[: len(data) // 2])
    return tmp / "cut.png"


def _truncated_weights(tmp: Path) -> Path:
    data = (ROOT / "pe3d/weights/prior_mini.safetensors").read_bytes()
    (tmp / "cut.safetensors").write_bytes(data[: len(data) // 3])
    return tmp / "cut.safetensors"


@pytest.mark.parametrize("case", CLI_CASES, ids=[c[0] for c in CLI_CASES])
def test_cli_bad_input(case, tmp_path, capsys):
    _, build, message = case
    assert main(build(tmp_path)) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert __import__("re").search(message, err), err
    assert not (tmp_path / "PWNED").exists(), "pickled code ran"


def test_internal_errors_keep_their_traceback(monkeypatch, tmp_path):
    """A ValueError / KeyError / OSError from inside pe3d is a bug, not bad input: it is not turned
    into a one-line exit 2 (the console script then exits 1 with the traceback)."""
    import pe3d.recipes.prior as prior

    for error in (ValueError("internal bug"), KeyError("internal bug"), OSError("internal bug")):
        def broken(cfg, resume=False, _error=error):
            raise _error

        monkeypatch.setattr(prior, "fit_prior", broken)
        with pytest.raises(type(error), match="internal bug"):
            main(["fit", "prior", f"out={tmp_path / 'run'}"])


def test_resume_without_a_checkpoint_says_so(tmp_path, capsys):
    assert main(["fit", "prior", "--resume", f"out={tmp_path / 'run'}"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert f"nothing to resume, no checkpoint at {tmp_path / 'run' / 'checkpoints' / 'last.ckpt'}" in err, err


@pytest.mark.parametrize("recipe", ["distill", "adapt"])
def test_resume_without_a_checkpoint_fails_before_making_pairs(tmp_path, capsys, recipe):
    """The check comes first: a wrong out= with --resume costs no pair generation."""
    pairs = tmp_path / "pairs"
    style = ["--styles", "golden_statue"] if recipe == "distill" else ["--style", "golden_statue"]
    assert main(["fit", recipe, "--resume", *style, f"out={tmp_path / 'run'}", f"pairs_dir={pairs}"]) == 2
    assert "nothing to resume" in capsys.readouterr().err
    assert not pairs.exists()


def test_user_input_errors_are_one_type():
    """Every error type the CLI reports as bad input derives from UserInputError (and keeps its old base)."""
    from pe3d.adapters import AdapterMismatchError
    from pe3d.config import ConfigError
    from pe3d.eg3d.importer import EG3DImportError
    from pe3d.eg3d.safe_pickle import UnsafePickleError
    from pe3d.errors import UserInputError
    from pe3d.faces.detect import FaceSelectionError
    from pe3d.images import ImageLoadError
    from pe3d.io import CorruptFileError
    from pe3d.styles.spec import StyleError

    for kind in (AdapterMismatchError, ConfigError, EG3DImportError, UnsafePickleError, FaceSelectionError,
                 ImageLoadError, CorruptFileError, StyleError):
        assert issubclass(kind, UserInputError) and issubclass(kind, ValueError), kind


def test_pipeline_refuses_nan_and_truncates_long_prompts():
    from pe3d.pipeline import EditPipeline

    pipe = EditPipeline.from_pretrained()
    with pytest.raises(ValueError, match="NaN or inf"):
        pipe(torch.full((3, 64, 64), float("inf")), prompt="x")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pipe(torch.rand(3, 64, 64), prompt="make it bronze " * 40, resolution=8)
    assert any("truncated" in str(w.message) for w in caught)


def test_adapter_with_missing_or_extra_tensors_is_refused_by_name(tmp_path):
    from pe3d.io import save_tensors
    from pe3d.pipeline import EditPipeline
    from pe3d.adapters import AdapterMismatchError, adapter_parameter_names

    pipe = EditPipeline.from_pretrained()
    names = adapter_parameter_names(pipe.editor, pipe.editor.adaptation_parameters())
    params = dict(pipe.editor.named_parameters())
    meta = {"format": "pe3d-adapter", "style": "x", "adapter_kind": "norm-only", "base_hash": pipe.base_hash}
    tensors = {n: params[n].detach() for n in names[1:]}
    save_tensors(tmp_path / "missing.safetensors", tensors, meta)
    with pytest.raises(AdapterMismatchError, match=f"missing \\['{names[0]}'\\]"):
        pipe.load_adapter(tmp_path / "missing.safetensors")
    tensors = {**{n: params[n].detach() for n in names}, "encoder.low.extra": torch.zeros(1)}
    save_tensors(tmp_path / "extra.safetensors", tensors, meta)
    with pytest.raises(AdapterMismatchError, match=r"extra \['encoder\.low\.extra'\]"):
        pipe.load_adapter(tmp_path / "extra.safetensors")


class _RunsCode:
    """Unpickling this would create the marker file."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


@pytest.fixture
def bad_files(tmp_path):
    folder = tmp_path / "bad"
    folder.mkdir()
    png = _png(tmp_path / "ok.png").read_bytes()
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(tmp_path / "ok.jpg")
    jpg = (tmp_path / "ok.jpg").read_bytes()
    marker = tmp_path / "PWNED"
    files = {
        "zero.png": b"",
        "truncated.png": png[: len(png) // 2],
        "truncated.jpg": jpg[: len(jpg) // 3],
        "png_named.safetensors": png,
        "text.ckpt": b"not a checkpoint",
        "bomb.ckpt": pickle.dumps({"state_dict": _RunsCode(str(marker))}),
        "bomb.safetensors": pickle.dumps(_RunsCode(str(marker))),
        "bomb.jsonl": pickle.dumps(_RunsCode(str(marker))),
        "bomb.pkl": pickle.dumps({"G_ema": _RunsCode(str(marker))}),  # an EG3D network pickle with a payload
        "bomb.pth": pickle.dumps({"G_init_args": [], "G_init_kwargs": {}, "G": _RunsCode(str(marker))}),
    }
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return folder, marker


def test_crafted_bad_files_through_every_loader(bad_files):
    from pe3d.data.pairs import ManifestError, read_manifest
    from pe3d.eg3d.importer import read_eg3d_checkpoint
    from pe3d.metrics.arcface import load_arcface
    from pe3d.images import ImageLoadError, load_image
    from pe3d.io import CorruptFileError, load_tensors
    from pe3d.models.prior import load_prior
    from pe3d.adapters import AdapterMismatchError, read_adapter
    from pe3d.systems.runner import SafeCheckpointIO

    folder, marker = bad_files
    loaders = {
        "image": (load_image, ImageLoadError),
        "tensors": (load_tensors, CorruptFileError),
        "prior": (load_prior, (CorruptFileError, ValueError)),
        "adapter": (read_adapter, (CorruptFileError, AdapterMismatchError)),
        "checkpoint": (SafeCheckpointIO().load_checkpoint, ValueError),
        "manifest": (read_manifest, ManifestError),
        "eg3d": (read_eg3d_checkpoint, ValueError),
        "arcface": (load_arcface, (ValueError, OSError)),
    }
    assert load_image(folder / "png_named.safetensors").shape == (3, 64, 64)  # content decides, not the name
    assert read_manifest(folder / "zero.png") == []  # an empty manifest is a pair set with no pairs yet
    for path in sorted(folder.iterdir()):
        for name, (load, errors) in loaders.items():
            if (name, path.name) in {("image", "png_named.safetensors"), ("manifest", "zero.png")}:
                continue
            with pytest.raises(errors) as info:
                load(path)
            assert path.name in str(info.value), (name, path.name, str(info.value))
    assert not marker.exists(), "a loader executed pickled code"
