"""Upload limits of the web interface: every refusal is a one-line message shown in the page.

Uploaded files are checked before any decoding: the byte size first, then the image header
(format and pixel count, read without decoding the pixels), and only then the full decode
through :func:`pe3d.images.load_image`. Messages name the file by its own name (never the
server's temporary path).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError
from torch import Tensor

from pe3d.images import ImageLoadError, load_image

ACCEPTED_FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "GIF", "TIFF")
"""Image formats (PIL names) the web interface accepts."""


class UploadRejected(ValueError):
    """An upload breaks a limit or is not a usable image; the message is shown to the user."""


@dataclass
class UploadLimits:
    """``max_bytes``: per uploaded file; ``max_pixels``: per image (width x height, from the header);
    ``max_pairs``: before/after pairs accepted by the adapt tab; ``max_prompt_chars``: text prompt length."""

    max_bytes: int = 10 * 1024 * 1024
    max_pixels: int = 16_000_000
    max_pairs: int = 50
    max_prompt_chars: int = 300

    def __post_init__(self) -> None:
        for name in ("max_bytes", "max_pixels", "max_pairs", "max_prompt_chars"):
            if getattr(self, name) < 1:
                raise ValueError(f"upload limit {name} must be >= 1, got {getattr(self, name)}")


def _megabytes(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MB"


def display_name(path: str | Path) -> str:
    """The file name a user recognises (gradio keeps the uploaded name as the temp file's name)."""
    return Path(path).name


def check_upload_size(path: str | Path, limits: UploadLimits) -> None:
    """Refuse a missing file or one over ``limits.max_bytes``."""
    name = display_name(path)
    try:
        size = Path(path).stat().st_size
    except OSError:
        raise UploadRejected(f"{name}: the upload did not arrive; please upload it again") from None
    if size > limits.max_bytes:
        raise UploadRejected(f"{name}: {_megabytes(size)} is over the {_megabytes(limits.max_bytes)} upload limit")
    if size == 0:
        raise UploadRejected(f"{name}: the file is empty")


def check_image_header(path: str | Path, limits: UploadLimits) -> tuple[int, int]:
    """Refuse non-images, unaccepted formats and images over ``limits.max_pixels`` (header only)."""
    name = display_name(path)
    try:
        with Image.open(path) as image:
            fmt, (width, height) = image.format, image.size
    except Image.DecompressionBombError:
        raise UploadRejected(f"{name}: the image is over the {limits.max_pixels:,}-pixel limit") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        raise UploadRejected(f"{name}: not an image (accepted: {', '.join(ACCEPTED_FORMATS)})") from None
    if fmt not in ACCEPTED_FORMATS:
        raise UploadRejected(f"{name}: {fmt} images are not accepted (accepted: {', '.join(ACCEPTED_FORMATS)})")
    if width * height > limits.max_pixels:
        raise UploadRejected(f"{name}: {width}x{height} is over the {limits.max_pixels:,}-pixel limit")
    return width, height


def load_uploaded_image(path: str | Path, limits: UploadLimits) -> Tensor:
    """All checks, then ``[3, H, W]`` float RGB in [0, 1]; :class:`UploadRejected` with the reason otherwise."""
    check_upload_size(path, limits)
    check_image_header(path, limits)
    try:
        return load_image(path)
    except ImageLoadError as error:
        reason = str(error).split(": ", 1)[-1]
        raise UploadRejected(f"{display_name(path)}: {reason}") from None


def check_prompt(prompt: str, limits: UploadLimits) -> str:
    """The stripped prompt; refuse one longer than ``limits.max_prompt_chars``."""
    prompt = prompt.strip()
    if len(prompt) > limits.max_prompt_chars:
        raise UploadRejected(f"the prompt has {len(prompt)} characters; the limit is {limits.max_prompt_chars}")
    return prompt
