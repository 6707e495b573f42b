"""One call from a photo to the model's input: detect, choose, align, estimate the camera."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch.nn.functional as F
from torch import Tensor

from pe3d.faces.align import AlignedFace, align_face, warp_square
from pe3d.faces.camera import CameraEstimate, estimate_camera
from pe3d.faces.detect import Face, choose_face, detect_faces
from pe3d.geometry import yaw_pitch_from_cam2world
from pe3d.errors import InvalidInput


@dataclass(frozen=True)
class PreparedPortrait:
    """A photo made ready for :class:`~pe3d.pipeline.EditPipeline`.

    Attributes:
        image: ``[3, size, size]`` aligned crop in [0, 1], framed like the world's frontal renders.
        camera: ``[25]`` EG3D label of the estimated camera (pass as ``input_camera``).
        face: the chosen face, in the original image's pixel coordinates.
        yaw_deg, pitch_deg: the camera angles the label uses (clamped to the training range).
        aligned: the crop with its transform (``to_aligned`` / ``to_original``).
        estimate: the full camera estimate (unclamped angles, roll, reprojection error).
    """

    image: Tensor
    camera: Tensor
    face: Face
    yaw_deg: float
    pitch_deg: float
    aligned: AlignedFace
    estimate: CameraEstimate


def prepare_portrait(image: Tensor, size: int, face: str | int | None = None, source: str = "image",
                     framing: str = "world") -> PreparedPortrait:
    """Detect the face in ``image [3, H, W]`` (float, [0, 1]), align it to ``size``² and estimate its camera.

    Args:
        image: the photo.
        size: side of the aligned crop in pixels.
        face: ``None`` (exactly one face required), ``"largest"``, or an index (largest first).
        source: name used in error messages (e.g. the file path).
        framing: ``"world"`` (pe3d's models) or ``"eg3d"`` (EG3D's FFHQ crop, for models trained on
            it; :attr:`pe3d.pipeline.EditPipeline.framing` picks it from the model).

    Raises:
        FaceSelectionError: no face, several faces and no choice, or a bad choice; the message
            names ``source``, the count and the ``--face`` option.
    """
    chosen = choose_face(detect_faces(image), face, source)
    aligned = align_face(image, chosen.landmarks, size, framing=framing)
    landmarks = (aligned.to_aligned(chosen.landmarks) + 0.5) / size
    estimate = estimate_camera(landmarks)
    yaw, pitch = yaw_pitch_from_cam2world(estimate.label[:16].reshape(1, 4, 4))
    return PreparedPortrait(
        image=aligned.image,
        camera=estimate.label,
        face=chosen,
        yaw_deg=math.degrees(float(yaw)),
        pitch_deg=math.degrees(float(pitch)),
        aligned=aligned,
        estimate=estimate,
    )


ASPECT_TOLERANCE = 0.02
"""Largest relative difference of width/height between the two images of an example pair."""


def align_pair(before: Tensor, after: Tensor, size: int, face: str | int | None = "largest",
               source: str = "image", framing: str = "world") -> tuple[PreparedPortrait, Tensor]:
    """Align an example pair (a photo and its edit) with the face found in ``before``.

    The same crop square cuts both images, so the edit stays registered with its input; an
    ``after`` of another resolution (e.g. an editor's 512² output of a 1024² photo) is resized
    to ``before``'s size first. Returns the prepared ``before`` (crop and estimated camera) and
    the ``[3, size, size]`` crop of ``after``. ``framing``: as :func:`prepare_portrait`.

    Raises:
        FaceSelectionError: as :func:`prepare_portrait`, naming ``source``.
        ValueError: the two images have different aspect ratios (not the same photo), naming ``source``.
    """
    (height, width), (after_height, after_width) = before.shape[-2:], after.shape[-2:]
    if abs((after_width / after_height) / (width / height) - 1.0) > ASPECT_TOLERANCE:
        raise InvalidInput(f"{source}: the edited image is {after_width}x{after_height} but the photo is "
                         f"{width}x{height}; an example pair must keep the photo's aspect ratio")
    prepared = prepare_portrait(before, size, face, source, framing=framing)
    if (after_height, after_width) != (height, width):
        after = F.interpolate(after[None].float(), size=(height, width), mode="bilinear", antialias=True,
                              align_corners=False)[0].clamp(0, 1)
    return prepared, warp_square(after, prepared.aligned.square, size)


__all__ = ["PreparedPortrait", "align_pair", "prepare_portrait"]
