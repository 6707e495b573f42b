"""The README's quality claims, checked on the shipped weights (reduced: few identities, few steps)."""

import pytest

from pe3d.config import load_structured
from pe3d.models.editor import load_editor
from pe3d.models.prior import load_prior
from pe3d.recipes.editing import AdaptFitConfig, fit_adapt
from pe3d.recipes.eval_editor import evaluate_editor
from pe3d.recipes.eval_prior import evaluate_prior
from pe3d.adapters import load_adapter_into
from pe3d.styles.discovery import load_named_style
from pe3d.weights import shipped_path


def test_shipped_prior_beats_the_no_3d_baseline_at_every_tested_view():
    scores = evaluate_prior(load_prior(shipped_path("prior_mini")), count=4)
    for view in ("yaw-30", "yaw+30", "pitch-15", "pitch+15"):
        s = scores[view]
        assert s.psnr > s.baseline_psnr + 3.0, (view, s)
        assert s.depth_error < s.baseline_depth_error, (view, s)


@pytest.mark.slow
def test_adaptation_to_an_unseen_style_improves_edit_and_novel_view_fidelity(tmp_path):
    spec = load_named_style("golden_statue")
    before = evaluate_editor(load_editor(shipped_path("editor_mini")), spec, count=2)
    cfg = load_structured(
        AdaptFitConfig,
        [],
        [
            "style=golden_statue", f"pairs_dir={tmp_path / 'pairs'}", f"out={tmp_path / 'run'}",
            f"export={tmp_path / 'adapter.safetensors'}", "trainer.max_steps=40", "trainer.max_minutes=0",
            "trainer.progress=false", "trainer.logger=none",
        ],
    )
    editor = load_editor(shipped_path("editor_mini"))
    load_adapter_into(editor, fit_adapt(cfg))
    after = evaluate_editor(editor, spec, count=2)
    assert after.edit_psnr > before.edit_psnr + 0.5, (before, after)
    assert after.novel_psnr > before.novel_psnr + 0.5, (before, after)
