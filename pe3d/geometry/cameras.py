"""Cameras in the EG3D convention.

A camera is a 25-d *label*: the flattened 4x4 ``cam2world`` matrix (16 values)
followed by the flattened 3x3 *normalized* intrinsics (9 values), exactly the
layout EG3D's ``dataset.json`` and generator use.

Conventions (as in NVlabs/eg3d ``camera_utils.py``):

* World: ``+y`` is up, the face looks towards ``+z``; the head sits near the origin.
* Camera frame is OpenCV-like: ``+x`` right, ``+y`` down, ``+z`` forward (viewing
  direction). ``cam2world[:, :3, :3]`` holds the columns (right, down, forward).
* Intrinsics are normalized by the image size: ``fx = fy = focal``, ``cx = cy = 0.5``.
  EG3D turns a field of view into a focal length with a ``sqrt(2)`` (diagonal)
  factor; we keep that so FFHQ labels match (fov 18.837 deg -> focal 4.2647).
* FFHQ orbit: camera origins on a sphere of radius 2.7 around the *world origin*,
  looking at ``(0, 0, 0.2)``.

Angles: ``yaw`` and ``pitch`` are in radians, ``(0, 0)`` is the frontal view.
Positive yaw moves the camera towards ``+x``; positive pitch moves it up
(towards ``+y``). The camera origin is
``radius * (cos(pitch) sin(yaw), sin(pitch), cos(pitch) cos(yaw))``.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import Tensor

FFHQ_RADIUS: float = 2.7
"""Orbit radius of the FFHQ cameras (world units)."""
FFHQ_LOOKAT: tuple[float, float, float] = (0.0, 0.0, 0.2)
"""Point the FFHQ cameras look at."""
FFHQ_FOV_DEG: float = 18.837
"""Field of view of the FFHQ cameras in degrees (EG3D's diagonal convention)."""


def intrinsics_from_fov(fov_deg: float = FFHQ_FOV_DEG) -> Tensor:
    """Normalized 3x3 intrinsics for a field of view, EG3D's ``FOV_to_intrinsics``.

    Returns:
        Tensor ``[3, 3]`` with ``focal = 1 / (tan(fov / 2) * sqrt(2))`` and principal point 0.5.
    """
    if not 0.0 < fov_deg < 180.0:
        raise ValueError(f"fov_deg must be in (0, 180), got {fov_deg}")
    focal = 1.0 / (math.tan(math.radians(fov_deg) / 2.0) * 1.414)
    return torch.tensor([[focal, 0.0, 0.5], [0.0, focal, 0.5], [0.0, 0.0, 1.0]], dtype=torch.float32)


def default_intrinsics() -> Tensor:
    """The FFHQ intrinsics ``[3, 3]`` (fov 18.837 deg)."""
    return intrinsics_from_fov(FFHQ_FOV_DEG)


def look_at_cam2world(origin: Tensor, target: Tensor) -> Tensor:
    """Camera-to-world matrices looking from ``origin`` at ``target`` (EG3D ``create_cam2world_matrix``).

    Args:
        origin: ``[B, 3]`` camera centres.
        target: ``[B, 3]`` or ``[3]`` points looked at.

    Returns:
        ``[B, 4, 4]`` cam2world with columns (right, down, forward, origin); world up is ``+y``.
    """
    origin = torch.as_tensor(origin, dtype=torch.float32)
    target = torch.as_tensor(target, dtype=origin.dtype, device=origin.device).expand_as(origin)
    forward = torch.nn.functional.normalize(target - origin, dim=-1)
    world_up = torch.tensor([0.0, 1.0, 0.0], dtype=origin.dtype, device=origin.device).expand_as(forward)
    right = -torch.nn.functional.normalize(torch.cross(world_up, forward, dim=-1), dim=-1)
    down = torch.nn.functional.normalize(torch.cross(forward, right, dim=-1), dim=-1)
    cam2world = torch.eye(4, dtype=origin.dtype, device=origin.device).repeat(origin.shape[0], 1, 1)
    cam2world[:, :3, :3] = torch.stack((right, down, forward), dim=-1)
    cam2world[:, :3, 3] = origin
    return cam2world


def _as_batch(value: Tensor | float | Sequence[float]) -> Tensor:
    return torch.as_tensor(value, dtype=torch.float32).reshape(-1)


def cam2world_from_yaw_pitch(
    yaw: Tensor | float | Sequence[float],
    pitch: Tensor | float | Sequence[float] = 0.0,
    radius: float = FFHQ_RADIUS,
    lookat: Sequence[float] = FFHQ_LOOKAT,
) -> Tensor:
    """Cameras on the orbit sphere (around the world origin) looking at ``lookat``.

    Args:
        yaw: scalar or ``[B]`` radians, 0 = frontal, positive towards ``+x``.
        pitch: scalar or ``[B]`` radians, positive = camera above the face.
        radius: orbit radius.
        lookat: ``[3]`` target point.

    Returns:
        ``[B, 4, 4]`` cam2world matrices (``B`` = broadcast length of yaw and pitch).
    """
    yaw_t, pitch_t = torch.broadcast_tensors(_as_batch(yaw), _as_batch(pitch))
    origin = radius * torch.stack(
        (torch.cos(pitch_t) * torch.sin(yaw_t), torch.sin(pitch_t), torch.cos(pitch_t) * torch.cos(yaw_t)), dim=-1
    )
    return look_at_cam2world(origin, torch.tensor(lookat, dtype=torch.float32))


def yaw_pitch_from_cam2world(cam2world: Tensor) -> tuple[Tensor, Tensor]:
    """Invert :func:`cam2world_from_yaw_pitch` from the camera origin.

    Args:
        cam2world: ``[B, 4, 4]``.

    Returns:
        ``(yaw [B], pitch [B])`` in radians.
    """
    origin = cam2world[:, :3, 3]
    radius = origin.norm(dim=-1).clamp_min(1e-8)
    pitch = torch.asin((origin[:, 1] / radius).clamp(-1.0, 1.0))
    yaw = torch.atan2(origin[:, 0], origin[:, 2])
    return yaw, pitch


def camera_label(cam2world: Tensor, intrinsics: Tensor | None = None) -> Tensor:
    """Pack cameras into 25-d EG3D labels.

    Args:
        cam2world: ``[B, 4, 4]``.
        intrinsics: ``[3, 3]`` or ``[B, 3, 3]`` normalized intrinsics (FFHQ default when ``None``).

    Returns:
        ``[B, 25]`` labels.
    """
    if intrinsics is None:
        intrinsics = default_intrinsics()
    intrinsics = intrinsics.to(cam2world).expand(cam2world.shape[0], 3, 3)
    return torch.cat((cam2world.reshape(-1, 16), intrinsics.reshape(-1, 9)), dim=-1)


def split_label(label: Tensor) -> tuple[Tensor, Tensor]:
    """Unpack ``[B, 25]`` labels into ``(cam2world [B, 4, 4], intrinsics [B, 3, 3])``."""
    if label.ndim != 2 or label.shape[-1] != 25:
        raise ValueError(f"camera labels must have shape [B, 25], got {tuple(label.shape)}")
    return label[:, :16].reshape(-1, 4, 4), label[:, 16:].reshape(-1, 3, 3)


def mirror_camera_labels(label: Tensor) -> Tensor:
    """Labels ``[B, 25]`` of the cameras that see the left/right mirror image: the scene mirrored in the
    world's ``x = 0`` plane seen by these cameras renders as their images flipped horizontally.

    The camera is mirrored with the world (``diag(-1, 1, 1, 1) @ cam2world @ diag(-1, 1, 1, 1)``, EG3D's
    ``flip_yaw``: yaw negated, pitch kept) and its principal point with the image (``cx -> 1 - cx``,
    skew negated; normalized intrinsics)."""
    cam2world, intrinsics = split_label(label)
    flip = torch.tensor([-1.0, 1.0, 1.0, 1.0], dtype=label.dtype, device=label.device)
    cam2world = cam2world * flip[:, None] * flip[None, :]
    intrinsics = intrinsics.clone()
    intrinsics[:, 0, 2] = intrinsics[:, 2, 2] - intrinsics[:, 0, 2]
    intrinsics[:, 0, 1] = -intrinsics[:, 0, 1]
    return torch.cat((cam2world.reshape(-1, 16), intrinsics.reshape(-1, 9)), dim=-1)


def label_from_yaw_pitch(
    yaw: Tensor | float | Sequence[float],
    pitch: Tensor | float | Sequence[float] = 0.0,
    radius: float = FFHQ_RADIUS,
    lookat: Sequence[float] = FFHQ_LOOKAT,
    fov_deg: float = FFHQ_FOV_DEG,
) -> Tensor:
    """``[B, 25]`` labels for yaw/pitch angles (radians) on the FFHQ orbit."""
    return camera_label(cam2world_from_yaw_pitch(yaw, pitch, radius, lookat), intrinsics_from_fov(fov_deg))


def sample_camera_labels(
    batch_size: int,
    yaw_std: float = 0.3,
    pitch_std: float = 0.15,
    yaw_limit: float = 0.8,
    pitch_limit: float = 0.4,
    generator: torch.Generator | None = None,
    radius: float = FFHQ_RADIUS,
    lookat: Sequence[float] = FFHQ_LOOKAT,
    fov_deg: float = FFHQ_FOV_DEG,
) -> Tensor:
    """Sample training poses: Gaussian yaw/pitch around frontal, clamped to limits.

    Returns:
        ``[batch_size, 25]`` labels.
    """
    yaw = (torch.randn(batch_size, generator=generator) * yaw_std).clamp(-yaw_limit, yaw_limit)
    pitch = (torch.randn(batch_size, generator=generator) * pitch_std).clamp(-pitch_limit, pitch_limit)
    return label_from_yaw_pitch(yaw, pitch, radius, lookat, fov_deg)
