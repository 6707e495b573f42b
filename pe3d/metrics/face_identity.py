"""Face-identity embedders shared by the identity metrics: dlib (ships with pip) and ArcFace IR-SE50.

An embedder turns a batch of images ``[B, 3, H, W]`` in ``[0, 1]`` into :class:`FaceEmbeddings`:
unit-length vectors plus, per image, whether a face was detected and whether the image could be
measured at all.

* ``"dlib"``: dlib's HOG detector finds the largest face, its 68 landmarks align it, and dlib's
  face-recognition ResNet gives a 128-d descriptor (unit-normalised here). An image without a
  detected face can still be measured inside a *fallback box* (e.g. the face box found in the
  source image of an edit): landmarks are then predicted inside that box.
* ``"arcface"``: the paper's IR-SE50 on the pSp crop of an aligned portrait; no detection, every
  image is measured.

Scales differ: cosine similarities of unit-normalised dlib descriptors of *different* people are
typically 0.75-0.9 (dlib descriptors are not centred; dlib's own same-person rule is a Euclidean
distance < 0.6 between raw descriptors), while for ArcFace different people score about 0-0.3.
Compare numbers only within one backend.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from pe3d.faces.detect import MIN_DETECTION_SCORE, Face, detect_faces, face_embedding, to_uint8_hwc
from pe3d.faces.models import dlib_models
from pe3d.metrics.arcface import arcface_input, load_arcface

Box = tuple[int, int, int, int]
"""``(left, top, right, bottom)`` in pixels."""
BACKENDS = ("dlib", "arcface")
"""Accepted ``backend`` names."""


@dataclass
class FaceEmbeddings:
    """Identity embeddings of a batch of ``B`` images.

    Attributes:
        vectors: ``[B, D]`` float32 unit-length embeddings (zeros where ``measured`` is False).
        detected: ``[B]`` bool, a face was detected (always True for backends without detection).
        measured: ``[B]`` bool, the embedding is valid (detected, or taken inside a fallback box).
        boxes: the face box used per image (``None`` when not measured or no detection is done).
    """

    vectors: Tensor
    detected: Tensor
    measured: Tensor
    boxes: list[Optional[Box]]

    def split(self, first: int) -> tuple["FaceEmbeddings", "FaceEmbeddings"]:
        """The first ``first`` images and the rest, as two :class:`FaceEmbeddings`."""
        head = FaceEmbeddings(self.vectors[:first], self.detected[:first], self.measured[:first], self.boxes[:first])
        tail = FaceEmbeddings(self.vectors[first:], self.detected[first:], self.measured[first:], self.boxes[first:])
        return head, tail


def check_images(images: Tensor, name: str = "images") -> Tensor:
    """Validate ``[B, 3, H, W]`` float images (finite); returns them unchanged."""
    if not isinstance(images, Tensor) or images.dim() != 4 or images.shape[1] != 3:
        shape = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
        raise ValueError(f"{name} must be a float tensor [B, 3, H, W] in [0, 1], got {shape}")
    if not images.is_floating_point():
        raise ValueError(f"{name} must be a float tensor in [0, 1], got dtype {images.dtype}")
    if not torch.isfinite(images).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return images


class DlibFaceEmbedder:
    """dlib detection + 68 landmarks + 128-d recognition network (the models pip ships).

    ``detects`` is True: whether a face is found depends on the image (see :class:`FaceEmbeddings`).

    Args:
        upsample: times the HOG detector upsamples the image (1 finds faces down to ~40 px).
        min_score: detections scoring below this are ignored.
    """

    name = "dlib"
    dim = 128
    detects = True

    def __init__(self, upsample: int = 1, min_score: float = MIN_DETECTION_SCORE) -> None:
        self.upsample = int(upsample)
        self.min_score = float(min_score)
        dlib_models()  # fail now, with the install hint, when dlib or its models are missing

    def embed(self, images: Tensor, fallback_boxes: Optional[Sequence[Optional[Box]]] = None) -> FaceEmbeddings:
        """Embed the largest face of each image; an image without one uses ``fallback_boxes[i]`` when given."""
        check_images(images)
        count = images.shape[0]
        if fallback_boxes is not None and len(fallback_boxes) != count:
            raise ValueError(f"got {len(fallback_boxes)} fallback boxes for {count} images")
        vectors = torch.zeros(count, self.dim)
        detected = torch.zeros(count, dtype=torch.bool)
        measured = torch.zeros(count, dtype=torch.bool)
        boxes: list[Optional[Box]] = [None] * count
        for i in range(count):
            array = to_uint8_hwc(images[i])
            faces = detect_faces(array, upsample=self.upsample, min_score=self.min_score)
            face: Optional[Face] = faces[0] if faces else None
            if face is None and fallback_boxes is not None and fallback_boxes[i] is not None:
                face = face_in_box(array, fallback_boxes[i])  # type: ignore[arg-type]
            if face is None:
                continue
            vectors[i] = torch.from_numpy(face_embedding(array, face)).float()
            detected[i], measured[i], boxes[i] = bool(faces), True, face.box
        return FaceEmbeddings(vectors, detected, measured, boxes)


def face_in_box(image: np.ndarray, box: Box) -> Face:
    """A :class:`~pe3d.faces.Face` whose 68 landmarks dlib predicts inside ``box`` (no detection; score 0)."""
    import dlib

    shape = dlib_models().landmarks68(image, dlib.rectangle(*[int(v) for v in box]))
    points = np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float64)
    return Face(tuple(int(v) for v in box), 0.0, points)  # type: ignore[arg-type]


class ArcFaceEmbedder(nn.Module):
    """The paper's ArcFace IR-SE50 on the pSp face crop of aligned portraits (no detection: ``detects`` is False).

    Args:
        weights: path of ``model_ir_se50.pth``; ``None`` searches the default places
            (see :func:`pe3d.metrics.arcface.default_arcface_paths`).
    """

    name = "arcface"
    dim = 512
    detects = False

    def __init__(self, weights: str | os.PathLike | None = None) -> None:
        super().__init__()
        self.network = load_arcface(weights)

    def train(self, mode: bool = True) -> "ArcFaceEmbedder":
        """The network always stays in eval mode (frozen batch-norm statistics)."""
        super().train(mode)
        self.network.eval()
        return self

    @torch.no_grad()
    def embed(self, images: Tensor, fallback_boxes: Optional[Sequence[Optional[Box]]] = None) -> FaceEmbeddings:
        """Embed every image (``fallback_boxes`` is accepted for interface parity and unused)."""
        check_images(images)
        device = next(self.network.parameters()).device
        vectors = self.network(arcface_input(images.to(device))).float().cpu()
        every = torch.ones(images.shape[0], dtype=torch.bool)
        return FaceEmbeddings(vectors, every, every.clone(), [None] * images.shape[0])


def build_face_embedder(
    backend: str = "dlib",
    weights: str | os.PathLike | None = None,
    upsample: int = 1,
    min_score: float = MIN_DETECTION_SCORE,
) -> DlibFaceEmbedder | ArcFaceEmbedder:
    """The embedder named ``backend`` (``"dlib"`` or ``"arcface"``)."""
    if backend == "dlib":
        if weights is not None:
            raise ValueError("backend='dlib' uses the dlib models pip installs; 'weights' is only for backend='arcface'")
        return DlibFaceEmbedder(upsample=upsample, min_score=min_score)
    if backend == "arcface":
        return ArcFaceEmbedder(weights)
    raise ValueError(f"unknown identity backend {backend!r}; choose one of {', '.join(BACKENDS)}")
