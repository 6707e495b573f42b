"""``ID_t``: identity preservation between an input portrait and its edit (paper Sec. 4.1).

The score is the cosine similarity between the face-identity embedding of the input image ``I``
and that of the edited image ``I_p``, averaged over the measured pairs.

Which pairs are measured (backend ``"dlib"``):

* the largest face is detected in the source and in the edited image separately;
* **found**: a face in both -> measured;
* **missed**: a face in the source but none in the edit (a strong stylisation can hide it from
  the detector) -> measured inside the *source's face box* (landmarks predicted there), so that
  a failed detection does not silently drop hard cases; set ``use_source_box=False`` to skip
  these pairs instead (they are then counted in ``skipped`` too);
* **skipped**: no face in the source -> not measured.

The mean is over found + missed pairs. With backend ``"arcface"`` (the paper's network) there is
no detection: every pair is measured on the pSp face crop and counted as found.
"""

from __future__ import annotations

import math
import os
import warnings

import torch
from torch import Tensor
from torchmetrics import Metric

from pe3d.faces.detect import MIN_DETECTION_SCORE
from pe3d.metrics.face_identity import build_face_embedder, check_images


class IdentitySimilarity(Metric):
    """Mean identity cosine similarity between source and edited images (``ID_t``).

    Args:
        backend: ``"dlib"`` (pip-shipped models, detection per image) or ``"arcface"`` (IR-SE50,
            the paper's choice; needs ``weights``).
        weights: ``model_ir_se50.pth`` for ``"arcface"`` (``None`` searches the default places).
        upsample: dlib detector upsampling (1 finds faces down to ~40 px; use 2 for 64 px renders).
        min_score: dlib detections below this score are ignored.
        use_source_box: dlib only; measure an edit with no detected face inside the source's box.

    States (tensors, summed across processes): ``similarity_sum``, ``found``, ``missed``, ``skipped``.
    ``compute()`` returns the mean over ``found + missed`` pairs, or NaN with a warning when none.
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    similarity_sum: Tensor
    found: Tensor
    missed: Tensor
    skipped: Tensor

    def __init__(
        self,
        backend: str = "dlib",
        weights: str | os.PathLike | None = None,
        upsample: int = 1,
        min_score: float = MIN_DETECTION_SCORE,
        use_source_box: bool = True,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.backend = backend
        self.embedder = build_face_embedder(backend, weights, upsample, min_score)
        self.use_source_box = bool(use_source_box)
        self.add_state("similarity_sum", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        for name in ("found", "missed", "skipped"):
            self.add_state(name, default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, source: Tensor, edited: Tensor) -> None:
        """Add pairs: ``source`` and ``edited`` are ``[B, 3, H, W]`` in ``[0, 1]`` of the same shape."""
        check_images(source, "source")
        check_images(edited, "edited")
        if source.shape != edited.shape:
            raise ValueError(f"source and edited must have the same shape, got {tuple(source.shape)} and {tuple(edited.shape)}")
        if self.embedder.detects:  # the edit may need the source's face box
            src = self.embedder.embed(source)
            out = self.embedder.embed(edited, fallback_boxes=src.boxes if self.use_source_box else None)
        else:  # one batch through the network
            both_sets = self.embedder.embed(torch.cat([source, edited.to(source.device)]))
            src, out = both_sets.split(source.shape[0])
        both = src.measured & out.measured
        cosine = (src.vectors * out.vectors).sum(dim=1).double()
        self.similarity_sum += cosine[both].sum().to(self.similarity_sum.device)
        self.found += int((both & out.detected).sum())
        self.missed += int((both & ~out.detected).sum())
        self.skipped += int((~both).sum())

    def compute(self) -> Tensor:
        """Mean cosine similarity over measured pairs; NaN (with a ``UserWarning``) when none was measurable."""
        measured = int(self.found + self.missed)
        if measured == 0:
            warnings.warn(
                f"IdentitySimilarity ({self.backend}): no measurable pair ({int(self.skipped)} skipped: no face in the source)",
                UserWarning,
                stacklevel=2,
            )
            return torch.tensor(math.nan, dtype=torch.float64)
        return self.similarity_sum / measured
