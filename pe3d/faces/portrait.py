"""One call from a photo to the model's input: detect, choose, align, estimate the camera."""

from __future__ import annotations

import math
from dataclasses import dataclass

from torch import Tensor

from pe3d.faces.align import AlignedFace, align_face
from pe3d.faces.camera import CameraEstimate, estimate_camera
from pe3d.faces.detect import Face, choose_face, detect_faces
from pe3d.geometry import yaw_pitch_from_cam2world


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


def prepare_portrait(image: Tensor, size: int, face: str | int | None = None, source: str = "image") -> PreparedPortrait:
    """Detect the face in ``image [3, H, W]`` (float, [0, 1]), align it to ``size``² and estimate its camera.

    Args:
        image: the photo.
        size: side of the aligned crop in pixels.
        face: ``None`` (exactly one face required), ``"largest"``, or an index (largest first).
        source: name used in error messages (e.g. the file path).

    Raises:
        FaceSelectionError: no face, several faces and no choice, or a bad choice; the message
            names ``source``, the count and the ``--face`` option.
    """
    chosen = choose_face(detect_faces(image), face, source)
    aligned = align_face(image, chosen.landmarks, size)
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


__all__ = ["PreparedPortrait", "prepare_portrait"]
