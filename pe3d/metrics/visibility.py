"""Which pixels of a novel view show a surface the input view saw: the split of a single-image
reconstruction's error into what the input shows and what it cannot.

A prior sees one image. At a novel view, a foreground pixel whose surface point is hidden from the input
camera (the side of the head at yaw 30 deg, the top at pitch 15 deg) can only be guessed; a squared-error
loss then learns the mean over everything the world might put there, which is a blur no encoder can
avoid. The per-identity triplane fit of ``pe3d bench quality`` (the representation's ceiling) *sees* every
scored view, so comparing a prior with it mixes the two. :func:`seen_from` tells them apart with the
world's exact depth maps; :func:`split_psnr` scores a render on each part.

A target pixel counts as **seen** when it is foreground, its surface point (ray origin + ray depth x
direction) projects inside the source image, and some foreground source pixel within ``radius`` pixels of
the projection has a ray depth within ``tolerance`` of the point's distance from the source camera (the
neighbourhood absorbs the depth maps' pixel discretisation at grazing angles).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from pe3d.geometry.cameras import split_label
from pe3d.geometry.rays import sample_rays

DEFAULT_TOLERANCE = 0.03
"""World units (the FFHQ camera sits 2.7 from the head's centre; a 64² pixel spans ~0.01 there)."""


def _check_maps(name: str, depth: Tensor, mask: Tensor, labels: Tensor) -> None:
    if depth.dim() != 4 or depth.shape[1] != 1 or depth.shape[-1] != depth.shape[-2]:
        raise ValueError(f"{name} depth must be [B, 1, R, R], got {tuple(depth.shape)}")
    if mask.shape != depth.shape:
        raise ValueError(f"{name} mask must match its depth {tuple(depth.shape)}, got {tuple(mask.shape)}")
    if labels.dim() != 2 or labels.shape != (depth.shape[0], 25):
        raise ValueError(f"{name} labels must be [{depth.shape[0]}, 25], got {tuple(labels.shape)}")


def project_to_pixels(labels: Tensor, points: Tensor, resolution: int) -> tuple[Tensor, Tensor, Tensor]:
    """Project world ``points [B, N, 3]`` into the cameras ``labels [B, 25]`` (the inverse of
    :func:`pe3d.geometry.sample_rays`).

    Returns:
        ``(x, y, distance)``, each ``[B, N]``: continuous pixel coordinates (pixel ``i``'s centre at ``i``)
        and each point's distance from the camera centre; points behind the camera get ``x = y = -inf``.
    """
    cam2world, intrinsics = split_label(labels)
    rotation, origin = cam2world[:, :3, :3], cam2world[:, :3, 3]
    local = (points - origin[:, None]) @ rotation  # world -> camera: R^T (p - o)
    z = local[..., 2]
    fx, fy = intrinsics[:, 0, 0, None], intrinsics[:, 1, 1, None]
    cx, cy = intrinsics[:, 0, 2, None], intrinsics[:, 1, 2, None]
    skew = intrinsics[:, 0, 1, None]
    safe_z = torch.where(z > 1e-6, z, torch.ones_like(z))
    u = fx * local[..., 0] / safe_z + skew * local[..., 1] / safe_z + cx
    v = fy * local[..., 1] / safe_z + cy
    behind = z <= 1e-6
    x = torch.where(behind, torch.full_like(u, -math.inf), u * resolution - 0.5)
    y = torch.where(behind, torch.full_like(v, -math.inf), v * resolution - 0.5)
    return x, y, (points - origin[:, None]).norm(dim=-1)


def surface_points(labels: Tensor, depth: Tensor) -> Tensor:
    """``[B, R*R, 3]`` world points of every pixel of a ray-depth map ``depth [B, 1, R, R]`` (row-major)."""
    origins, directions = sample_rays(labels, depth.shape[-1])
    return origins + directions * depth.flatten(1)[..., None]


@torch.no_grad()
def seen_from(target_labels: Tensor, target_depth: Tensor, target_mask: Tensor, source_labels: Tensor,
              source_depth: Tensor, source_mask: Tensor, tolerance: float = DEFAULT_TOLERANCE, radius: int = 1) -> Tensor:
    """``[B, 1, R, R]`` bool: the target view's foreground pixels whose surface point the source view shows.

    Args:
        target_labels, source_labels: ``[B, 25]`` cameras of the view scored and of the input.
        target_depth, source_depth: ``[B, 1, R, R]`` ray depths (the world's ground truth).
        target_mask, source_mask: ``[B, 1, R, R]`` bool foreground of each.
        tolerance: how far (world units) the point may lie from the source's visible surface.
        radius: source pixels within this many pixels of the projection are compared (0: the nearest only).
    """
    _check_maps("target", target_depth, target_mask, target_labels)
    _check_maps("source", source_depth, source_mask, source_labels)
    if tolerance <= 0 or radius < 0:
        raise ValueError(f"tolerance must be > 0 and radius >= 0, got {tolerance} and {radius}")
    b, _, r, _ = target_depth.shape
    rs = source_depth.shape[-1]
    x, y, distance = project_to_pixels(source_labels, surface_points(target_labels, target_depth), rs)
    # Every source pixel's depth where it is foreground, +inf elsewhere (a point in front of
    # background is not "seen": the source shows no surface there).
    depth_fg = torch.where(source_mask, source_depth, torch.full_like(source_depth, math.inf))
    best = torch.full_like(distance, math.inf)
    xi, yi = x.round(), y.round()
    flat = depth_fg.flatten(1)
    for dy in range(-radius, radius + 1):
        for dx in range(-radius, radius + 1):
            px, py = xi + dx, yi + dy
            inside = (px >= 0) & (px < rs) & (py >= 0) & (py < rs)
            index = (py.clamp(0, rs - 1) * rs + px.clamp(0, rs - 1)).long()
            depth = torch.where(inside, flat.gather(1, index), torch.full_like(distance, math.inf))
            best = torch.minimum(best, (depth - distance).abs())
    return (best <= tolerance).view(b, 1, r, r) & target_mask


def seen_in_input(view, source, tolerance: float = DEFAULT_TOLERANCE, radius: int = 1) -> Tensor:
    """:func:`seen_from` for two :class:`~pe3d.metrics.ViewTarget` (``view`` scored, ``source`` the input)."""
    return seen_from(view.labels, view.depth, view.mask, source.labels, source.depth, source.mask, tolerance, radius)


def pixel_error(pred: Tensor, target: Tensor) -> Tensor:
    """``[B, 1, H, W]`` squared error per pixel (mean over channels) of ``pred`` clamped to [0, 1]."""
    return ((pred.clamp(0, 1) - target) ** 2).mean(1, keepdim=True)


def psnr_over(error: Tensor, mask: Tensor) -> Tensor:
    """Per-image PSNR (dB) of a per-pixel squared ``error`` over ``mask``; NaN where the mask is empty."""
    weight = mask.to(error.dtype)
    count = weight.flatten(1).sum(1)
    mse = (error * weight).flatten(1).sum(1) / count.clamp_min(1)
    return torch.where(count > 0, -10.0 * torch.log10(mse.clamp_min(1e-10)), torch.full_like(mse, math.nan))


def masked_psnr(pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """Per-image PSNR (dB) of ``pred`` (clamped to [0, 1]) against ``target`` ``[B, 3, H, W]`` over the
    pixels of ``mask [B, 1, H, W]`` -> ``[B]``; NaN for an image whose mask is empty."""
    return psnr_over(pixel_error(pred, target), mask)


@dataclass
class VisibilitySplit:
    """One view's render scored on three disjoint pixel sets (means over images; NaN where no image has the set).

    Attributes:
        seen_psnr: foreground the input view shows.
        hidden_psnr: foreground the input view does not show (guessed by a single-image model).
        background_psnr: pixels that are background in the ground truth.
        seen_share, hidden_share: fraction of the view's pixels in each foreground set.
        hidden_error_share: fraction of the view's squared error (pooled over images) on the hidden set.
    """

    seen_psnr: float
    hidden_psnr: float
    background_psnr: float
    seen_share: float
    hidden_share: float
    hidden_error_share: float


def split_psnr(image: Tensor, view, source, tolerance: float = DEFAULT_TOLERANCE, radius: int = 1) -> VisibilitySplit:
    """Score ``image [B, 3, R, R]`` (a render at ``view``'s cameras) against ``view.image`` on the pixels the
    input view ``source`` shows, those it hides and the background (:class:`VisibilitySplit`)."""
    seen = seen_in_input(view, source, tolerance, radius)
    hidden = view.mask & ~seen
    background = ~view.mask
    error = pixel_error(image, view.image)
    total = float(error.sum())
    return VisibilitySplit(
        seen_psnr=float(torch.nanmean(psnr_over(error, seen))),
        hidden_psnr=float(torch.nanmean(psnr_over(error, hidden))),
        background_psnr=float(torch.nanmean(psnr_over(error, background))),
        seen_share=float(seen.float().mean()),
        hidden_share=float(hidden.float().mean()),
        hidden_error_share=float((error * hidden).sum()) / total if total > 0 else math.nan,
    )


__all__ = ["DEFAULT_TOLERANCE", "VisibilitySplit", "masked_psnr", "pixel_error", "project_to_pixels", "psnr_over", "seen_from",
           "seen_in_input", "split_psnr", "surface_points"]
