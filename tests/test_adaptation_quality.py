"""Default ``pe3d fit adapt`` (10 pairs, 80 steps) on hand-written styles with their own
``generator.py`` and on the shipped golden_statue (never distilled on): the adapted editor comes close
to its two-stage teacher against the true targets, also when the style recolours the background (the
renderer reads backgrounds from the triplane)."""

from __future__ import annotations

import time
from functools import partial
from pathlib import Path

import pytest
import torch

from pe3d.adapters import load_adapter_into
from pe3d.config import load_structured
from pe3d.evaluation import (
    PerViewScores,
    WorldEvalConfig,
    build_world_eval_set,
    edit_with_prompt,
    edited_targets,
    model_inputs,
    render_views,
    resize_images,
)
from pe3d.models.editor import load_editor
from pe3d.models.prior import load_prior
from pe3d.recipes.editing import AdaptFitConfig, fit_adapt
from pe3d.styles.discovery import import_style_plugin, load_named_style
from pe3d.weights import shipped_path
from pe3d.world import apply_style_filter

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "styles"
TOLERANCE_DB = {"green_mono": 0.5, "green_mono_bg": 1.0, "golden_statue": 0.5}
"""How far below its teacher the adapted editor may be: the issue's targets (0.5 dB; 1 dB for a style that
also recolours the background)."""
IDENTITIES = 8
"""Held-out identities scored per style: the benchmark's and the README's 8. Until 2026-12-04 the fixtures
were scored on the first 4 only, a small sample that overstated green_mono's gap to its teacher: 0.63 dB
on those 4, 0.37 on 8 and 0.41 on 24 held-out identities for the same adapter (green_mono_bg: 0.44 on 4,
0.04 on 8)."""


def _edit_fn(style: str):
    """``edit(rgb [B,3,R,R], parts [B,R,R])``: a fixture's own generator.py, imported the way discovery
    imports it (registered in sys.modules, which its dataclasses need), or a shipped style's world filter."""
    spec = load_named_style(style)
    if not (FIXTURES / style).is_dir():
        return partial(apply_style_filter, spec.params["filter"])
    return partial(_recolour, import_style_plugin(FIXTURES / style).recolour, spec.params.get("background"))


@torch.no_grad()
def renders(style: str, editor, prior, identities: int = IDENTITIES):
    """``(targets, names, ours, teacher)``: :mod:`pe3d.evaluation`'s held-out set of ``identities`` with the style's
    edit (:func:`_edit_fn`) of its ground truth at the input and yaw +-30 views (``targets``, view ``names``), and
    the renders there (name -> ``RenderOutput``) of ``editor`` under the style's first test prompt (``ours``) and
    of the teacher, ``prior`` on the recoloured input (``teacher``). Also used by ``tools/adaptation_sweep.py``."""
    spec = load_named_style(style)
    recolour = _edit_fn(style)
    data = build_world_eval_set(WorldEvalConfig(identities=identities, styles=[], novel_yaws_deg=[-30.0, 30.0], novel_pitches_deg=[]))
    targets = edited_targets(data.truth, recolour, style)
    names = data.plan.scored
    planes = edit_with_prompt(editor.eval(), model_inputs(data, editor.cfg.prior.encoder.image_size), spec.prompts.test[0])
    ours = render_views(editor.render, planes, targets.views, names, data.resolution)
    planes = prior(resize_images(recolour(data.rgb, data.parts), prior.cfg.encoder.image_size))
    return targets, names, ours, render_views(prior.render, planes, targets.views, names, data.resolution)


def _scores(style: str, editor, prior, identities: int = IDENTITIES) -> dict:
    """PSNR over ``identities`` held-out identities at the input and yaw +-30 views of the adapted editor
    (``ours``) and of the teacher (prior on the recoloured input) against the recoloured ground truth,
    background included: the mean over the views, and per view under ``views`` (name -> ``{"ours",
    "teacher"}``). :func:`renders`, scored as ``evaluate_editor`` scores."""
    targets, names, our_renders, teacher_renders = renders(style, editor, prior, identities)
    ours, teacher = PerViewScores(names), PerViewScores(names)
    ours.update(our_renders, targets.views)
    teacher.update(teacher_renders, targets.views)
    views = {name: {"ours": o["psnr"], "teacher": t["psnr"]} for (name, o), t in zip(ours.compute().items(), teacher.compute().values())}
    return {"ours": sum(v["ours"] for v in views.values()) / len(names),
            "teacher": sum(v["teacher"] for v in views.values()) / len(names), "views": views}


def _recolour(fn, background, rgb, parts):
    return fn(rgb, parts, background)


def adapt_and_score(style: str, work: Path, overrides=(), identities: int = IDENTITIES, inspect=None) -> tuple[dict, dict, float]:
    """``pe3d fit adapt`` of ``style`` with its defaults plus ``overrides`` (AdaptFitConfig keys), writing
    under ``work``; returns :func:`_scores` (on ``identities`` held-out identities) of the base editor and
    of the adapted one, and the minutes ``fit_adapt`` took (pair generation and export included). Also
    used by ``tools/adaptation_sweep.py``, which passes ``inspect(adapted_editor, prior)`` to look further."""
    cfg = load_structured(AdaptFitConfig, [], [
        f"style={style}", f"pairs_dir={work / 'pairs'}", f"out={work / 'run'}",
        f"export={work / 'adapter.safetensors'}", "trainer.progress=false", "trainer.logger=none", *overrides,
    ])
    started = time.perf_counter()
    adapter = fit_adapt(cfg)
    minutes = (time.perf_counter() - started) / 60
    editor = load_editor(cfg.base or shipped_path("editor_mini")).eval()
    prior = load_prior(cfg.prior or shipped_path("prior_mini")).eval()
    before = _scores(style, editor, prior, identities)
    load_adapter_into(editor, adapter)
    after = _scores(style, editor, prior, identities)
    if inspect is not None:
        inspect(editor, prior)
    return before, after, minutes


@pytest.mark.slow
@pytest.mark.parametrize("style", ["green_mono", "green_mono_bg", "golden_statue"])
def test_default_adaptation_reaches_its_teacher_quickly(style, tmp_path, monkeypatch):
    monkeypatch.setenv("PE3D_STYLE_PATH", str(FIXTURES))
    monkeypatch.chdir(tmp_path)
    before, after, minutes = adapt_and_score(style, tmp_path)  # the style's defaults: 10 pairs, 80 steps
    print(f"{style}: base {before['ours']:.2f} dB, adapted {after['ours']:.2f} dB, teacher {after['teacher']:.2f} dB, {minutes:.2f} min")
    assert after["ours"] > before["ours"] + 2.0, (before, after)
    assert after["ours"] >= after["teacher"] - TOLERANCE_DB[style], (after, minutes)
    assert minutes < 1.5  # 80 steps, pair generation and export: 0.4-0.7 min on the 2-core CPUs measured
