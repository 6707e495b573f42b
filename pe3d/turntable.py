"""Turntable GIFs and depth images of an edit (used by ``pe3d demo`` and ``pe3d edit``)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from pe3d.geometry import label_from_yaw_pitch


def turntable_cameras(frames: int = 24, max_yaw_deg: float = 45.0) -> Tensor:
    """``[frames, 25]`` cameras sweeping yaw from ``-max_yaw_deg`` to ``+max_yaw_deg``."""
    yaws = [math.radians(-max_yaw_deg + 2 * max_yaw_deg * i / max(1, frames - 1)) for i in range(frames)]
    return label_from_yaw_pitch(yaws, [0.0] * frames)


def depth_to_gray(depth: Tensor, near: float = 2.3, far: float = 3.1) -> Tensor:
    """``[..., 1, H, W]`` ray depth -> ``[..., 3, H, W]`` gray image, near = bright."""
    gray = 1 - (depth.clamp(near, far) - near) / (far - near)
    return gray.expand(*depth.shape[:-3], 3, *depth.shape[-2:])


def to_uint8(image: Tensor) -> np.ndarray:
    """``[3, H, W]`` in [0,1] -> ``[H, W, 3]`` uint8."""
    return (image.detach().float().clamp(0, 1).permute(1, 2, 0).cpu().numpy() * 255).round().astype(np.uint8)


def write_turntable_gif(source: Tensor, views: Tensor, depths: Tensor, path: str | Path, duration: float = 0.08) -> Path:
    """GIF whose frames are ``source | view | depth`` (``source [3,R,R]``, ``views [N,3,R,R]``, ``depths [N,1,R,R]``), ping-pong."""
    import imageio.v2 as imageio

    size = views.shape[-1]
    source = torch.nn.functional.interpolate(source[None].float(), size=(size, size), mode="area")[0]
    frames = [to_uint8(torch.cat([source, views[i], depth_to_gray(depths[i])], dim=-1)) for i in range(views.shape[0])]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    imageio.mimsave(path, frames + frames[::-1], duration=duration, loop=0)
    return path
