"""FFHQ-style face alignment from 68 landmarks, framed like the embedded world's frontal renders.

The FFHQ recipe (Karras et al., ``align_images`` of the FFHQ dataset tools) builds an oriented
square from the eyes and the mouth:

* ``eye_to_eye`` = right-eye centre - left-eye centre, ``eye_to_mouth`` = mouth centre - eye
  midpoint (mouth centre = middle of the two mouth corners);
* the square's half-side vector ``x`` points along ``eye_to_eye`` rotated towards the mouth
  axis, with length ``max(2 |eye_to_eye|, 1.8 |eye_to_mouth|)``; ``y`` is ``x`` turned 90°;
* its centre is ``eye midpoint + 0.1 eye_to_mouth``.

FFHQ crops exactly that square. Our model never saw FFHQ: it was trained on the world's renders
at the FFHQ *camera*, whose faces are smaller in the frame. (EG3D also re-crops FFHQ more
loosely than the original alignment to fit its camera: a Deep3DFaceRecon similarity fit scaled
to 300/1024, centre-cropped to 700 px and resized to 512.) So the square is grown by
:data:`WORLD_ZOOM` and moved by :data:`WORLD_SHIFT`, two numbers measured by
:func:`measure_world_framing`: on 29 world frontal renders (seed 0, identities 0-39 with one
detected face, 256²) the FFHQ square is 0.88 of the frame (median), so ``WORLD_ZOOM = 1.13``
makes the aligned crop of a world render the render itself (eyes 0.22 of the width apart;
FFHQ has them 0.25 apart). A real face aligned this way lands where the model expects a face.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

WORLD_ZOOM: float = 1.13
"""Side of the aligned crop over the FFHQ square's side (measured on world renders)."""
WORLD_SHIFT: float = -0.008
"""Crop centre offset along the face's down axis, in crop half-sides (negative = up)."""

FRAMINGS = ("world", "eg3d")
"""How :func:`align_face` frames a face: like the world's renders (pe3d's own models) or like EG3D's
FFHQ crops (:func:`eg3d_square`; models trained on them, such as the imported 3DPE / Live3D ones)."""
LM3D_STD = np.array([
    [-0.31148657, 0.29036078, 0.13377953],
    [0.30979887, 0.28972036, 0.13179526],
    [0.0032535, -0.04617932, 0.55244243],
    [-0.25216928, -0.38133916, 0.22405732],
    [0.2484662, -0.38128236, 0.22235769],
])
"""Deep3DFaceRecon's standard 5 landmarks (eye centres, nose tip, mouth corners; BFM units, y up)
that EG3D's FFHQ preprocessing fits each face to."""
EG3D_RESCALE: float = 300.0
"""EG3D preprocessing: ``align_img(..., target_size=1024, rescale_factor=300)``: one BFM unit -> 300 px."""
EG3D_CENTER_CROP: int = 700
"""EG3D preprocessing: the centre 700 px of that 1024 px image, resized to 512, is the training crop."""


@dataclass(frozen=True)
class FaceSquare:
    """An oriented square in continuous pixel coordinates (pixel ``i`` spans ``[i, i+1]``).

    Attributes:
        centre: ``[2]`` (x, y) centre.
        right: ``[2]`` half-side vector towards the face's right-hand image side (image +x when upright).
        down: ``[2]`` half-side vector towards the chin (image +y when upright).
    """

    centre: np.ndarray
    right: np.ndarray
    down: np.ndarray

    @property
    def side(self) -> float:
        """Side length in pixels."""
        return 2.0 * float(np.hypot(*self.right))

    def scaled(self, zoom: float, shift: float = 0.0) -> "FaceSquare":
        """The square grown by ``zoom`` and moved by ``shift`` grown half-sides along ``down``."""
        right, down = self.right * zoom, self.down * zoom
        return FaceSquare(self.centre + shift * down, right, down)

    def corners(self) -> np.ndarray:
        """``[4, 2]`` corners: top-left, bottom-left, bottom-right, top-right (FFHQ's quad order)."""
        c, x, y = self.centre, self.right, self.down
        return np.stack([c - x - y, c - x + y, c + x + y, c + x - y])


def ffhq_square(landmarks: np.ndarray) -> FaceSquare:
    """The FFHQ alignment square of 68 dlib landmarks ``[68, 2]`` (pixel-index coordinates)."""
    points = np.asarray(landmarks, dtype=np.float64)
    if points.shape != (68, 2):
        raise ValueError(f"expected 68 landmarks [68, 2], got {points.shape}")
    points = points + 0.5  # pixel-index -> continuous coordinates
    eye_left, eye_right = points[36:42].mean(axis=0), points[42:48].mean(axis=0)
    eye_mid = 0.5 * (eye_left + eye_right)
    eye_to_eye = eye_right - eye_left
    eye_to_mouth = 0.5 * (points[48] + points[54]) - eye_mid
    right = eye_to_eye - np.array([-eye_to_mouth[1], eye_to_mouth[0]])
    right = right / max(np.hypot(*right), 1e-9)
    right = right * max(2.0 * np.hypot(*eye_to_eye), 1.8 * np.hypot(*eye_to_mouth))
    down = np.array([-right[1], right[0]])
    return FaceSquare(eye_mid + 0.1 * eye_to_mouth, right, down)


def portrait_square(landmarks: np.ndarray, zoom: float = WORLD_ZOOM, shift: float = WORLD_SHIFT) -> FaceSquare:
    """The crop square framing a face like the world's frontal renders."""
    return ffhq_square(landmarks).scaled(zoom, shift)


def five_landmarks(landmarks: np.ndarray) -> np.ndarray:
    """``[5, 2]`` eye centres, nose tip and mouth corners (image left first) of 68 dlib landmarks, continuous coordinates."""
    points = np.asarray(landmarks, dtype=np.float64)
    if points.shape != (68, 2):
        raise ValueError(f"expected 68 landmarks [68, 2], got {points.shape}")
    points = points + 0.5
    return np.stack([points[36:42].mean(axis=0), points[42:48].mean(axis=0), points[30], points[48], points[54]])


def eg3d_square(landmarks: np.ndarray) -> FaceSquare:
    """The square EG3D's FFHQ preprocessing crops around a face (as the 3DPE / Live3D checkpoints expect).

    EG3D fits Deep3DFaceRecon's standard face (:data:`LM3D_STD`) to five landmarks with its ``POS``
    least-squares projection (scale ``s`` pixels per BFM unit, translation ``t`` = where the face
    model's origin lands), rescales the photo so that ``s`` becomes 300 px, and keeps the centre
    700 px: a square of side ``700 s / 300`` centred on ``t``. Here the square is also turned to
    level the eyes (EG3D keeps the roll in its camera; pe3d's camera estimate drops it), which
    leaves its centre and size as EG3D's. For the standard face, the eyes end up 0.266 of the
    crop width apart (FFHQ: 0.25, pe3d's world framing: 0.22).
    """
    five = five_landmarks(landmarks)
    x, y = five[:, 0], -five[:, 1]  # Deep3DFaceRecon flips y before fitting
    rows = np.zeros((10, 8))
    rows[0::2, :3], rows[0::2, 3] = LM3D_STD, 1.0
    rows[1::2, 4:7], rows[1::2, 7] = LM3D_STD, 1.0
    k, *_ = np.linalg.lstsq(rows, np.stack([x, y], axis=1).reshape(-1), rcond=None)
    scale = 0.5 * (np.linalg.norm(k[0:3]) + np.linalg.norm(k[4:7]))
    centre = np.array([k[3], -k[7]])
    half = 0.5 * EG3D_CENTER_CROP * scale / EG3D_RESCALE
    eye_to_eye = five[1] - five[0]
    right = eye_to_eye / max(np.hypot(*eye_to_eye), 1e-9) * half
    return FaceSquare(centre, right, np.array([-right[1], right[0]]))


@dataclass(frozen=True)
class AlignedFace:
    """An aligned crop and the transform that made it.

    Attributes:
        image: ``[3, size, size]`` float in [0, 1].
        square: the crop square in the original image.
        matrix: ``[3, 3]`` homogeneous affine map from original pixel-index coordinates to aligned
            pixel-index coordinates (pixel centres at integers in both, like dlib's landmarks).
    """

    image: Tensor
    square: FaceSquare
    matrix: np.ndarray

    def to_aligned(self, points: np.ndarray) -> np.ndarray:
        """Map ``[N, 2]`` original pixel coordinates into the aligned crop."""
        points = np.asarray(points, dtype=np.float64)
        return points @ self.matrix[:2, :2].T + self.matrix[:2, 2]

    def to_original(self, points: np.ndarray) -> np.ndarray:
        """Map ``[N, 2]`` aligned-crop pixel coordinates back into the original image."""
        inverse = np.linalg.inv(self.matrix)
        return np.asarray(points, dtype=np.float64) @ inverse[:2, :2].T + inverse[:2, 2]


def square_matrix(square: FaceSquare, size: int) -> np.ndarray:
    """``[3, 3]`` affine from original to aligned pixel-index coordinates for a ``size`` crop of ``square``."""
    top_left = square.centre - square.right - square.down
    # aligned continuous a = size * B^-1 (p + 0.5 - top_left), B = [2 right | 2 down]
    basis = np.stack([2 * square.right, 2 * square.down], axis=1)
    linear = size * np.linalg.inv(basis)
    offset = linear @ (0.5 - top_left) - 0.5
    matrix = np.eye(3)
    matrix[:2, :2], matrix[:2, 2] = linear, offset
    return matrix


def warp_square(image: Tensor, square: FaceSquare, size: int) -> Tensor:
    """Resample ``square`` of ``image [3, H, W]`` into ``[3, size, size]`` (bilinear, reflected borders).

    When the square covers more than 1.5 source pixels per output pixel the image is first
    shrunk with an antialiasing filter, so the crop does not alias.
    """
    if image.ndim != 3 or image.shape[0] != 3:
        raise ValueError(f"expected an image tensor [3, H, W], got {tuple(image.shape)}")
    if size < 1:
        raise ValueError(f"size must be positive, got {size}")
    source = image[None].float()
    height, width = image.shape[-2:]
    shrink = square.side / size
    if shrink > 1.5:
        new_h, new_w = max(1, round(height / shrink)), max(1, round(width / shrink))
        source = F.interpolate(source, size=(new_h, new_w), mode="bilinear", antialias=True, align_corners=False)
    scale = np.array([source.shape[-1] / width, source.shape[-2] / height])
    top_left = (square.centre - square.right - square.down) * scale
    right, down = 2 * square.right * scale, 2 * square.down * scale
    steps = (torch.arange(size, dtype=torch.float64) + 0.5) / size
    v, u = torch.meshgrid(steps, steps, indexing="ij")
    px = top_left[0] + u * right[0] + v * down[0]
    py = top_left[1] + u * right[1] + v * down[1]
    grid = torch.stack([px / source.shape[-1] * 2 - 1, py / source.shape[-2] * 2 - 1], dim=-1)
    warped = F.grid_sample(source, grid[None].to(source.dtype), mode="bilinear", padding_mode="reflection", align_corners=False)
    return warped[0].clamp(0, 1)


def align_face(image: Tensor, landmarks: np.ndarray, size: int, zoom: float = WORLD_ZOOM, shift: float = WORLD_SHIFT,
               framing: str = "world") -> AlignedFace:
    """Crop ``image [3, H, W]`` to the square of ``landmarks [68, 2]``, ``size`` pixels a side.

    ``framing="world"``: framed like the world's renders (``zoom``, ``shift``); ``"eg3d"``: EG3D's
    FFHQ crop (:func:`eg3d_square`; ``zoom`` and ``shift`` unused).
    """
    if framing not in FRAMINGS:
        raise ValueError(f"framing must be one of {FRAMINGS}, got {framing!r}")
    square = eg3d_square(landmarks) if framing == "eg3d" else portrait_square(landmarks, zoom, shift)
    return AlignedFace(warp_square(image, square, size), square, square_matrix(square, size))


def measure_world_framing(count: int = 40, seed: int = 0, resolution: int = 256) -> tuple[float, float]:
    """Re-measure ``(WORLD_ZOOM, WORLD_SHIFT)``: the crop of the FFHQ square that gives back a world render.

    Median over the frontal renders of world identities ``0..count-1`` in which dlib finds one face.
    """
    from pe3d.faces.detect import detect_faces
    from pe3d.geometry import label_from_yaw_pitch
    from pe3d.world import render_identity, sample_identity

    label = label_from_yaw_pitch([0.0], [0.0])
    zooms, shifts = [], []
    for index in range(count):
        render = render_identity(sample_identity(seed, index), label, resolution=resolution)
        faces = detect_faces(render.rgb[0])
        if len(faces) != 1:
            continue
        square = ffhq_square(faces[0].landmarks)
        zoom = resolution / square.side
        zooms.append(zoom)
        half_down = square.down * zoom
        offset = np.array([resolution / 2, resolution / 2]) - square.centre
        shifts.append(float(offset @ half_down / (half_down @ half_down)))
    if not zooms:
        raise RuntimeError(f"dlib found no single face in {count} world renders")
    return float(np.median(zooms)), float(np.median(shifts))


if __name__ == "__main__":  # pragma: no cover - regeneration helper
    print("WORLD_ZOOM, WORLD_SHIFT =", measure_world_framing())
