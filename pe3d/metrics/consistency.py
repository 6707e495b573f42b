"""3D consistency: identity similarity across views of one edited head (paper Sec. 4.1, "3D").

The paper measures 3D consistency "following the evaluation protocols established by EG3D ...
calculating the identity similarity across multiple views". EG3D's ``ID`` score is the mean
ArcFace cosine similarity between two views of the same face rendered from random camera poses.

:class:`ViewConsistency` generalises the pair to ``N >= 2`` views per head: for each head it
embeds every view, takes the cosine similarity of **every unordered pair** of measured views
(``N (N - 1) / 2`` pairs; with ``N = 2`` this is exactly EG3D's pair) and averages over all pairs
of all heads, each pair weighing the same. The cameras are the caller's choice: EG3D draws them
at random from the pose distribution; :mod:`pe3d.metrics.ground_truth` offers the fixed yaw +-30 deg /
pitch +-15 deg views used on the embedded world.

With the ``"dlib"`` backend a view without a detected face is left out (counted in
``missed_views``) and a head with fewer than two measured views adds no pair (counted in
``skipped_heads``). The face moves between views, so there is no box to fall back on, unless the
caller knows where the face is at each camera: on the embedded world, :func:`face_boxes` of the
unedited ground-truth views gives one, and ``update(views, fallback_boxes)`` then measures a
faceless view inside it (counted in ``boxed_views``), as ``ID_t`` uses the input's box.
``"arcface"`` measures every view on the pSp crop, like EG3D's protocol.
"""

from __future__ import annotations

import math
import os
import warnings
from typing import Optional, Sequence

import torch
from torch import Tensor
from torchmetrics import Metric

from pe3d.faces.detect import MIN_DETECTION_SCORE, detect_faces
from pe3d.metrics.face_identity import Box, build_face_embedder

ViewBoxes = Sequence[Sequence[Optional[Box]]]
"""``boxes[head][view]``: a face box ``(left, top, right, bottom)`` in pixels, or ``None``."""


def face_boxes(views: Tensor, upsample: int = 1, min_score: float = MIN_DETECTION_SCORE) -> list[list[Optional[Box]]]:
    """The largest dlib face box of each view of ``views [B, N, 3, H, W]`` (``None`` where none is found)."""
    if not isinstance(views, Tensor) or views.dim() != 5:
        raise ValueError(f"views must be a tensor [B, N, 3, H, W], got {getattr(views, 'shape', type(views).__name__)}")
    boxes: list[list[Optional[Box]]] = []
    for head in views:
        found = [detect_faces(view, upsample=upsample, min_score=min_score) for view in head]
        boxes.append([faces[0].box if faces else None for faces in found])
    return boxes


class ViewConsistency(Metric):
    """Mean identity cosine similarity over all pairs of views of each head.

    Args:
        backend, weights, upsample, min_score: as in :class:`~pe3d.metrics.identity.IdentitySimilarity`.

    States (summed across processes): ``similarity_sum``, ``pairs``, ``missed_views`` (not measured),
    ``boxed_views`` (measured inside a fallback box), ``skipped_heads``.
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    similarity_sum: Tensor
    pairs: Tensor
    missed_views: Tensor
    boxed_views: Tensor
    skipped_heads: Tensor

    def __init__(
        self,
        backend: str = "dlib",
        weights: str | os.PathLike | None = None,
        upsample: int = 1,
        min_score: float = MIN_DETECTION_SCORE,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.backend = backend
        self.embedder = build_face_embedder(backend, weights, upsample, min_score)
        self.add_state("similarity_sum", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        for name in ("pairs", "missed_views", "boxed_views", "skipped_heads"):
            self.add_state(name, default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, views: Tensor, fallback_boxes: Optional[ViewBoxes] = None) -> None:
        """Add heads: ``views`` is ``[B, N, 3, H, W]`` in ``[0, 1]``, ``N >= 2`` views of each of ``B`` heads.

        ``fallback_boxes[b][n]`` (dlib only): where the face of view ``n`` of head ``b`` is known to
        be, used when no face is detected in that view (see :func:`face_boxes`).
        """
        if not isinstance(views, Tensor) or views.dim() != 5 or views.shape[2] != 3:
            shape = tuple(views.shape) if isinstance(views, Tensor) else type(views).__name__
            raise ValueError(f"views must be a float tensor [B, N, 3, H, W] (N views of B heads), got {shape}")
        heads, count = views.shape[:2]
        if count < 2:
            raise ValueError(f"views needs at least 2 views per head to compare, got N={count}")
        flat_boxes = None
        if fallback_boxes is not None:
            if len(fallback_boxes) != heads or any(len(row) != count for row in fallback_boxes):
                raise ValueError(f"fallback_boxes must be {heads} heads x {count} views, like views")
            flat_boxes = [box for row in fallback_boxes for box in row]
        embedded = self.embedder.embed(views.flatten(0, 1), flat_boxes)
        vectors = embedded.vectors.view(heads, count, -1).double()
        measured = embedded.measured.view(heads, count)
        self.missed_views += int((~measured).sum())
        self.boxed_views += int((measured & ~embedded.detected.view(heads, count)).sum())
        upper = torch.triu(torch.ones(count, count, dtype=torch.bool), diagonal=1)
        for head in range(heads):
            valid = upper & measured[head][:, None] & measured[head][None, :]
            if not valid.any():
                self.skipped_heads += 1
                continue
            cosine = vectors[head] @ vectors[head].T
            self.similarity_sum += cosine[valid].sum().to(self.similarity_sum.device)
            self.pairs += int(valid.sum())

    def compute(self) -> Tensor:
        """Mean pairwise cosine similarity; NaN (with a ``UserWarning``) when no pair was measurable."""
        if int(self.pairs) == 0:
            warnings.warn(
                f"ViewConsistency ({self.backend}): no measurable pair of views "
                f"({int(self.missed_views)} views without a face, {int(self.skipped_heads)} heads skipped)",
                UserWarning,
                stacklevel=2,
            )
            return torch.tensor(math.nan, dtype=torch.float64)
        return self.similarity_sum / self.pairs
