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


# EXIF orientation tag -> the transpose that turns the stored pixels upright (the EXIF 2.3 table)
_STORED_FROM_UPRIGHT = {
    1: lambda im: im,
    2: lambda im: im.transpose(Image.Transpose.FLIP_LEFT_RIGHT),
    3: lambda im: im.transpose(Image.Transpose.ROTATE_180),
    4: lambda im: im.transpose(Image.Transpose.FLIP_TOP_BOTTOM),
    5: lambda im: im.transpose(Image.Transpose.TRANSPOSE),
    6: lambda im: im.transpose(Image.Transpose.ROTATE_90),   # the camera was turned clockwise: stored turned back
    7: lambda im: im.transpose(Image.Transpose.TRANSVERSE),
    8: lambda im: im.transpose(Image.Transpose.ROTATE_270),
}


@pytest.mark.parametrize("orientation", sorted(_STORED_FROM_UPRIGHT))
def test_exif_orientation_is_applied(tmp_path, orientation):
    """A photo stored sideways with an EXIF orientation tag (phones do this) loads upright: face detection
    found no face in the astronaut stored turned with tag 6 before the tag was applied."""
    from pe3d.images import load_square_image

    rng = np.random.default_rng(orientation)
    upright = rng.integers(0, 256, (24, 40, 3), dtype=np.uint8)  # not square, no symmetry
    stored = _STORED_FROM_UPRIGHT[orientation](Image.fromarray(upright))
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / f"turned{orientation}.png"
    stored.save(path, exif=exif)
    expected = upright.astype(np.float32) / 255.0
    assert np.array_equal(load_image(path).permute(1, 2, 0).numpy(), expected)
    assert load_square_image(path, 24).shape == (3, 24, 24)
    assert np.allclose(load_square_image(path, 24).permute(1, 2, 0).numpy(), expected[:, 8:32])
