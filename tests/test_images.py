"""Image loading: odd formats are converted, bad files give one-line errors naming the file."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from pe3d.images import MIN_SIDE, ImageLoadError, load_image


def _save(path, array, mode=None, **kwargs):
    Image.fromarray(array, mode=mode).save(path, **kwargs) if mode else Image.fromarray(array).save(path, **kwargs)
    return path


@pytest.mark.parametrize(
    "name, make",
    [
        ("gray.png", lambda p: _save(p, np.full((32, 40), 128, np.uint8))),
        ("rgba.png", lambda p: _save(p, np.dstack([np.zeros((32, 32, 3), np.uint8), np.zeros((32, 32), np.uint8)]))),
        ("16bit.png", lambda p: Image.fromarray(np.full((32, 32), 65535, np.uint16)).save(p) or p),
        ("cmyk.jpg", lambda p: Image.new("CMYK", (32, 32), (0, 255, 255, 0)).save(p) or p),
        ("palette.gif", lambda p: Image.new("P", (32, 32), 3).save(p) or p),
    ],
)
def test_odd_formats_become_rgb(tmp_path, name, make):
    path = make(tmp_path / name)
    image = load_image(path)
    assert image.shape[0] == 3 and image.min() >= 0 and image.max() <= 1
    if name == "rgba.png":
        assert image.min() == 1.0  # fully transparent pixels composite onto white
    if name == "16bit.png":
        assert image.min() == 1.0


def test_bad_files_name_the_file(tmp_path):
    good = _save(tmp_path / "good.png", np.zeros((64, 64, 3), np.uint8))
    cases = {
        tmp_path / "missing.png": "not found",
        tmp_path / "empty.png": "not an image",
        tmp_path / "text.jpg": "not an image",
        tmp_path / "truncated.png": "cannot read",
        tmp_path / "tiny.png": "minimum side",
    }
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "text.jpg").write_text("hello")
    (tmp_path / "truncated.png").write_bytes(good.read_bytes()[:60])
    _save(tmp_path / "tiny.png", np.zeros((MIN_SIDE - 1, 64, 3), np.uint8))
    for path, message in cases.items():
        with pytest.raises(ImageLoadError, match=message) as info:
            load_image(path)
        assert path.name in str(info.value)


def test_large_images_are_downscaled(tmp_path):
    path = _save(tmp_path / "big.png", np.zeros((300, 2000, 3), np.uint8))
    assert load_image(path, max_side=500).shape == (3, 75, 500)


@settings(max_examples=40, deadline=None)
@given(st.binary(max_size=400))
def test_random_bytes_never_crash_the_loader(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("fuzz") / "x.png"
    path.write_bytes(data)
    try:
        image = load_image(path)
    except ImageLoadError:
        return
    assert image.shape[0] == 3
