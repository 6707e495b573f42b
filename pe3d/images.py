"""Loading user images safely: every odd format converted, every bad file a one-line error.

:func:`load_image` returns ``[3, H, W]`` float RGB in ``[0, 1]``:

* grayscale, palette, RGBA / LA (composited on white), CMYK and 16-bit images are converted;
* an EXIF orientation tag (how cameras and phones store a photo taken sideways) is applied, so the image
  comes out upright;
* a missing file, a non-image, or a truncated image raises :class:`ImageLoadError` naming the file;
* images smaller than :data:`MIN_SIDE` pixels on a side are refused;
* images above :data:`MAX_PIXELS` are refused before decoding (decompression-bomb guard), and
  large images are downscaled so their longer side is at most ``max_side``.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from pe3d.errors import InvalidInput

__all__ = ["ImageLoadError", "MAX_PIXELS", "MIN_SIDE", "center_square", "load_image", "load_square_image", "open_rgb",
           "quantize_uint8", "resize_images"]

MIN_SIDE = 16
"""Smallest accepted image side in pixels."""
MAX_PIXELS = 80_000_000
"""Largest accepted pixel count (decompression-bomb guard)."""


class ImageLoadError(InvalidInput):
    """An image file cannot be used; the message names the file and the problem."""


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        array = np.asarray(image, dtype=np.float64)
        peak = 65535.0 if array.max() > 255 else 255.0
        return Image.fromarray((array / peak * 255).clip(0, 255).astype(np.uint8)).convert("RGB")
    if image.mode == "F":
        array = np.asarray(image, dtype=np.float64)
        array = (array - array.min()) / max(array.max() - array.min(), 1e-12)
        return Image.fromarray((array * 255).astype(np.uint8)).convert("RGB")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def open_rgb(path: str | Path) -> Image.Image:
    """Open ``path`` as a decoded RGB ``PIL.Image`` with every check of :func:`load_image`
    (missing file, not an image, truncated, too small, too many pixels: :class:`ImageLoadError`)."""
    path = Path(path)
    if not path.is_file():
        raise ImageLoadError(f"{path}: file not found")
    try:
        with warnings.catch_warnings():  # our own pixel cap below replaces PIL's bomb warning
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(path)
        with image:
            width, height = image.size
            if width * height > MAX_PIXELS:
                raise ImageLoadError(f"{path}: {width}x{height} image exceeds the {MAX_PIXELS:,}-pixel limit")
            if min(width, height) < MIN_SIDE:
                raise ImageLoadError(f"{path}: {width}x{height} image is smaller than the {MIN_SIDE}-pixel minimum side")
            image.load()
            return _to_rgb(ImageOps.exif_transpose(image))
    except ImageLoadError:
        raise
    except UnidentifiedImageError:
        raise ImageLoadError(f"{path}: not an image file (or an unsupported format)") from None
    except Exception as error:  # decoders of crafted files raise many types (OSError, struct.error, ...)
        raise ImageLoadError(f"{path}: cannot read image ({type(error).__name__}: {error})") from None


def _to_tensor(rgb: Image.Image) -> torch.Tensor:
    array = np.asarray(rgb, dtype=np.float32) / 255.0
    return torch.from_numpy(array).permute(2, 0, 1).contiguous()


def load_image(path: str | Path, max_side: int = 1024) -> torch.Tensor:
    """Read ``path`` as ``[3, H, W]`` float RGB in [0, 1] (see the module docstring for the rules)."""
    rgb = open_rgb(path)
    if max(rgb.size) > max_side:
        scale = max_side / max(rgb.size)
        rgb = rgb.resize((max(1, round(rgb.width * scale)), max(1, round(rgb.height * scale))), Image.LANCZOS)
    return _to_tensor(rgb)


def load_square_image(path: str | Path, resolution: int) -> torch.Tensor:
    """Read ``path`` (checked as by :func:`load_image`) as ``[3, R, R]``: the centred square, resized
    with Lanczos to ``resolution`` (how pair generators read example images)."""
    rgb = open_rgb(path)
    side = min(rgb.size)
    if rgb.width != rgb.height:
        left, top = (rgb.width - side) // 2, (rgb.height - side) // 2
        rgb = rgb.crop((left, top, left + side, top + side))
    if side != resolution:
        rgb = rgb.resize((resolution, resolution), Image.Resampling.LANCZOS)
    return _to_tensor(rgb)


def quantize_uint8(images: torch.Tensor) -> torch.Tensor:
    """``[..., 3, H, W]`` float in [0, 1] -> uint8 tensor, clamped and rounded: the one 8-bit
    quantisation pe3d uses for PNGs, videos and face detection (same layout, same device)."""
    return (images.detach().float().clamp(0, 1) * 255.0).round().to(torch.uint8)


def center_square(image: torch.Tensor) -> torch.Tensor:
    """The largest centred square crop of ``[3, H, W]``."""
    _, height, width = image.shape
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    return image[:, top : top + side, left : left + side]


def resize_images(images: torch.Tensor, size: int) -> torch.Tensor:
    """``[B, C, H, W]`` -> ``[B, C, size, size]``: the one resize pe3d applies to a portrait before a
    model sees it (the pipeline, ``pe3d demo``, ``pe3d eval`` and ``pe3d bench`` all call this).

    One resampling rule: unchanged when already ``size`` x ``size``; **area** averaging when both
    sides shrink (each output pixel is the mean of the input pixels it covers: no aliasing, and exact
    block means for integer factors); **bilinear** (``align_corners=False``, no antialiasing) when a
    side grows. A non-square image is resized, not cropped (crop first with :func:`center_square`).
    """
    if images.dim() != 4:
        raise ValueError(f"images must be [B, C, H, W], got {tuple(images.shape)}")
    height, width = images.shape[-2:]
    if height == size and width == size:
        return images
    shrink = height >= size and width >= size
    return torch.nn.functional.interpolate(images, size=(size, size), mode="area" if shrink else "bilinear",
                                           **({} if shrink else {"align_corners": False, "antialias": False}))
