"""``pe3d demo``: the embedded pipeline end to end.

prior (shipped, or trained with ``--train``) -> base editor (shipped, or distilled with
``--train``) -> norm-only adaptation to a built-in style the base editor never saw ->
an edited turntable GIF, depth maps and a metrics summary (before / after adaptation)
in the output folder.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from pe3d.models.editor import load_editor
from pe3d.pipeline import EditPipeline
from pe3d.turntable import turntable_cameras, write_turntable_gif
from pe3d.evaluation.world import build_world_eval_set, evaluate_editor, evaluate_prior, format_prior_table
from pe3d.recipes.eval_editor import editor_eval_config, format_editor_table


def run_demo(out: Path, style: str = "golden_statue", train: bool = False, adapt_minutes: float = 2.0, eval_count: int = 8) -> dict:
    """Run the embedded pipeline into ``out``; returns the metrics written to ``out/metrics.json``.

    Scores come from :mod:`pe3d.evaluation` on one held-out set (``eval_count`` identities, the style's
    first test prompt): the prior as ``pe3d eval prior``, the editor as ``pe3d eval editor`` and
    ``pe3d bench adaptation`` score them."""
    from pe3d.config import load_fit_config
    from pe3d.recipes.editing import AdaptFitConfig, DistillFitConfig, fit_adapt, fit_distill
    from pe3d.recipes.prior import fit_prior, load_prior_fit_config
    from pe3d.models.prior import load_prior
    from pe3d.styles.adapters import load_adapter_into
    from pe3d.styles.discovery import load_named_style
    from pe3d.weights import shipped_path

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
    view = data.rgb[:1]
    result = EditPipeline(editor)(view, prompt=data.cases[0].prompt, cameras=turntable_cameras(), resolution=data.resolution)
    gif = write_turntable_gif(view[0], result.views[0], result.depths[0], out / "turntable.gif")
    metrics = {
        "style": style,
        "prior": {k: vars(v) for k, v in prior_scores.items()},
        "editor_before_adapt": before.as_dict(),
        "editor_after_adapt": after.as_dict(),
        "timings": timings,
        "turntable": str(gif),
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
        f"Adaptation took {timings['adapt_minutes']:.1f} min. Turntable: {gif.name}",
    ]
    (out / "summary.md").write_text("\n".join(summary) + "\n")
    print("\n".join(summary))
    return metrics
