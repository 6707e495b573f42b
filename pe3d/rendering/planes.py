"""Triplane projection and feature sampling (EG3D ``sample_from_planes``).

A triplane is a tensor ``[B, 3, C, H, W]``: three axis-aligned feature planes.
A world point is projected onto each plane by multiplying with the inverse of
that plane's basis and keeping the first two coordinates; the plane is then
sampled bilinearly at those coordinates (``grid_sample``: the first coordinate
indexes the width ``W``, the second the height ``H``).

EG3D's plane bases give the projections ``(x, y)``, ``(x, z)`` and ``(z, x)``
(the third plane was meant to be ``(z, y)`` / ``(y, z)`` but, because the basis
is inverted, it repeats the x-z pair transposed). We keep this quirk on purpose:
triplanes produced by EG3D-trained generators and encoders (Live3D, the 3DPE
prior) are only decoded correctly with the same projection.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def plane_axes(dtype: torch.dtype = torch.float32, device: torch.device | str | None = None) -> Tensor:
    """EG3D's three plane bases (``generate_planes``).

    Returns:
        ``[3, 3, 3]``: ``axes[p]`` is the basis of plane ``p`` (rows are basis vectors).
    """
    return torch.tensor(
        [
            [[1, 0, 0], [0, 1, 0], [0, 0, 1]],
            [[1, 0, 0], [0, 0, 1], [0, 1, 0]],
            [[0, 0, 1], [1, 0, 0], [0, 1, 0]],
        ],
        dtype=dtype,
        device=device,
    )


def project_onto_planes(coords: Tensor, axes: Tensor | None = None) -> Tensor:
    """Project 3D points onto the planes (``coords @ inv(axes[p])``, first two components).

    Args:
        coords: ``[B, N, 3]`` points (already scaled to the plane's ``[-1, 1]`` range
            if the result is meant for ``grid_sample``).
        axes: ``[P, 3, 3]`` plane bases; EG3D's :func:`plane_axes` when ``None``.

    Returns:
        ``[B, P, N, 2]`` in-plane coordinates; for EG3D's bases the planes give
        ``(x, y)``, ``(x, z)`` and ``(z, x)``.
    """
    if coords.ndim != 3 or coords.shape[-1] != 3:
        raise ValueError(f"coords must have shape [B, N, 3], got {tuple(coords.shape)}")
    if axes is None:
        axes = plane_axes(coords.dtype, coords.device)
    inverse = torch.linalg.inv(axes.to(coords))[..., :2]  # [P, 3, 2]
    return torch.einsum("bnk,pkj->bpnj", coords, inverse)


def sample_from_planes(
    planes: Tensor,
    coords: Tensor,
    box_warp: float = 1.0,
    mode: str = "bilinear",
) -> Tensor:
    """Sample triplane features at world points (EG3D ``sample_from_planes``).

    Points are scaled by ``2 / box_warp`` (the triplane spans the cube
    ``[-box_warp/2, box_warp/2]^3``), projected with :func:`project_onto_planes`
    and sampled with ``grid_sample(align_corners=False, padding_mode='zeros')``;
    points outside the cube read zeros.

    Args:
        planes: ``[B, 3, C, H, W]`` triplane features.
        coords: ``[B, N, 3]`` world points.
        box_warp: side length of the cube covered by the planes.
        mode: ``grid_sample`` interpolation mode.

    Returns:
        ``[B, 3, N, C]`` features per plane (a view, not necessarily contiguous).
    """
    if planes.ndim != 5 or planes.shape[1] != 3:
        raise ValueError(f"planes must have shape [B, 3, C, H, W], got {tuple(planes.shape)}")
    batch, n_planes, channels, height, width = planes.shape
    num_points = coords.shape[1]
    grid = project_onto_planes(coords * (2.0 / box_warp))  # [B, 3, N, 2]
    grid = grid.reshape(batch * n_planes, 1, num_points, 2).to(planes.dtype)
    sampled = F.grid_sample(
        planes.reshape(batch * n_planes, channels, height, width),
        grid,
        mode=mode,
        padding_mode="zeros",
        align_corners=False,
    )  # [B*3, C, 1, N]
    return sampled.reshape(batch, n_planes, channels, num_points).transpose(2, 3)


def sample_mean_from_planes(planes: Tensor, coords: Tensor, box_warp: float = 1.0, mode: str = "bilinear") -> Tensor:
    """The mean over the three planes of :func:`sample_from_planes`, ``[B, N, C]`` (contiguous).

    Same values as ``sample_from_planes(...).mean(dim=1)`` (what EG3D's decoder starts with), summed
    in the planes' memory layout before the transpose, which is several times faster on a CPU.
    """
    batch, n_planes, channels, height, width = planes.shape
    num_points = coords.shape[1]
    grid = project_onto_planes(coords * (2.0 / box_warp)).reshape(batch * n_planes, 1, num_points, 2).to(planes.dtype)
    sampled = F.grid_sample(planes.reshape(batch * n_planes, channels, height, width), grid, mode=mode,
                            padding_mode="zeros", align_corners=False)  # [B*3, C, 1, N]
    return sampled.reshape(batch, n_planes, channels, num_points).mean(dim=1).transpose(1, 2).contiguous()
