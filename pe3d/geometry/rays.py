"""Ray generation for pinhole cameras in the EG3D convention."""

from __future__ import annotations

import torch
from torch import Tensor

from pe3d.geometry.cameras import split_label


def pixel_grid(resolution: int, device: torch.device | str | None = None) -> Tensor:
    """Normalized pixel centres in ``[0, 1]``, row-major (``y`` slow, ``x`` fast).

    Returns:
        ``[resolution * resolution, 2]`` holding ``(u, v) = (x, y)``.
    """
    coords = (torch.arange(resolution, dtype=torch.float32, device=device) + 0.5) / resolution
    v, u = torch.meshgrid(coords, coords, indexing="ij")
    return torch.stack((u.reshape(-1), v.reshape(-1)), dim=-1)


def sample_rays(label: Tensor, resolution: int) -> tuple[Tensor, Tensor]:
    """World-space rays through every pixel centre (EG3D ``RaySampler``).

    Args:
        label: ``[B, 25]`` camera labels.
        resolution: image side ``R`` in pixels.

    Returns:
        ``(origins [B, R*R, 3], directions [B, R*R, 3])``; directions have unit length,
        rays are ordered row-major so ``reshape(B, R, R, 3)`` gives image layout.
    """
    cam2world, intrinsics = split_label(label)
    uv = pixel_grid(resolution, label.device).to(label.dtype)  # [N, 2]
    fx, fy = intrinsics[:, 0, 0, None], intrinsics[:, 1, 1, None]
    cx, cy = intrinsics[:, 0, 2, None], intrinsics[:, 1, 2, None]
    skew = intrinsics[:, 0, 1, None]
    u, v = uv[None, :, 0], uv[None, :, 1]
    x_cam = (u - cx + cy * skew / fy - skew * v / fy) / fx
    y_cam = (v - cy) / fy
    dirs_cam = torch.stack((x_cam, y_cam, torch.ones_like(x_cam)), dim=-1)  # [B, N, 3]
    directions = torch.nn.functional.normalize(dirs_cam @ cam2world[:, :3, :3].transpose(1, 2), dim=-1)
    origins = cam2world[:, None, :3, 3].expand_as(directions)
    return origins, directions
