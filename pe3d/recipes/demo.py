"""``pe3d demo``: the embedded pipeline end to end.

prior (shipped, or trained with ``--train``) -> base editor (shipped, or distilled with
``--train``) -> norm-only adaptation to a built-in style the base editor never saw ->
an edited turntable GIF (one pass, and refined to the input as ``pe3d edit`` does by default),
depth maps and a metrics summary (before / after adaptation) in the output folder.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from pe3d.models.editor import load_editor
from pe3d.errors import InvalidInput
from pe3d.pipeline import EditPipeline
from pe3d.recipes.edit import PHOTO_REFINE_STEPS
from pe3d.refinement import RefineConfig
from pe3d.turntable import turntable_cameras, write_turntable_gif
from pe3d.evaluation.world import build_world_eval_set, evaluate_editor, evaluate_prior, format_prior_table
from pe3d.recipes.eval_editor import editor_eval_config, format_editor_table


def run_demo(out: Path, style: str = "golden_statue", train: bool = False, adapt_minutes: float = 2.0, eval_count: int = 8,
             refine_steps: int = PHOTO_REFINE_STEPS) -> dict:
    """Run the embedded pipeline into ``out``; returns the metrics written to ``out/metrics.json``.

    Scores come from :mod:`pe3d.evaluation` on one held-out set (``eval_count`` identities, the style's
    first test prompt): the prior as ``pe3d eval prior``, the editor as ``pe3d eval editor`` and
    ``pe3d bench adaptation`` score them. The adapted edit of the first identity is written as a turntable
    (``turntable.gif``, the one pass the scores are of) and, with ``refine_steps`` > 0, refined to the input as
    ``pe3d edit`` does by default (``turntable_refined.gif``: the detail residual of :mod:`pe3d.refinement` at the
    style's ``refine.strength``)."""
    from pe3d.config import load_fit_config
    from pe3d.recipes.editing import AdaptFitConfig, DistillFitConfig, fit_adapt, fit_distill
    from pe3d.recipes.prior import fit_prior, load_prior_fit_config
    from pe3d.models.prior import load_prior
    from pe3d.styles.adapters import load_adapter_into
    from pe3d.styles.discovery import load_named_style
    from pe3d.weights import shipped_path

    if refine_steps < 0:
        raise InvalidInput(f"--refine-steps must be >= 0, got {refine_steps}")
    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    started = time.perf_counter()
    if train:
        prior_path = fit_prior(load_prior_fit_config(None, [f"out={out / 'prior'}"]))
        editor_path = fit_distill(load_fit_config(DistillFitConfig, None, [f"prior={prior_path}", f"out={out / 'distill'}", f"pairs_dir={out / 'pairs'}"]))
    else:
        prior_path, editor_path = shipped_path("prior_mini"), shipped_path("editor_mini")
    timings["prior_and_base_minutes"] = (time.perf_counter() - started) / 60
    spec = load_named_style(style)
    data = build_world_eval_set(editor_eval_config(spec.name, count=eval_count))
    prior_scores = evaluate_prior(load_prior(prior_path), data)
    before = evaluate_editor(load_editor(editor_path), data)
    started = time.perf_counter()
    adapter_path = fit_adapt(
        load_fit_config(
            AdaptFitConfig,
            None,
            [f"base={editor_path}", f"prior={prior_path}", f"style={style}", f"pairs_dir={out / 'pairs'}",
             f"out={out / 'adapt'}", f"export={out / 'adapt' / 'adapter.safetensors'}", f"trainer.max_minutes={adapt_minutes}"],
        )
    )
    timings["adapt_minutes"] = (time.perf_counter() - started) / 60
    editor = load_editor(editor_path)
    load_adapter_into(editor, adapter_path)
    after = evaluate_editor(editor, data)
    view, camera, pipe = data.rgb[:1], data.labels[:1], EditPipeline(editor)
    result = pipe(view, prompt=data.cases[0].prompt, cameras=turntable_cameras(), input_camera=camera, resolution=data.resolution)
    gif = write_turntable_gif(view[0], result.views[0], result.depths[0], out / "turntable.gif")
    refined_gif = None
    if refine_steps:
        started = time.perf_counter()
        refine = RefineConfig(steps=refine_steps, prior=str(prior_path), strength=spec.refine.strength)
        refined = pipe(view, prompt=data.cases[0].prompt, cameras=turntable_cameras(), input_camera=camera,
                       resolution=data.resolution, refine=refine)
        refined_gif = write_turntable_gif(view[0], refined.views[0], refined.depths[0], out / "turntable_refined.gif")
        timings["refine_seconds"] = time.perf_counter() - started
    metrics = {
        "style": style,
        "prior": {k: vars(v) for k, v in prior_scores.items()},
        "editor_before_adapt": before.as_dict(),
        "editor_after_adapt": after.as_dict(),
        "timings": timings,
        "turntable": str(gif),
        "turntable_refined": str(refined_gif) if refined_gif else None,
        "adapter": str(adapter_path),
    }
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    summary = [
        f"# pe3d demo: style `{style}`",
        "",
        "## Prior on held-out identities",
        format_prior_table(prior_scores),
        "",
        f"## Editor on held-out identities (test prompt \"{data.cases[0].prompt}\")",
        format_editor_table({"before adapt": before, "after adapt": after}),
        "",
        f"Adaptation took {timings['adapt_minutes']:.1f} min. Turntable: {gif.name} (the one pass scored above)"
        + (f"; {refined_gif.name}: refined to the input in {refine_steps} steps, as `pe3d edit` does by default "
           f"({timings['refine_seconds']:.0f} s)." if refined_gif else "."),
    ]
    (out / "summary.md").write_text("\n".join(summary) + "\n")
    print("\n".join(summary))
    return metrics
