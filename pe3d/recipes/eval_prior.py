"""``pe3d eval prior``: measured quality of a prior on held-out world identities.

For each held-out identity the frontal render is the input; the prior's triplane is rendered at
yaw +-30 deg and pitch +-15 deg (and the input camera) and compared with the world's ground
truth there: PSNR of the image, mean absolute depth error on the ground-truth foreground. The
baseline cannot do 3D: it shows the input image (and the input's ground-truth depth map)
unchanged at every view. The protocol and the scores are :mod:`pe3d.evaluation`'s, the same as
``pe3d demo``'s and ``pe3d bench quality``'s ``prior`` row.
"""

from __future__ import annotations

from pe3d.evaluation.world import (
    ViewScores,
    WorldEvalConfig,
    build_world_eval_set,
    evaluate_prior as _evaluate_prior,
    format_prior_table as format_table,
)
from pe3d.metrics.ground_truth import GT_VIEWS
from pe3d.models.prior import PriorModel

__all__ = ["EVAL_VIEWS", "ViewScores", "evaluate_prior", "format_table", "prior_eval_config"]

EVAL_VIEWS: dict[str, tuple[float, float]] = dict(GT_VIEWS)
"""View name -> (yaw, pitch) in degrees (the input camera, yaw +-30, pitch +-15)."""


def prior_eval_config(count: int = 16, resolution: int = 64, seed: int = 0) -> WorldEvalConfig:
    """The held-out set of ``pe3d eval prior``: ``count`` identities, the views of :data:`EVAL_VIEWS`, no styles."""
    return WorldEvalConfig(identities=count, world_seed=seed, resolution=resolution, styles=[],
                           novel_yaws_deg=[-30.0, 30.0], novel_pitches_deg=[-15.0, 15.0])


def evaluate_prior(model: PriorModel, count: int = 16, resolution: int = 64, seed: int = 0,
                   visibility: bool = False, silhouette: bool = False) -> dict[str, ViewScores]:
    """Scores per view name of :data:`EVAL_VIEWS` on ``count`` held-out identities
    (:func:`pe3d.evaluation.evaluate_prior` on :func:`prior_eval_config`; ``visibility`` adds the seen / hidden split,
    ``silhouette`` the split on and off the ground truth's silhouette ring)."""
    return _evaluate_prior(model, build_world_eval_set(prior_eval_config(count, resolution, seed)), visibility, silhouette)
