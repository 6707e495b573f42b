"""Video in and out, temporal smoothing of per-frame edits, and a flicker measure.

* :class:`VideoReader` (streaming), :func:`read_video` / :func:`write_video`: frames as
  ``[3, H, W]`` / ``[T, 3, H, W]`` float tensors in [0, 1]
  through ``imageio-ffmpeg`` (the ffmpeg binary ships inside that pip package); MP4 files
  are written atomically (temp file + rename, :func:`pe3d.io.atomic_write`).
* :class:`TemporalSmoother`: an adaptive exponential moving average (a one-euro-style
  filter) over the edited triplanes and the per-frame cameras. Per-frame feed-forward
  editing flickers because each frame is encoded independently (the paper names this as
  its limitation); averaging in triplane space removes the jitter while the adaptive term
  follows real changes with little lag.
* :func:`flicker`: mean absolute frame-to-frame difference (on a static clip every
  difference is flicker).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from pe3d.geometry import FFHQ_LOOKAT, cam2world_from_yaw_pitch, camera_label, split_label, yaw_pitch_from_cam2world
from pe3d.errors import InvalidInput
from pe3d.images import quantize_uint8
from pe3d.io import atomic_write

MAX_VIDEO_PIXELS = 4096 * 4096
"""Largest accepted frame size (pixels) of an input video."""


class VideoLoadError(InvalidInput):
    """A video file cannot be used; the message names the file and the problem."""


@dataclass
class VideoClip:
    """Decoded frames ``[T, 3, H, W]`` (float in [0, 1]) and the frame rate."""

    frames: Tensor
    fps: float


def _ffmpeg_error(error: Exception) -> str:
    """The informative line of an imageio-ffmpeg error (ffmpeg's stderr is long)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    useful = [line for line in lines if "rror" in line and not line.startswith("=")]
    return (useful or lines or [type(error).__name__])[-1]


class VideoReader:
    """Frames of a video file, decoded one at a time (a context manager and an iterator).

    ``fps`` and ``size`` (width, height) are known after opening; iterating yields
    ``[3, H, W]`` float frames in [0, 1], downscaled so the longer side is at most
    ``max_side`` (``None``: original size), and stops after ``max_frames``.
    ``expected_frames`` is the container's estimate (duration x fps), ``None`` when unknown.
    """

    def __init__(self, path: str | Path, max_frames: Optional[int] = None, max_side: Optional[int] = None) -> None:
        import imageio_ffmpeg

        self.path = Path(path)
        if not self.path.is_file():
            raise VideoLoadError(f"{self.path}: file not found")
        if max_frames is not None and max_frames < 1:
            raise InvalidInput(f"max_frames must be >= 1, got {max_frames}")
        self.max_frames = max_frames
        self.max_side = max_side
        self._reader = imageio_ffmpeg.read_frames(str(self.path))
        try:
            meta = next(self._reader)
        except (OSError, RuntimeError, StopIteration) as error:
            self.close()
            raise VideoLoadError(f"{self.path}: not a readable video ({_ffmpeg_error(error)})") from None
        self.size: tuple[int, int] = tuple(meta["size"])
        if self.size[0] * self.size[1] > MAX_VIDEO_PIXELS:
            self.close()
            raise VideoLoadError(f"{self.path}: {self.size[0]}x{self.size[1]} frames exceed the {MAX_VIDEO_PIXELS:,}-pixel limit")
        fps = float(meta.get("fps") or 0.0)
        self.fps = fps if math.isfinite(fps) and fps > 0 else 25.0
        duration = float(meta.get("duration") or 0.0)
        self.expected_frames: Optional[int] = round(duration * self.fps) if duration > 0 else None

    def __iter__(self) -> Iterator[Tensor]:
        width, height = self.size
        count = 0
        try:
            for raw in self._reader:
                frame = torch.from_numpy(np.frombuffer(raw, dtype=np.uint8).reshape(height, width, 3).copy())
                frame = frame.permute(2, 0, 1).float() / 255.0
                if self.max_side is not None and max(width, height) > self.max_side:
                    scale = self.max_side / max(width, height)
                    target = (max(1, round(height * scale)), max(1, round(width * scale)))
                    frame = F.interpolate(frame[None], size=target, mode="area")[0]
                yield frame
                count += 1
                if self.max_frames is not None and count >= self.max_frames:
                    return
        except (OSError, RuntimeError) as error:
            raise VideoLoadError(f"{self.path}: cannot decode frame {count} ({_ffmpeg_error(error)})") from None

    def close(self) -> None:
        """Stop ffmpeg."""
        self._reader.close()

    def __enter__(self) -> "VideoReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_video(path: str | Path, max_frames: Optional[int] = None, max_side: Optional[int] = None) -> VideoClip:
    """All frames of ``path`` (at most ``max_frames``) in memory; :class:`VideoLoadError` on bad files."""
    with VideoReader(path, max_frames, max_side) as reader:
        frames = list(reader)
    if not frames:
        raise VideoLoadError(f"{path}: the video has no frames")
    return VideoClip(torch.stack(frames), reader.fps)


def write_video(path: str | Path, frames: Tensor, fps: float, quality: float = 8.0) -> Path:
    """Write ``frames [T, 3, H, W]`` (in [0, 1]) as an H.264 MP4, atomically; returns ``path``.

    H.264 in yuv420p needs even sides: an odd side is scaled up by one pixel by ffmpeg.
    """
    import imageio_ffmpeg

    if frames.ndim != 4 or frames.shape[1] != 3 or frames.shape[0] == 0:
        raise ValueError(f"frames must be [T, 3, H, W] with T >= 1, got {list(frames.shape)}")
    array = quantize_uint8(frames).permute(0, 2, 3, 1).cpu().numpy()
    height, width = array.shape[1:3]

    def encode(tmp: Path) -> None:
        writer = imageio_ffmpeg.write_frames(
            str(tmp), (width, height), fps=float(fps), codec="libx264", quality=quality,
            macro_block_size=2, output_params=["-f", "mp4"], ffmpeg_log_level="error",
        )
        writer.send(None)
        for frame in array:
            writer.send(np.ascontiguousarray(frame))
        writer.close()

    return atomic_write(path, encode)


def flicker(frames: Tensor) -> float:
    """Mean absolute difference between consecutive frames of ``[T, C, H, W]`` (0 for ``T < 2``)."""
    if frames.ndim != 4:
        raise ValueError(f"frames must be [T, C, H, W], got {list(frames.shape)}")
    if frames.shape[0] < 2:
        return 0.0
    return float((frames[1:].float() - frames[:-1].float()).abs().mean())


class FlickerMeter:
    """:func:`flicker` of a stream of frames, one frame at a time (nothing but the last frame kept)."""

    def __init__(self) -> None:
        self._previous: Optional[Tensor] = None
        self._total = 0.0
        self._count = 0

    def update(self, frame: Tensor) -> None:
        """Add the next ``[C, H, W]`` frame."""
        frame = frame.detach().float()
        if self._previous is not None:
            self._total += float((frame - self._previous).abs().mean())
            self._count += 1
        self._previous = frame

    @property
    def value(self) -> float:
        """Mean absolute frame-to-frame difference so far (0 before two frames)."""
        return self._total / self._count if self._count else 0.0


@dataclass
class SmoothingConfig:
    """Temporal smoothing of per-frame edits.

    ``strength`` in [0, 1): the weight of the past at rest (0 = off; 0.7 averages over about
    ``(1 + s) / (1 - s)`` ≈ 6 frames). ``adaptive`` >= 0: one-euro-style speed-up; the
    history weight becomes ``strength * exp(-adaptive * change)`` where ``change`` is the
    relative mean change of the signal since the last output, so real motion is followed
    with little lag while small jitter is averaged out (0 = a plain exponential average).
    ``cameras``: also smooth the per-frame cameras (yaw, pitch, radius, intrinsics) and face crops.
    """

    strength: float = 0.7
    adaptive: float = 0.0
    cameras: bool = True

    def __post_init__(self) -> None:
        if not 0.0 <= self.strength < 1.0:
            raise InvalidInput(f"smoothing strength must be in [0, 1), got {self.strength}")
        if self.adaptive < 0:
            raise InvalidInput(f"smoothing adaptive must be >= 0, got {self.adaptive}")


class AdaptiveEMA:
    """``y_t = a_t x_t + (1 - a_t) y_{t-1}`` with ``1 - a_t = strength * exp(-adaptive * change_t)``."""

    def __init__(self, strength: float, adaptive: float = 0.0) -> None:
        self.strength = strength
        self.adaptive = adaptive
        self.state: Optional[Tensor] = None

    def reset(self) -> None:
        """Forget the history (the next value passes through unchanged)."""
        self.state = None

    def __call__(self, value: Tensor) -> Tensor:
        """The filtered value of ``value`` (same shape)."""
        if self.state is None or self.strength == 0.0:
            self.state = value.detach().clone()
            return value
        keep = self.strength
        if self.adaptive > 0:
            change = (value - self.state).abs().mean() / self.state.abs().mean().clamp_min(1e-8)
            keep = keep * math.exp(-self.adaptive * float(change))
        self.state = torch.lerp(value.detach(), self.state, keep)
        return self.state.clone()


def camera_parameters(label: Tensor) -> Tensor:
    """``[B, 25]`` EG3D labels -> ``[B, 12]``: yaw, pitch, orbit radius and the 9 intrinsics.

    These are the quantities that vary smoothly with head motion; smoothing them (rather than
    the 16 matrix entries) keeps every smoothed camera a valid look-at camera.
    """
    cam2world, intrinsics = split_label(label)
    yaw, pitch = yaw_pitch_from_cam2world(cam2world)
    radius = cam2world[:, :3, 3].norm(dim=-1)
    return torch.cat([torch.stack([yaw, pitch, radius], dim=-1), intrinsics.reshape(-1, 9)], dim=-1)


def camera_from_parameters(params: Tensor) -> Tensor:
    """Inverse of :func:`camera_parameters` (cameras look at the FFHQ look-at point)."""
    labels = []
    for row in params:
        cam2world = cam2world_from_yaw_pitch(row[0], row[1], radius=float(row[2]), lookat=FFHQ_LOOKAT)
        labels.append(camera_label(cam2world, row[3:].reshape(3, 3)))
    return torch.cat(labels)


class TemporalSmoother:
    """Smooths a video's per-frame signals, one frame at a time: the face crop (so the model input
    does not jitter with the landmarks), the camera, and the edited triplane."""

    def __init__(self, cfg: SmoothingConfig) -> None:
        self.cfg = cfg
        self._triplane = AdaptiveEMA(cfg.strength, cfg.adaptive)
        self._camera = AdaptiveEMA(cfg.strength if cfg.cameras else 0.0, cfg.adaptive)
        self._crop = AdaptiveEMA(cfg.strength if cfg.cameras else 0.0, cfg.adaptive)

    def reset(self) -> None:
        """Start a new clip."""
        for signal in (self._triplane, self._camera, self._crop):
            signal.reset()

    def crop(self, values: Optional[Tensor]) -> Optional[Tensor]:
        """Smoothed parameters of this frame's face crop (``None``, no crop yet, passes through)."""
        return None if values is None else self._crop(values)

    def triplane(self, planes: Tensor) -> Tensor:
        """Smoothed ``[B, 3, C, R, R]`` triplane of this frame."""
        return self._triplane(planes)

    def camera(self, label: Tensor) -> Tensor:
        """Smoothed ``[B, 25]`` camera of this frame."""
        if self._camera.strength == 0.0:
            return label
        return camera_from_parameters(self._camera(camera_parameters(label)))
