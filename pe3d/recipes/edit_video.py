"""``pe3d edit-video``: edit every frame of a portrait video, with temporal smoothing.

Each frame is prepared like a photo: face crop square and camera from
:func:`pe3d.faces.prepare_portrait` (a frame where no face is found keeps the previous frame's
crop and camera; such frames are counted in the report). :class:`pe3d.video.TemporalSmoother`
smooths the crop square and the camera before the frame is cropped and edited in one
feed-forward pass (with ``refine_steps``, plus the frame's detail residual of :mod:`pe3d.refinement`, each
fit started from the previous frame's), then the edited triplane; each smoothed triplane is rendered at

* ``camera: fixed`` — the frame's own (smoothed) camera: the edit follows the head; or
* ``camera: orbit`` — a chosen orbit: yaw swings ``±orbit_yaw_deg`` with a period of
  ``orbit_period_s`` seconds of video.

The report gives the flicker (:func:`pe3d.video.flicker`) of the input, of the written
output, and (``compare``) of the same edit without smoothing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

from pe3d.faces import FaceSelectionError, prepare_portrait
from pe3d.faces.align import FaceSquare, warp_square
from pe3d.geometry import label_from_yaw_pitch
from pe3d.images import center_square, load_image
from pe3d.pipeline import EditPipeline
from pe3d.refinement import MAX_STRENGTH, RefineConfig, ResidualRegion
from pe3d.video import FlickerMeter, SmoothingConfig, TemporalSmoother, VideoReader, flicker, write_video
from pe3d.errors import InvalidInput

CAMERA_MODES = ("fixed", "orbit")
"""Where the edited frames are rendered from (see the module docstring)."""
REFINE_REGIONS = ("first", "each")
"""Values of :attr:`VideoEditConfig.refine_region`."""
DETECTION_MAX_SIDE = 512
"""Frames are downscaled to this longer side before face detection and editing."""


@dataclass
class VideoEditConfig:
    """Settings of :func:`edit_video` (``pe3d edit-video`` flags)."""

    style: Optional[str] = None
    prompt: Optional[str] = None
    prompt_image: Optional[str] = None
    camera: str = "fixed"
    orbit_yaw_deg: float = 30.0
    orbit_period_s: float = 4.0
    strength: float = 1.0
    resolution: int = 64
    max_frames: Optional[int] = None
    face: str | int | None = "largest"
    weights: Optional[str] = None
    compare: bool = False
    smooth: SmoothingConfig = field(default_factory=SmoothingConfig)
    refine_steps: int = 0
    """Test-time refinement (:mod:`pe3d.refinement`) of each frame: the detail residual fitted to the frame's
    crop in this many steps, each frame's fit started from the previous frame's residual (0 = the one-pass
    edit of every frame)."""
    refine_first_steps: int = 200
    """The steps of the first frame's fit, which starts from zeros (at least ``refine_steps``)."""
    refine_region: str = "first"
    """Where each frame's residual may change the planes and what it keeps empty (the reconstruction's visual hull
    and empty space, :func:`pe3d.refinement.residual_region`): ``first``: made once, from the first frame's
    reconstruction, and kept (the crop follows the face, so the head stays put in the box); ``each``: made again
    from every frame's (a field decode on a 64³ grid a frame)."""
    refine_strength: Optional[float] = None
    """The multiple of each frame's residual added to its edit (:attr:`pe3d.refinement.RefineConfig.strength`);
    ``None``: the style's ``refine.strength`` (:func:`pe3d.recipes.edit.style_refine_strength`), else 1."""

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first bad field."""
        if self.style is None and self.prompt is None and self.prompt_image is None:
            raise InvalidInput("give --style NAME, --prompt TEXT or --prompt-image FILE")
        if self.camera not in CAMERA_MODES:
            raise InvalidInput(f"camera must be one of {list(CAMERA_MODES)}, got {self.camera!r}")
        if not 8 <= self.resolution <= 1024:
            raise InvalidInput(f"resolution must be in [8, 1024], got {self.resolution}")
        if self.max_frames is not None and self.max_frames < 1:
            raise InvalidInput(f"max_frames must be >= 1, got {self.max_frames}")
        if not 0.0 <= self.orbit_yaw_deg <= 90.0:
            raise InvalidInput(f"orbit_yaw_deg must be in [0, 90], got {self.orbit_yaw_deg}")
        if not self.orbit_period_s > 0:
            raise InvalidInput(f"orbit_period_s must be > 0, got {self.orbit_period_s}")
        if not 0.0 <= self.strength <= 1.0:
            raise InvalidInput(f"strength must be in [0, 1], got {self.strength}")
        if self.refine_steps < 0 or self.refine_first_steps < 0:
            raise InvalidInput(f"refine steps must be >= 0, got refine_steps={self.refine_steps}, "
                               f"refine_first_steps={self.refine_first_steps}")
        if self.refine_region not in REFINE_REGIONS:
            raise InvalidInput(f"refine_region must be one of {list(REFINE_REGIONS)}, got {self.refine_region!r}")
        if self.refine_strength is not None and not 0.0 <= self.refine_strength <= MAX_STRENGTH:
            raise InvalidInput(f"refine_strength must be in [0, {MAX_STRENGTH:g}], got {self.refine_strength}")


@dataclass
class VideoEditReport:
    """What :func:`edit_video` wrote and measured (flicker: mean |frame_t - frame_t-1| in [0, 1] units;
    ``flicker_input`` of the source frames, ``flicker_output`` of the written edit, ``flicker_unsmoothed``
    of the same edit without smoothing when ``compare`` was asked for)."""

    out: Path
    frames: int
    fps: float
    size: int
    flicker_input: float
    flicker_output: float
    flicker_unsmoothed: Optional[float]
    face_misses: int
    camera: str = "fixed"

    def lines(self) -> list[str]:
        """Human-readable summary (printed by the CLI)."""
        out = [
            f"wrote {self.out} ({self.frames} frames, {self.size}x{self.size}, {self.fps:g} fps)",
            f"flicker (mean |frame_t - frame_t-1|): input {self.flicker_input:.4f}, output {self.flicker_output:.4f}",
        ]
        if self.flicker_unsmoothed is not None:
            out.append(f"flicker without smoothing: {self.flicker_unsmoothed:.4f}")
        if self.camera == "orbit":
            out.append("(the orbit moves the camera, so the output's frame-to-frame difference includes that motion)")
        if self.face_misses:
            out.append(f"no face found in {self.face_misses} of {self.frames} frames: they keep the previous frame's crop and camera")
        return out


@dataclass
class FrameFace:
    """Where the face of one frame is: its crop square (``None``: no face seen yet) and camera ``[25]``."""

    square: Optional[FaceSquare]
    camera: Tensor
    found: bool


class FaceTracker:
    """Per-frame face crop and camera (:func:`pe3d.faces.prepare_portrait`); a frame without a
    detectable face keeps the previous frame's crop and camera (counted in ``misses``)."""

    def __init__(self, size: int, face: str | int | None, framing: str = "world") -> None:
        self.size = size
        self.face = face
        self.framing = framing
        self.misses = 0
        self.previous = FrameFace(None, label_from_yaw_pitch(0.0, 0.0)[0], found=False)

    def __call__(self, frame: Tensor, index: int) -> FrameFace:
        """The face of ``frame [3, H, W]``."""
        try:
            prepared = prepare_portrait(frame, self.size, face=self.face, source=f"frame {index}", framing=self.framing)
        except FaceSelectionError:
            self.misses += 1
            return FrameFace(self.previous.square, self.previous.camera, found=False)
        self.previous = FrameFace(prepared.aligned.square, prepared.camera.reshape(25).float(), found=True)
        return self.previous

    def crop(self, frame: Tensor, square: Optional[FaceSquare]) -> Tensor:
        """Square model input: the face square's ``[3, size, size]`` crop, or the centre square (any
        size; the pipeline resizes it) before any face was seen."""
        return center_square(frame) if square is None else warp_square(frame, square, self.size)


def square_vector(square: Optional[FaceSquare]) -> Optional[Tensor]:
    """``[6]`` centre, right and down vectors of a crop square (what the smoother averages)."""
    if square is None:
        return None
    return torch.from_numpy(np.concatenate([square.centre, square.right, square.down])).double()


def vector_square(vector: Optional[Tensor]) -> Optional[FaceSquare]:
    """Inverse of :func:`square_vector`."""
    if vector is None:
        return None
    values = vector.numpy()
    return FaceSquare(values[0:2], values[2:4], values[4:6])


def orbit_camera(time_s: float, yaw_deg: float, period_s: float) -> Tensor:
    """``[25]`` orbit camera at ``time_s`` seconds: yaw ``yaw_deg * sin(2π time_s / period_s)``, pitch 0."""
    yaw = math.radians(yaw_deg) * math.sin(2 * math.pi * time_s / period_s)
    return label_from_yaw_pitch(yaw, 0.0)[0]


def write_static_clip(path: str | Path, frames: int = 48, resolution: int = 128, noise: float = 0.04, jitter_px: int = 1,
                      fps: float = 12.0, seed: int = 0) -> Path:
    """A static test shot for the flicker measure: one held-out world head at one camera, every frame
    with its own sensor noise (std ``noise``) and up to ``jitter_px`` pixels of framing jitter (as from
    a face tracker) — the causes of per-frame-edit flicker. Written as an MP4 at ``path``."""
    from pe3d.world import WorldSplit, render_identity, sample_identity

    split = WorldSplit()
    identity = sample_identity(split.seed, int(split.indices("heldout", 1, 3)[0]))
    frame = render_identity(identity, label_from_yaw_pitch(0.2, 0.05), resolution=resolution).rgb[0]
    rng = torch.Generator().manual_seed(seed)
    shifts = torch.randint(-jitter_px, jitter_px + 1, (frames, 2), generator=rng).tolist()
    clip = torch.stack([frame.roll(tuple(shift), dims=(1, 2)) for shift in shifts])
    clip = (clip + noise * torch.randn(clip.shape, generator=rng)).clamp(0, 1)
    return write_video(path, clip, fps=fps)


def _prompt_of(pipe: EditPipeline, cfg: VideoEditConfig) -> tuple[Optional[str], Optional[Tensor]]:
    from pe3d.recipes.edit import _style_needs_reference, resolve_style_prompts

    prompt, prompt_image = cfg.prompt, cfg.prompt_image
    if cfg.style is not None:
        text, style_reference = resolve_style_prompts(pipe, cfg.style)
        prompt = prompt or text
        prompt_image = prompt_image if prompt_image is not None else style_reference
        if prompt is None and prompt_image is None:
            raise _style_needs_reference(cfg.style)
    reference = center_square(load_image(prompt_image)) if prompt_image is not None else None
    return prompt, reference


def _render(pipe: EditPipeline, planes: Tensor, camera: Tensor, resolution: int) -> Tensor:
    """``[3, R, R]`` render of ``planes [1, 3, C, Rt, Rt]`` at ``camera [1, 25]``."""
    rendered = pipe.render(planes, camera, resolution=resolution)
    picture = rendered.image_sr if rendered.image_sr is not None else rendered.image  # super-resolved when the model has SR
    return picture[0].clamp(0, 1).cpu()


def refined_residual(pipe: EditPipeline, image: Tensor, camera: Tensor, cfg: VideoEditConfig,
                     previous: Optional[Tensor], region: Optional[ResidualRegion] = None) -> Tensor:
    """The detail residual of one frame's crop ``image [3, S, S]`` at its camera ``[1, 25]``: fitted from
    ``previous`` (the last frame's) in ``cfg.refine_steps`` steps, or from zeros in ``cfg.refine_first_steps``
    (at least ``refine_steps``) for the first frame; kept to ``region`` (:meth:`EditPipeline.residual_region`),
    or to this frame's own when ``None``."""
    steps = cfg.refine_steps if previous is not None else max(cfg.refine_steps, cfg.refine_first_steps)
    return pipe.detail_residual(image, camera, RefineConfig(steps=steps), cfg.resolution, initial=previous, region=region)


def edit_video(src: str | Path, out: str | Path, cfg: VideoEditConfig, pipe: Optional[EditPipeline] = None) -> VideoEditReport:
    """Edit ``src`` frame by frame into the MP4 ``out`` (see the module docstring)."""
    cfg.validate()
    with VideoReader(src, cfg.max_frames, DETECTION_MAX_SIDE) as reader:
        pipe = pipe or EditPipeline.from_pretrained(cfg.weights)
        prompt, reference = _prompt_of(pipe, cfg)
        if cfg.refine_strength is not None:
            refine_strength = cfg.refine_strength
        else:
            from pe3d.recipes.edit import style_refine_strength

            refine_strength = style_refine_strength(cfg.style)
        tracker = FaceTracker(pipe.editor.cfg.prior.encoder.image_size, cfg.face, framing=pipe.framing)
        smoother = TemporalSmoother(cfg.smooth)

        def edited_view(image: Tensor, view: Tensor, smooth: bool, residual: Optional[Tensor]) -> Tensor:
            planes = pipe.edit_triplane(image, prompt=prompt, prompt_image=reference, strength=cfg.strength)
            planes = planes if residual is None else planes + refine_strength * residual
            planes = smoother.triplane(planes) if smooth else planes
            return _render(pipe, planes, view, cfg.resolution)

        outputs, input_flicker, unsmoothed_flicker = [], FlickerMeter(), FlickerMeter()
        residual, region = None, None
        fps = reader.fps
        total = min(filter(None, (cfg.max_frames, reader.expected_frames)), default=None)
        for index, frame in enumerate(tqdm(reader, total=total, desc="edit-video", unit="frame")):
            face = tracker(frame, index)
            square = vector_square(smoother.crop(square_vector(face.square)))
            camera = smoother.camera(face.camera[None])[0]
            orbit = orbit_camera(index / fps, cfg.orbit_yaw_deg, cfg.orbit_period_s)[None]
            input_flicker.update(frame)
            image = tracker.crop(frame, square)
            if cfg.refine_steps:
                if region is None and cfg.refine_region == "first":
                    region = pipe.residual_region(image, RefineConfig(steps=cfg.refine_steps))
                residual = refined_residual(pipe, image, camera[None], cfg, residual, region)
            outputs.append(edited_view(image, camera[None] if cfg.camera == "fixed" else orbit, True, residual))
            if cfg.compare:  # the same residual: the comparison is about the smoothing
                view = face.camera[None] if cfg.camera == "fixed" else orbit
                unsmoothed_flicker.update(edited_view(tracker.crop(frame, face.square), view, False, residual))
    if not outputs:
        raise InvalidInput(f"{src}: the video has no frames")
    frames = torch.stack(outputs)
    path = write_video(out, frames, fps)
    return VideoEditReport(
        out=path,
        frames=len(outputs),
        fps=fps,
        size=frames.shape[-1],
        flicker_input=input_flicker.value,
        flicker_output=flicker(frames),
        flicker_unsmoothed=unsmoothed_flicker.value if cfg.compare else None,
        face_misses=tracker.misses,
        camera=cfg.camera,
    )
