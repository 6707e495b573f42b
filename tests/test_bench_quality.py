"""``pe3d bench quality`` (CI size): the table has a row per (style, method), every number is finite,
the converged ceiling beats the triplane it starts from, and the grid pictures are written."""

from __future__ import annotations

import math

import torch

from pe3d.bench import run_benchmark
from pe3d.bench.config import CeilingConfig
from pe3d.bench.quality import fit_ceiling
from pe3d.bench.report import read_csv_rows
from pe3d.metrics import build_world_targets
from pe3d.metrics.ground_truth import psnr
from pe3d.models.prior import load_prior
from pe3d.weights import shipped_path


def test_ci_quality_benchmark_table_and_pictures(tmp_path):
    run = run_benchmark("ci/quality", out=tmp_path)
    table = run.output.tables[0]
    assert table.unexplained_nonfinite() == []
    rows = read_csv_rows(tmp_path / "results.csv")
    methods = {(r["style"], r["method"]) for r in rows}
    for method in ("ours (train prompt)", "ours (test prompt)", "two-stage", "no edit", "ceiling (1 ids)"):
        assert ("bronze_statue", method) in methods
    assert ("prior", "prior (reconstruction)") in methods
    for row in rows:
        assert math.isfinite(float(row["psnr_input"])) and 5.0 < float(row["psnr_input"]) < 60.0
    assert (tmp_path / "quality_bronze_statue.png").is_file() and (tmp_path / "quality_prior.png").is_file()


def test_ceiling_fit_improves_on_the_prior_and_stops_when_converged():
    prior = load_prior(shipped_path("prior_mini")).eval()
    views = {"input": (0.0, 0.0), "yaw+30": (30.0, 0.0), "fit0": (-20.0, 5.0)}
    targets = build_world_targets(None, 1, 32, 0, views)
    with torch.no_grad():
        start = prior(torch.nn.functional.interpolate(targets.views["input"].source, size=64, mode="bilinear"))
    cfg = CeilingConfig(views_per_step=3, ray_stride=2, max_steps=60, patience=10, tolerance=0.5, lr=0.03)
    planes, steps = fit_ceiling(prior.renderer, start, targets.views, cfg, torch.Generator().manual_seed(0))
    assert steps < 60  # a 50 % tolerance stops it early
    with torch.no_grad():
        for name, view in targets.views.items():
            before = psnr(prior.render(start, view.labels, resolution=32).image, view.image)
            after = psnr(prior.render(planes, view.labels, resolution=32).image, view.image)
            assert after > before, (name, before, after)
