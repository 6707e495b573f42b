"""Default ``pe3d fit adapt`` (10 pairs, the style's time budget) on hand-written styles with their own
``generator.py``: the adapted editor comes close to its two-stage teacher against the true targets,
also when the style recolours the background (the renderer reads backgrounds from the triplane)."""

from __future__ import annotations

import math
import time
from pathlib import Path

import pytest
import torch

from pe3d.adapters import load_adapter_into
from pe3d.config import load_structured
from pe3d.geometry import label_from_yaw_pitch
from pe3d.metrics.ground_truth import psnr
from pe3d.models.editor import Prompts, load_editor
from pe3d.models.prior import load_prior
from pe3d.recipes.editing import AdaptFitConfig, fit_adapt
from pe3d.styles.discovery import import_style_plugin, load_named_style
from pe3d.weights import shipped_path
from pe3d.world import WorldSplit, render_identities, sample_identity

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "styles"
VIEWS = {"input": (0.0, 0.0), "yaw-30": (-30.0, 0.0), "yaw+30": (30.0, 0.0)}
TOLERANCE_DB = {"green_mono": 0.5, "green_mono_bg": 1.0}
"""How far below its teacher the adapted editor may be (the issue's targets)."""


def _recolour_fn(style: str):
    # the style's own generator.py, imported the way discovery imports it (registered in sys.modules,
    # which its dataclasses need)
    return import_style_plugin(FIXTURES / style).recolour


@torch.no_grad()
def _scores(style: str, editor, prior, count: int = 4) -> dict[str, float]:
    """Mean PSNR over held-out identities and VIEWS of the adapted editor and of the teacher
    (prior on the recoloured input) against the recoloured ground truth, background included."""
    spec = load_named_style(style)
    recolour = _recolour_fn(style)
    background = spec.params.get("background")
    identities = [sample_identity(0, i) for i in WorldSplit().heldout_indices(count)]
    sums = {"ours": 0.0, "teacher": 0.0}
    inputs = render_identities(identities, label_from_yaw_pitch([0.0] * count, [0.0] * count), 64)
    edited_input = recolour(inputs.rgb, inputs.parts, background)
    ours_planes = editor(inputs.rgb, Prompts(texts=[spec.prompts.test[0]] * count))
    teacher_planes = prior(edited_input)
    for yaw, pitch in VIEWS.values():
        labels = label_from_yaw_pitch([math.radians(yaw)] * count, [math.radians(pitch)] * count)
        truth = render_identities(identities, labels, 64)
        target = recolour(truth.rgb, truth.parts, background)
        sums["ours"] += float(psnr(editor.render(planes=ours_planes, labels=labels, resolution=64).image, target).mean())
        sums["teacher"] += float(psnr(prior.render(teacher_planes, labels, resolution=64).image, target).mean())
    return {k: v / len(VIEWS) for k, v in sums.items()}


@pytest.mark.slow
@pytest.mark.parametrize("style", [
    pytest.param("green_mono", marks=pytest.mark.xfail(strict=False, reason=(
        "known gap (issue 13): in its 30 s the default adaptation moves the green-monochrome head only "
        "13.2 -> 13.5 dB against a 14.7 dB teacher; the same edit with a recoloured background is learned"))),
    "green_mono_bg",
])
def test_default_adaptation_reaches_its_teacher_quickly(style, tmp_path, monkeypatch):
    monkeypatch.setenv("PE3D_STYLE_PATH", str(FIXTURES))
    monkeypatch.chdir(tmp_path)
    cfg = load_structured(AdaptFitConfig, [], [
        f"style={style}", f"pairs_dir={tmp_path / 'pairs'}", f"out={tmp_path / 'run'}",
        f"export={tmp_path / 'adapter.safetensors'}", "trainer.progress=false", "trainer.logger=none",
    ])
    started = time.perf_counter()
    adapter = fit_adapt(cfg)  # the style's defaults: 10 pairs, its adapt.max_minutes
    minutes = (time.perf_counter() - started) / 60
    editor, prior = load_editor(shipped_path("editor_mini")).eval(), load_prior(shipped_path("prior_mini")).eval()
    before = _scores(style, editor, prior)
    load_adapter_into(editor, adapter)
    after = _scores(style, editor, prior)
    print(f"{style}: base {before['ours']:.2f} dB, adapted {after['ours']:.2f} dB, teacher {after['teacher']:.2f} dB, {minutes:.2f} min")
    assert after["ours"] > before["ours"] + 2.0, (before, after)
    assert after["ours"] >= after["teacher"] - TOLERANCE_DB[style], (after, minutes)
    assert minutes < 1.5  # the style's 0.5-minute budget plus pair generation and export
