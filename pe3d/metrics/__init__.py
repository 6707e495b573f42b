"""The paper's evaluation metrics (Sec. 4.1) as torchmetrics ``Metric``s, plus ground truth on the world.

* :class:`IdentitySimilarity` -- ``ID_t``: identity cosine similarity of input vs. edited portrait
  (dlib backend from pip, or the paper's ArcFace IR-SE50 from a local ``model_ir_se50.pth``).
* :class:`ClipScore` -- ``CLIP_r``: CLIP cosine similarity of the edit with its text or image prompt
  (open_clip weights from local files / caches only).
* :class:`ViewConsistency` -- "3D": identity similarity across views of one head (EG3D's protocol).
* :class:`GroundTruthViews` + :func:`build_world_targets` -- PSNR / SSIM / depth error / LPIPS
  against the exact edit at yaw +-30 deg and pitch +-15 deg on the embedded world.
* :func:`split_psnr` / :func:`seen_from` -- a novel view split into the foreground the input view shows,
  the part it hides and the background (what a single-image model can and cannot know).
* :class:`TimePerImage` -- milliseconds per image, with CUDA synchronisation.

Networks are never downloaded; a missing one raises :class:`MetricWeightsMissing`.
"""

from pe3d.metrics.arcface import IRSE50, arcface_input, load_arcface
from pe3d.metrics.clip_score import ClipScore, load_clip_model
from pe3d.metrics.consistency import ViewConsistency, face_boxes
from pe3d.metrics.face_identity import FaceEmbeddings, build_face_embedder
from pe3d.metrics.ground_truth import (
    GT_VIEWS,
    GroundTruthViews,
    ViewTarget,
    WorldTargets,
    build_world_targets,
    masked_abs_error,
    psnr,
    render_view_targets,
)
from pe3d.metrics.identity import IdentitySimilarity
from pe3d.metrics.timing import TimePerImage, timed
from pe3d.metrics.visibility import VisibilitySplit, seen_from, split_psnr
from pe3d.metrics.weights import MetricWeightsMissing

__all__ = [
    "GT_VIEWS",
    "IRSE50",
    "ClipScore",
    "FaceEmbeddings",
    "GroundTruthViews",
    "IdentitySimilarity",
    "MetricWeightsMissing",
    "TimePerImage",
    "ViewConsistency",
    "ViewTarget",
    "VisibilitySplit",
    "WorldTargets",
    "arcface_input",
    "build_face_embedder",
    "build_world_targets",
    "face_boxes",
    "load_arcface",
    "load_clip_model",
    "masked_abs_error",
    "psnr",
    "render_view_targets",
    "seen_from",
    "split_psnr",
    "timed",
]
