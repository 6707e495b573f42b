"""Face detection, 68-point landmarks, face choice and identity embeddings (dlib).

Images are ``uint8`` numpy arrays ``[H, W, 3]`` RGB, or float tensors ``[3, H, W]`` in [0, 1]
(converted by :func:`to_uint8_hwc`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from pe3d.errors import InvalidInput
from pe3d.faces.models import dlib_models
from pe3d.images import quantize_uint8


class FaceSelectionError(InvalidInput):
    """No face, or several faces and no choice of which; the message says what to pass.

    Attributes:
        count: how many faces were found (``None`` when not known).
    """

    def __init__(self, message: str, count: int | None = None) -> None:
        super().__init__(message)
        self.count = count


@dataclass(frozen=True)
class Face:
    """One detected face: box ``(left, top, right, bottom)`` in pixels, score, and landmarks ``[68, 2]`` (x, y)."""

    box: tuple[int, int, int, int]
    score: float
    landmarks: np.ndarray

    @property
    def area(self) -> int:
        """Box area in pixels."""
        left, top, right, bottom = self.box
        return max(0, right - left) * max(0, bottom - top)


def to_uint8_hwc(image: np.ndarray | torch.Tensor) -> np.ndarray:
    """``[3, H, W]`` float tensor in [0, 1] or ``[H, W, 3]`` uint8 array -> contiguous ``[H, W, 3]`` uint8."""
    if isinstance(image, torch.Tensor):
        if image.dim() != 3 or image.shape[0] != 3:
            raise ValueError(f"expected an image tensor [3, H, W], got {tuple(image.shape)}")
        image = quantize_uint8(image).permute(1, 2, 0).cpu().numpy()
    array = np.asarray(image)
    if array.ndim != 3 or array.shape[2] != 3 or array.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image [H, W, 3], got {array.dtype} {array.shape}")
    return np.ascontiguousarray(array)


def _dlib_rect(box: tuple[int, int, int, int]):
    import dlib

    return dlib.rectangle(*[int(v) for v in box])


MIN_DETECTION_SCORE = 0.3
"""dlib HOG detections scoring below this are dropped (false positives score ~0.1 on ``skimage.data.astronaut``)."""


def detect_faces(image: np.ndarray | torch.Tensor, upsample: int = 1, min_score: float = MIN_DETECTION_SCORE) -> list[Face]:
    """All faces in ``image`` scoring at least ``min_score``, largest first, each with its 68 landmarks."""
    array = to_uint8_hwc(image)
    models = dlib_models()
    rects, scores, _ = models.detector.run(array, upsample, 0.0)
    faces = []
    for rect, score in zip(rects, scores):
        if score < min_score:
            continue
        shape = models.landmarks68(array, rect)
        points = np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float64)
        faces.append(Face((rect.left(), rect.top(), rect.right(), rect.bottom()), float(score), points))
    return sorted(faces, key=lambda face: face.area, reverse=True)


def choose_face(faces: list[Face], choice: str | int | None, source: str = "image") -> Face:
    """Pick one face: ``None`` demands exactly one, ``"largest"`` the biggest, an int that index (largest first)."""
    if not faces:
        raise FaceSelectionError(f"{source}: no face found; use a photo with one visible, roughly frontal face", 0)
    if choice is None:
        if len(faces) > 1:
            raise FaceSelectionError(
                f"{source}: found {len(faces)} faces; choose one with --face largest or --face N (0..{len(faces) - 1}, largest first)",
                len(faces),
            )
        return faces[0]
    if choice == "largest":
        return faces[0]
    try:
        index = int(choice)
    except (TypeError, ValueError):
        raise FaceSelectionError(f"{source}: --face must be 'largest' or an integer index, got {choice!r}", len(faces)) from None
    if not 0 <= index < len(faces):
        raise FaceSelectionError(f"{source}: --face {index} is out of range; found {len(faces)} face(s) (0..{len(faces) - 1})", len(faces))
    return faces[index]


def face_embedding(image: np.ndarray | torch.Tensor, face: Face) -> np.ndarray:
    """dlib's 128-d identity embedding of ``face`` (unit length; same person ~ distance < 0.6)."""
    import dlib

    array = to_uint8_hwc(image)
    models = dlib_models()
    parts = [dlib.point(int(round(x)), int(round(y))) for x, y in face.landmarks]
    shape = dlib.full_object_detection(_dlib_rect(face.box), parts)
    descriptor = np.array(models.recognition.compute_face_descriptor(array, shape), dtype=np.float64)
    return descriptor / max(np.linalg.norm(descriptor), 1e-12)
