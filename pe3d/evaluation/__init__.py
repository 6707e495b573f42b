"""One evaluation code path, shared by ``pe3d demo``, ``pe3d eval`` and ``pe3d bench``.

* :mod:`~pe3d.evaluation.world`: the held-out world evaluation set (identities, cameras, inputs,
  per-style targets and prompts), rendering a prior or an editor at named views, and the
  ground-truth scores (:func:`evaluate_prior`, :func:`evaluate_editor`).
* :func:`resize_images` (from :mod:`pe3d.images`): the one resize from a portrait to a model's input size.
* :mod:`~pe3d.evaluation.timing`: the one latency helper (Table 1 and the speed benchmark).
"""

from pe3d.evaluation.timing import Timing, time_call, time_in_turns, time_interleaved
from pe3d.evaluation.world import (
    EditScores,
    PerViewScores,
    ViewPlan,
    ViewScores,
    WorldCase,
    WorldEvalConfig,
    WorldEvalSet,
    build_world_eval_set,
    edit_with_prompt,
    edited_targets,
    evaluate_editor,
    evaluate_prior,
    filter_targets,
    format_prior_table,
    model_inputs,
    reconstruct,
    render_views,
    style_filter_name,
    style_prompts,
    update_edit_scores,
    update_view,
    view_name,
)
from pe3d.images import resize_images

__all__ = [
    "EditScores", "PerViewScores", "Timing", "ViewPlan", "ViewScores", "WorldCase", "WorldEvalConfig", "WorldEvalSet",
    "build_world_eval_set", "edit_with_prompt", "edited_targets", "evaluate_editor", "evaluate_prior", "filter_targets",
    "format_prior_table", "model_inputs", "reconstruct", "render_views", "resize_images", "style_filter_name",
    "style_prompts", "time_call", "time_in_turns", "time_interleaved", "update_edit_scores", "update_view", "view_name",
]
