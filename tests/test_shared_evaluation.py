"""One evaluation code path (issue 12): ``pe3d demo``, ``pe3d eval`` and ``pe3d bench`` give the same
numbers for the same inputs, resize the same way, and time with the same helper.

Shipped weights, 2 held-out identities, golden_statue's first test prompt.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from pe3d.bench import load_benchmark
from pe3d.cli import main
from pe3d.evaluation import build_world_eval_set, resize_images
from pe3d.models.editor import load_editor
from pe3d.models.prior import load_prior
from pe3d.weights import shipped_path

IDENTITIES = 2
STYLE = "golden_statue"
TOL = 1e-6


def _cli_json(args: list[str], out: Path, name: str) -> dict:
    assert main([*args, "--out", str(out)]) == 0
    return json.loads((out / name).read_text())


def _quality_rows(tmp_path: Path, resolution: int, styles: list[str]) -> dict:
    from pe3d.bench.quality import run_quality

    cfg = load_benchmark("quality", [f"identities={IDENTITIES}", f"resolution={resolution}", f"styles={styles}",
                                     "ceiling.enabled=false", "grid_identities=1", "progress=false"])
    table = run_quality(cfg, tmp_path).tables[0]
    return {(row["style"], row["method"]): row for row in table.rows}


def _adaptation_world(resolution: int):
    return load_benchmark("adaptation", [f"world.identities={IDENTITIES}", f"world.resolution={resolution}"]).world


def _bench_untimed_suite(editor, data) -> dict:
    """The path of table1 / ablation: methods, requests and a MetricSuite (no timer, faces or CLIP)."""
    from pe3d.bench.config import MetricsConfig
    from pe3d.bench.evaluation import MetricSuite, score_world_case
    from pe3d.bench.methods import OursMethod

    suite = MetricSuite(MetricsConfig(), faces=False, clip=False, timing=False)
    for case in data.cases:
        score_world_case([(OursMethod(editor), suite)], case, data)
    return suite.results()


def _close(a: float, b: float, what: str) -> None:
    assert math.isfinite(a) and math.isfinite(b), what
    assert abs(a - b) <= TOL, f"{what}: {a} != {b}"


@pytest.fixture(scope="module")
def weights():
    return shipped_path("prior_mini"), shipped_path("editor_mini")


def test_demo_eval_and_bench_agree_on_the_same_inputs(tmp_path, monkeypatch, weights):
    """The prior's and the base editor's scores in ``pe3d demo``, ``pe3d eval prior`` / ``pe3d eval editor``
    (through the CLI) and the benchmarks (quality, adaptation, the table1/ablation suite) are the same numbers."""
    import pe3d.recipes.editing as editing
    from pe3d.adapters import adapter_parameter_names, save_adapter
    from pe3d.bench.adaptation import _score
    from pe3d.models.checkpoints import model_hash
    from pe3d.recipes.demo import run_demo

    prior_path, editor_path = weights

    def unchanged_adapter(cfg, *args, **kwargs):  # adaptation that trains nothing: "after" must equal "before"
        editor = load_editor(editor_path)
        names = adapter_parameter_names(editor, editor.adaptation_parameters())
        return save_adapter(Path(cfg.export), editor, names, STYLE, model_hash(editor))

    monkeypatch.setattr(editing, "fit_adapt", unchanged_adapter)
    monkeypatch.setattr("pe3d.recipes.demo.turntable_cameras", lambda: _frontal().repeat(2, 1))
    demo = run_demo(tmp_path / "demo", style=STYLE, eval_count=IDENTITIES, refine_steps=10)
    # the turntable of the one pass, and the same edit refined to the input (pe3d edit's default, here 10 steps)
    from PIL import Image

    frames = [np.asarray(Image.open(demo[key]).convert("RGB"), dtype=np.float32) for key in ("turntable", "turntable_refined")]
    assert frames[0].shape == frames[1].shape and np.abs(frames[0] - frames[1]).mean() > 0.5
    assert "turntable_refined.gif: refined to the input in 10 steps" in (tmp_path / "demo" / "summary.md").read_text()

    cli_prior = _cli_json(["eval", "prior", "--weights", str(prior_path), "--count", str(IDENTITIES), "--visibility",
                           "--silhouette"],
                          tmp_path / "ep", "prior_quality.json")
    cli_editor = _cli_json(["eval", "editor", "--weights", str(editor_path), "--style", STYLE, "--count", str(IDENTITIES)],
                           tmp_path / "ee", "editor_quality.json")
    quality = _quality_rows(tmp_path / "quality", 64, [STYLE])
    editor = load_editor(editor_path)
    data = build_world_eval_set(_adaptation_world(64), [], styles=[STYLE])
    adaptation = _score(editor, data, None)
    suite = _bench_untimed_suite(editor, data)

    prior_row = quality[("prior", "prior (reconstruction)")]
    for view, scores in demo["prior"].items():
        _close(scores["psnr"], cli_prior[view]["psnr"], f"prior {view}: demo vs eval")
        _close(scores["psnr"], prior_row[f"psnr_{view}"], f"prior {view}: demo vs bench quality")
        _close(scores["depth_error"], cli_prior[view]["depth_error"], f"prior depth {view}: demo vs eval")
        _close(scores["baseline_psnr"], cli_prior[view]["baseline_psnr"], f"baseline {view}: demo vs eval")
    _close(demo["prior"]["input"]["ssim"], prior_row["ssim_input"], "prior SSIM: demo vs bench quality")
    # --visibility adds the split without moving the scores: nothing is hidden at the input view, the torso
    # below the input frame is at pitch +15 (pe3d.metrics.visibility)
    assert cli_prior["input"]["hidden_share"] == 0.0 and cli_prior["pitch+15"]["hidden_share"] > 0.05
    assert 0.0 < cli_prior["pitch+15"]["hidden_error_share"] < 1.0
    assert cli_prior["pitch+15"]["hidden_psnr"] < cli_prior["pitch+15"]["seen_psnr"]
    # --silhouette adds the ring split (pe3d.metrics.silhouette) at every view
    for view, scores in cli_prior.items():
        assert 0.02 < scores["ring_share"] < 0.3 and 0.0 < scores["ring_error_share"] < 1.0, view
        assert math.isfinite(scores["ring_psnr"]) and math.isfinite(scores["off_ring_psnr"]), view
        assert 0.0 <= scores["outline_too_wide"] < 1.0 and 0.0 <= scores["outline_too_narrow"] < 1.0, view

    before, after = demo["editor_before_adapt"], demo["editor_after_adapt"]
    ours_test = quality[(STYLE, "ours (test prompt)")]
    for key in ("edit_l1", "edit_psnr", "novel_psnr", "edit_ssim", "novel_ssim", "novel_depth_error"):
        _close(before[key], cli_editor[key], f"editor {key}: demo vs eval")
        _close(before[key], after[key], f"editor {key}: demo before vs after an adapter that changes nothing")
    for key in ("edit_psnr", "novel_psnr", "novel_depth_error"):
        _close(before[key], adaptation[key], f"editor {key}: demo vs bench adaptation")
    for key in ("edit_psnr", "edit_ssim", "novel_psnr", "novel_ssim", "novel_depth_error"):
        _close(before[key], suite[key], f"editor {key}: demo vs bench table1/ablation suite")
    _close(before["edit_psnr"], ours_test["psnr_input"], "editor input PSNR: demo vs bench quality (test prompt)")
    _close(before["novel_psnr"], ours_test["psnr_novel"], "editor novel PSNR: demo vs bench quality (test prompt)")
    _close(1.0 - before["edit_ssim"] * 0.2 - before["novel_ssim"] * 0.8, adaptation["distance"], "1 - SSIM distance")


def _frontal() -> torch.Tensor:
    from pe3d.geometry import label_from_yaw_pitch

    return label_from_yaw_pitch([0.0], [0.0])


def test_every_path_resizes_the_input_with_the_one_rule(tmp_path, weights):
    """At a world resolution other than the models' 64² input (40² and 72²), every path feeds the
    models ``resize_images(frontal render, 64)`` and still agrees; a path with another resampling
    (bilinear vs area, antialiased or not) would move these numbers."""
    from pe3d.bench.adaptation import _score
    from pe3d.pipeline import EditPipeline

    prior_path, editor_path = weights
    for resolution in (40, 72):
        seen: dict[str, list[torch.Tensor]] = {}
        prior, editor = load_prior(prior_path), load_editor(editor_path)
        _record(prior, "prior", seen)
        _record(editor, "editor", seen)
        data = build_world_eval_set(_adaptation_world(resolution), [], styles=[STYLE])
        expected = resize_images(data.rgb, 64)
        interpolate = torch.nn.functional.interpolate
        others = ([interpolate(data.rgb, size=(64, 64), mode=m) for m in ("area", "bicubic")] if resolution < 64 else
                  [interpolate(data.rgb, size=(64, 64), mode="bilinear", antialias=a) for a in (True, False)])
        assert all((expected - other).abs().max() > 1e-2 for other in others), "another resampling rule must show"

        from pe3d.evaluation import evaluate_editor, evaluate_prior

        evaluate_prior(prior, data)
        shared = evaluate_editor(editor, data)
        bench = _score(editor, data, None)
        pipe = EditPipeline(editor)
        pipe(data.rgb, prompt=data.cases[0].prompt, cameras=data.labels[:1], resolution=resolution)
        assert len(seen["prior"]) == 1 and len(seen["editor"]) >= 3
        for name, images in seen.items():
            for image in images:
                assert torch.equal(image, expected), f"{name} got another resize at {resolution}²"
        _close(shared.edit_psnr, bench["edit_psnr"], f"edit PSNR at {resolution}²: shared vs bench adaptation")
        _close(shared.edit_psnr, _bench_untimed_suite(editor, data)["edit_psnr"], f"edit PSNR at {resolution}²: shared vs bench suite")
        if resolution != 40:
            continue
        cli = _cli_json(["eval", "editor", "--weights", str(editor_path), "--style", STYLE, "--count", str(IDENTITIES),
                         "--resolution", str(resolution)], tmp_path / f"ee{resolution}", "editor_quality.json")
        _close(shared.edit_psnr, cli["edit_psnr"], f"edit PSNR at {resolution}²: shared vs CLI")


def _record(model: torch.nn.Module, name: str, seen: dict) -> None:
    model.register_forward_pre_hook(lambda module, args: seen.setdefault(name, []).append(args[0].detach().clone()))


def test_the_one_resize_rule_on_non_square_images():
    """Shrinking both sides averages areas, growing interpolates bilinearly; a non-square image is resized
    per side (the pipeline uses the same function)."""
    from pe3d.pipeline import EditPipeline

    image = torch.rand(1, 3, 96, 128)
    small = resize_images(image, 32)
    assert small.shape == (1, 3, 32, 32)
    torch.testing.assert_close(small[..., :1, :1], image[..., :3, :4].mean(dim=(-2, -1), keepdim=True))
    wide = torch.rand(1, 3, 40, 80)  # one side grows, the other shrinks: bilinear
    torch.testing.assert_close(resize_images(wide, 64), torch.nn.functional.interpolate(wide, size=(64, 64), mode="bilinear",
                                                                                        align_corners=False))
    assert resize_images(image[..., :64, :64], 64) is not None and torch.equal(resize_images(small, 32), small)
    pipe = EditPipeline(load_editor(shipped_path("editor_mini")))
    assert torch.equal(pipe._prepare_image(wide), resize_images(wide, 64))
    assert torch.equal(pipe._prepare_image(image), resize_images(image, 64))


def test_table1_and_the_speed_bench_time_with_the_same_helper(tmp_path, monkeypatch):
    """A fake clock inside :mod:`pe3d.evaluation.timing` sets both latencies: a path that timed with
    its own clock would report real (different) milliseconds."""
    import pe3d.evaluation.timing as timing
    from pe3d.bench.config import MetricsConfig
    from pe3d.bench.evaluation import MetricSuite, edit_in_turns, world_requests
    from pe3d.bench.methods import OursMethod
    from pe3d.bench.speed import run_speed

    class Clock:
        now = 0.0

        def perf_counter(self) -> float:
            self.now += 0.0125  # each timed call spans two readings: 12.5 ms
            return self.now

    monkeypatch.setattr(timing, "time", Clock())
    data = build_world_eval_set(_adaptation_world(32), [], styles=[STYLE])
    suite = MetricSuite(MetricsConfig(), faces=False, clip=False, timing=True)
    method = OursMethod(load_editor(shipped_path("editor_mini")))
    planes = edit_in_turns([(method, suite)], [world_requests(method, data.cases[0], data)])[0]
    assert planes.shape[0] == IDENTITIES
    table1_ms = float(suite.timer.compute())
    speed = run_speed(load_benchmark("ci/speed", ["unet.enabled=false", "repeats=2"]), tmp_path).tables[0]
    speed_ms = [row["ms"] for row in speed.rows]
    assert table1_ms == pytest.approx(12.5) and speed_ms == pytest.approx([12.5, 12.5])
