"""The ``folder`` generator's face alignment (``params.align``): example pairs cut like ``pe3d edit``'s inputs."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from pe3d.config import ConfigError
from pe3d.faces import FaceSelectionError, prepare_portrait
from pe3d.geometry import label_from_yaw_pitch
from pe3d.images import load_image
from pe3d.styles import build_generator, load_style

RESOLUTION = 64
PHOTO = 256  # the astronaut downscaled: its face is ~50 px, quick to detect


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    from skimage.data import astronaut

    return np.asarray(Image.fromarray(astronaut()).resize((PHOTO, PHOTO), Image.Resampling.LANCZOS))


def _style(root: Path, align: str, pairs: dict[str, tuple[np.ndarray, np.ndarray]], image_fraction: float = 0.0):
    for name, (before, after) in pairs.items():
        for side, array in (("before", before), ("after", after)):
            (root / "ex" / side).mkdir(parents=True, exist_ok=True)
            Image.fromarray(array).save(root / "ex" / side / f"{name}.png")
    spec = {"generator": "folder", "params": {"dir": "ex", "align": align},
            "pairs": {"resolution": RESOLUTION, "image_fraction": image_fraction},
            "prompts": {"train": ["make it negative"], "test": ["make it negative"]}}
    (root / "style.yaml").write_text(yaml.safe_dump(spec))
    return load_style(root)


def test_face_alignment_cuts_both_images_with_the_photos_face(tmp_path, photo):
    negative = 255 - photo
    small_negative = np.asarray(Image.fromarray(negative).resize((PHOTO // 2, PHOTO // 2), Image.Resampling.LANCZOS))
    spec = _style(tmp_path / "s", "face", {"a": (photo, negative), "b": (photo, small_negative)})
    same_size, other_size = build_generator(spec).generate([0, 1])

    expected = prepare_portrait(load_image(tmp_path / "s" / "ex" / "before" / "a.png"), RESOLUTION, "largest")
    assert torch.allclose(same_size.input, expected.image, atol=1e-6)  # the same crop as pe3d edit makes
    assert torch.allclose(same_size.camera, expected.camera.reshape(25).float(), atol=1e-6)  # and its camera
    assert not torch.allclose(same_size.camera, label_from_yaw_pitch(0.0, 0.0)[0], atol=1e-3)
    # the edit is cut by the same square: the negative of the aligned photo (exact up to 8-bit rounding)
    assert (same_size.edited - (1 - same_size.input)).abs().max() < 2.5 / 255
    # an edit saved at half the size is resized back first, so it is still registered
    assert (other_size.edited - (1 - other_size.input)).abs().mean() < 0.03

    centred = build_generator(_style(tmp_path / "c", "none", {"a": (photo, negative)})).generate([0])[0]
    assert (centred.input - same_size.input).abs().mean() > 0.05  # centre-cropping is a different framing


def test_a_camera_file_wins_over_the_estimate(tmp_path, photo):
    spec = _style(tmp_path / "s", "face", {"a": (photo, 255 - photo)})
    given = label_from_yaw_pitch(0.3, -0.1)[0]
    (tmp_path / "s" / "ex" / "cameras.json").write_text(json.dumps({"a.png": given.tolist()}))
    pair = build_generator(load_style(tmp_path / "s")).generate([0])[0]
    assert torch.allclose(pair.camera, given) and pair.input.shape == (3, RESOLUTION, RESOLUTION)
    assert spec.params["align"] == "face"


def test_no_face_is_an_error_naming_the_file_or_a_centre_crop_with_auto(tmp_path, photo):
    blank = np.full((PHOTO, PHOTO, 3), 128, np.uint8)
    strict = build_generator(_style(tmp_path / "f", "face", {"a": (photo, 255 - photo), "z": (blank, blank)}))
    with pytest.raises(FaceSelectionError, match=r"z\.png: no face found.*params\.align to auto or none"):
        strict.generate([1])
    lenient = build_generator(_style(tmp_path / "a", "auto", {"a": (photo, 255 - photo), "z": (blank, blank)},
                                     image_fraction=1.0))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        aligned, centred = lenient.generate([0, 1])
    assert any("z.png: no face found" in str(w.message) and "centre-cropped" in str(w.message) for w in caught)
    assert torch.allclose(centred.input, torch.full_like(centred.input, 128 / 255), atol=1e-6)
    assert torch.equal(centred.camera, label_from_yaw_pitch(0.0, 0.0)[0])
    assert torch.allclose(aligned.reference, centred.edited) and torch.allclose(centred.reference, aligned.edited)


def test_unknown_align_mode_names_the_key(tmp_path, photo):
    with pytest.raises(ConfigError, match=r"key 'params\.align': must be one of \['none', 'face', 'auto'\], got 'yes'"):
        _style(tmp_path / "s", "yes", {"a": (photo, photo)})


def test_pairs_with_another_aspect_ratio_are_refused(tmp_path, photo):
    wide = np.asarray(Image.fromarray(photo).resize((PHOTO, PHOTO // 2)))
    with pytest.raises(ValueError, match=r"a\.png: the edited image is 256x128 but the photo is 256x256"):
        build_generator(_style(tmp_path / "s", "face", {"a": (photo, wide)})).generate([0])
