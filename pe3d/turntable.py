"""Turntable GIF / MP4 and depth images of an edit (used by ``pe3d demo`` and ``pe3d edit``)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from pe3d.geometry import label_from_yaw_pitch
from pe3d.images import quantize_uint8
from pe3d.io import atomic_write


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
    return quantize_uint8(image).permute(1, 2, 0).cpu().numpy()


def turntable_frames(source: Tensor, views: Tensor, depths: Tensor) -> list[np.ndarray]:
    """``[H, W, 3]`` uint8 frames ``source | view | depth`` (``source [3,R',R']`` resized to the views' ``R``)."""
    size = views.shape[-1]
    source = torch.nn.functional.interpolate(source[None].float(), size=(size, size), mode="area")[0]
    return [to_uint8(torch.cat([source, views[i], depth_to_gray(depths[i])], dim=-1)) for i in range(views.shape[0])]


def write_turntable_gif(source: Tensor, views: Tensor, depths: Tensor, path: str | Path, duration: float = 0.08) -> Path:
    """GIF whose frames are ``source | view | depth`` (``source [3,R,R]``, ``views [N,3,R,R]``, ``depths [N,1,R,R]``), ping-pong."""
    import imageio.v2 as imageio

    frames = turntable_frames(source, views, depths)
    return atomic_write(path, lambda tmp: imageio.mimsave(tmp, frames + frames[::-1], format="GIF", duration=duration, loop=0))


MP4_MIN_HEIGHT = 256
"""MP4 frames are enlarged (bilinear) to at least this height; players blur or refuse tiny videos."""


def write_turntable_mp4(source: Tensor, views: Tensor, depths: Tensor, path: str | Path, fps: int = 12) -> Path:
    """H.264 MP4 of the same ``source | view | depth`` frames, one sweep (``N`` frames), via imageio-ffmpeg."""
    import imageio_ffmpeg

    frames = turntable_frames(source, views, depths)
    height, width = frames[0].shape[:2]
    scale = max(1, -(-MP4_MIN_HEIGHT // height))
    size = (_even16(height * scale), _even16(width * scale))
    enlarged = [
        to_uint8(torch.nn.functional.interpolate(torch.from_numpy(f).permute(2, 0, 1)[None].float() / 255, size=size, mode="bilinear", align_corners=False)[0])
        for f in frames
    ]

    def write(tmp: Path) -> None:
        writer = imageio_ffmpeg.write_frames(str(tmp), (size[1], size[0]), fps=fps, codec="libx264", pix_fmt_out="yuv420p",
                                             macro_block_size=16, output_params=["-f", "mp4"])
        writer.send(None)  # start ffmpeg
        try:
            for frame in enlarged:
                writer.send(np.ascontiguousarray(frame))
        finally:
            writer.close()

    return atomic_write(path, write)


def _even16(value: int) -> int:
    return max(16, int(round(value / 16)) * 16)


def write_depth_pngs(depths: Tensor, folder: str | Path, prefix: str = "view") -> list[Path]:
    """One gray PNG per depth map ``[N, 1, R, R]`` (near = bright), ``<prefix>_000.png`` ..., written atomically."""
    from PIL import Image

    paths = []
    for i in range(depths.shape[0]):
        image = Image.fromarray(to_uint8(depth_to_gray(depths[i])))
        paths.append(atomic_write(Path(folder) / f"{prefix}_{i:03d}.png", lambda tmp, im=image: im.save(tmp, format="PNG")))
    return paths
