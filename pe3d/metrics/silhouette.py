"""How much of a render's error lies on the ground truth's silhouette.

The world's views are rendered with one ray per pixel, so a head's outline is pixel-sharp: every pixel is
all head or all background. A reconstruction whose outline is soft, or one pixel off, pays for it on a
thin ring of pixels around that outline, and because head and background differ most there, the ring can
hold much of a view's squared error while covering a tenth of its pixels. :func:`split_ring_psnr` scores
a render on that ring and off it, so a prior's novel-view loss can be told apart into *where the outline
is* (geometry at the silhouette) and *what the surface looks like* (everything else).

The ring (:func:`silhouette_ring`) is the set of pixels within ``width`` pixels (8-connected) of a pixel
on the other side of the ground-truth mask: with ``width`` 1, the head pixels that touch background and
the background pixels that touch the head. The image's own border is not an outline (the shirt cut by the
frame's bottom edge is not a silhouette).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from pe3d.metrics.visibility import pixel_error, psnr_over


def silhouette_ring(mask: Tensor, width: int = 1) -> Tensor:
    """``[B, 1, H, W]`` bool: the pixels within ``width`` pixels (8-connected) of the other side of ``mask``
    ``[B, 1, H, W]`` (bool or 0/1), on both sides of its outline; the image border is not an outline."""
    if mask.dim() != 4 or mask.shape[1] != 1:
        raise ValueError(f"mask must be [B, 1, H, W], got {tuple(mask.shape)}")
    if width < 1:
        raise ValueError(f"width must be >= 1 pixel, got {width}")
    m = mask.to(torch.float32)
    size = 2 * width + 1
    grown = F.max_pool2d(m, size, stride=1, padding=width)  # pooling pads with -inf: the border adds nothing
    shrunk = -F.max_pool2d(-m, size, stride=1, padding=width)
    return (grown > 0.5) & (shrunk < 0.5)


@dataclass
class RingSplit:
    """One view's render scored on the ground truth's silhouette ring and off it (means over images).

    Attributes:
        ring_psnr: PSNR on the ring.
        off_ring_psnr: PSNR on every other pixel (what the view scores when its outline is exact).
        ring_share: fraction of the view's pixels on the ring.
        ring_error_share: fraction of the view's squared error (pooled over images) on the ring.
    """

    ring_psnr: float
    off_ring_psnr: float
    ring_share: float
    ring_error_share: float


def split_ring_psnr(image: Tensor, target: Tensor, mask: Tensor, width: int = 1) -> RingSplit:
    """Score ``image [B, 3, H, W]`` (clamped to [0, 1]) against ``target`` on the silhouette ring of the
    ground-truth ``mask [B, 1, H, W]`` and off it (:class:`RingSplit`)."""
    if image.shape != target.shape or mask.shape[-2:] != image.shape[-2:]:
        raise ValueError(f"image {tuple(image.shape)}, target {tuple(target.shape)} and mask {tuple(mask.shape)} differ")
    ring = silhouette_ring(mask, width)
    error = pixel_error(image, target)
    total = float(error.sum())
    return RingSplit(
        ring_psnr=float(torch.nanmean(psnr_over(error, ring))),
        off_ring_psnr=float(torch.nanmean(psnr_over(error, ~ring))),
        ring_share=float(ring.float().mean()),
        ring_error_share=float((error * ring).sum()) / total if total > 0 else math.nan,
    )


@dataclass
class OutlineErrors:
    """Where a render's outline lies against the true one: the render's opacity thresholded at ``threshold``
    compared with the ground-truth mask, as shares of the view's pixels (means over images). An outline one
    pixel too wide all round shows as ``too_wide`` about the ring's outer half and ``too_narrow`` near 0.

    Attributes:
        too_wide: opaque pixels outside the true mask (false positives).
        too_narrow: transparent pixels inside it (false negatives).
    """

    too_wide: float
    too_narrow: float


def outline_error_maps(opacity: Tensor, mask: Tensor, threshold: float = 0.5) -> tuple[Tensor, Tensor]:
    """``(too_wide, too_narrow)``, bool ``[B, 1, H, W]`` each: the pixels ``opacity [B, 1, H, W]`` (a render's
    accumulated weights) draws above ``threshold`` outside the ground-truth ``mask [B, 1, H, W]`` (bool or 0/1),
    and at or below it inside."""
    if opacity.shape != mask.shape or opacity.dim() != 4 or opacity.shape[1] != 1:
        raise ValueError(f"opacity {tuple(opacity.shape)} and mask {tuple(mask.shape)} must both be [B, 1, H, W]")
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"threshold must be in (0, 1), got {threshold}")
    opaque, inside = opacity > threshold, mask.bool()
    return opaque & ~inside, ~opaque & inside


def outline_errors(opacity: Tensor, mask: Tensor, threshold: float = 0.5) -> OutlineErrors:
    """:class:`OutlineErrors` of ``opacity`` against ``mask``: the shares of :func:`outline_error_maps`."""
    too_wide, too_narrow = outline_error_maps(opacity, mask, threshold)
    return OutlineErrors(too_wide=float(too_wide.float().mean()), too_narrow=float(too_narrow.float().mean()))


__all__ = ["OutlineErrors", "RingSplit", "outline_error_maps", "outline_errors", "silhouette_ring", "split_ring_psnr"]
