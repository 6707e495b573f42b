"""``pe3d eval editor``: edit fidelity of an editor on held-out world identities, against ground truth.

For a filter style on the world, the correct 3D edit is known at every camera: the style's filter
applied to the world's ground-truth view there. For each held-out identity (frontal input) and
each of the style's first ``prompts`` test prompts we report

* **edit fidelity**: L1, PSNR and SSIM of the edited render at the input camera against the
  filter applied to the input;
* **novel-view fidelity**: PSNR, SSIM and depth error at yaw +-30 deg and pitch +-15 deg against
  the filter applied to the ground-truth views there.

The protocol and the scores are :mod:`pe3d.evaluation`'s, the same as ``pe3d demo``'s and
``pe3d bench adaptation``'s (whose base-editor column is this at 8 identities and 1 prompt).
"""

from __future__ import annotations

from pe3d.evaluation.world import EditScores, WorldEvalConfig, build_world_eval_set, evaluate_editor as _evaluate_editor, style_filter_name
from pe3d.models.editor import EditorCore

__all__ = ["EditScores", "PROMPTS_PER_STYLE", "editor_eval_config", "evaluate_editor", "format_editor_table", "style_filter_name"]

PROMPTS_PER_STYLE = 1
"""Test prompts scored per style by default (the adaptation benchmark's ``world.prompts_per_style``)."""


def editor_eval_config(style: str, count: int = 8, resolution: int = 64, seed: int = 0, prompts: int = PROMPTS_PER_STYLE) -> WorldEvalConfig:
    """The held-out set of ``pe3d eval editor``: ``count`` identities, the input and the 4 novel views,
    the first ``prompts`` test prompts of ``style`` (all of them when ``prompts <= 0``)."""
    return WorldEvalConfig(identities=count, world_seed=seed, resolution=resolution, styles=[style], prompts_per_style=prompts,
                           novel_yaws_deg=[-30.0, 30.0], novel_pitches_deg=[-15.0, 15.0])


def evaluate_editor(editor: EditorCore, spec, count: int = 8, resolution: int = 64, seed: int = 0,
                    prompts: int = PROMPTS_PER_STYLE) -> EditScores:
    """Score ``editor`` on ``count`` held-out identities with the style ``spec``'s first ``prompts`` test prompts
    (:func:`pe3d.evaluation.evaluate_editor` on :func:`editor_eval_config`)."""
    style_filter_name(spec)  # a clear error for styles without ground truth, before rendering anything
    return _evaluate_editor(editor, build_world_eval_set(editor_eval_config(spec.name, count, resolution, seed, prompts)))


def format_editor_table(rows: dict[str, EditScores]) -> str:
    """Markdown table of :func:`evaluate_editor` results, one row per label (e.g. before / after adapt)."""
    lines = [
        "| | edit L1 | edit PSNR (dB) | novel-view PSNR yaw ±30°, pitch ±15° (dB) |",
        "|---|---|---|---|",
    ]
    lines += [f"| {name} | {s.edit_l1:.4f} | {s.edit_psnr:.2f} | {s.novel_psnr:.2f} |" for name, s in rows.items()]
    return "\n".join(lines)
