"""Is the quality benchmark's ceiling converged? The same per-identity triplane fit under several schedules.

    python tools/ceiling_convergence.py [--identities 2] [--settings "0.03x500" "0.06x2000" "0.03x3000"] \
        [--frontal-perspective 2.7]

``pe3d bench quality``'s ceiling (:func:`pe3d.bench.quality.fit_ceiling`) fits one triplane per held-out
identity to 13 ground-truth views (the 5 tested ones and 8 random cameras) with the shipped prior's decoder and
renderer frozen, starting from the prior's own triplane (the ``prior`` row: the unedited identity). Each setting
``LRxSTEPS`` runs the whole cosine schedule (no early stop) with a deterministic check every ``--check-every``
steps (mean PSNR over the 13 fitted views, eval renders); ``loss-stop`` runs the benchmark's settings before
2026-12-05 (lr 0.03, at most 500 steps, stopped when the training loss of the last 60 steps fell by < 0.2 %).

Prints the PSNR at the 5 tested views at every check and at the end, the mean over the 13 fitted views at every
check, and a Markdown table of the final PSNR at the tested views. The fits
share the benchmark's identities and cameras; their random views and ray offsets come from a fixed seed of their
own, so they differ from the benchmark's own fit by the run-to-run spread of a fit (about 0.1 dB).

``--frontal-perspective D`` fits and scores with the renderer reading the frontal plane in perspective from the
frontal camera at distance ``D`` (``RayMarchOptions.frontal_perspective``; the shipped decoder, trained without it,
stays frozen); the fit still starts from the prior's triplane, which that renderer reads a little differently.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import torch

from pe3d.bench.config import CeilingConfig, QualityBenchmark
from pe3d.bench.quality import _fit_cameras, _first, _views, fit_ceiling, world_config
from pe3d.evaluation import PerViewScores, build_world_eval_set, reconstruct, render_views
from pe3d.models.prior import load_prior
from pe3d.weights import shipped_path

LOSS_STOP = "loss-stop"
"""The benchmark's ceiling until 2026-12-05: lr 0.03, at most 500 steps, a noisy-loss early stop."""


def _setting(name: str, check_every: int) -> CeilingConfig:
    base = CeilingConfig(fit_views=8, views_per_step=3, ray_stride=2)
    if name == LOSS_STOP:
        return replace(base, max_steps=500, lr=0.03, patience=60, tolerance=0.002)
    try:
        lr, steps = name.split("x")
        return replace(base, lr=float(lr), max_steps=int(steps), check_every=check_every, min_gain_db=-1e9)
    except ValueError as error:
        raise SystemExit(f"--settings: expected '{LOSS_STOP}' or LRxSTEPS (e.g. 0.06x2000), got {name!r}") from error


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--identities", type=int, default=2)
    parser.add_argument("--settings", nargs="+", default=[LOSS_STOP, "0.06x2000", "0.03x3000"])
    parser.add_argument("--check-every", type=int, default=250)
    parser.add_argument("--frontal-perspective", type=float, default=0.0,
                        help="read the frontal plane in perspective from this camera distance (0: orthographic)")
    args = parser.parse_args()
    settings = {name: _setting(name, args.check_every) for name in args.settings}
    bench = QualityBenchmark(styles=[], identities=max(args.identities, 2), progress=False)
    bench.ceiling = replace(bench.ceiling, identities=args.identities)
    prior = load_prior(shipped_path("prior_mini")).eval()
    prior.renderer.config.ray_march = replace(prior.renderer.config.ray_march, frontal_perspective=args.frontal_perspective)
    fit_cams = _fit_cameras(bench, torch.Generator().manual_seed(bench.world_seed))
    data = build_world_eval_set(world_config(bench, []), extra_cameras=fit_cams)
    names = list(_views(bench))
    targets = {name: _first(view, args.identities) for name, view in data.truth.views.items()}
    with torch.no_grad():
        init = reconstruct(prior, data)[: args.identities]

    def tested_psnr(planes: torch.Tensor) -> list[float]:
        with torch.no_grad():
            scores = PerViewScores(names)
            scores.update(render_views(prior.render, planes, targets, names, bench.resolution), targets)
            per_view = scores.compute()
        return [per_view[v]["psnr"] for v in names]

    rows = {"prior (feed-forward, no fit)": (tested_psnr(init), 0, 0.0)}
    for name, cfg in settings.items():
        start = time.perf_counter()
        torch.manual_seed(1)  # the renderer's sample jitter while fitting draws from the global generator

        def report(step: int, planes: torch.Tensor, name: str = name) -> None:
            values = tested_psnr(planes)
            print(f"{name}: step {step}: tested views " + " / ".join(f"{v:.2f}" for v in values)
                  + f" (mean {sum(values) / len(values):.2f})", flush=True)

        fit = fit_ceiling(prior.renderer, init, targets, cfg, torch.Generator().manual_seed(1), on_check=report)
        minutes = (time.perf_counter() - start) / 60
        for step, value in fit.history:
            print(f"{name}: step {step}: mean PSNR over the 13 fitted views {value:.2f}", flush=True)
        rows[name] = (tested_psnr(fit.planes), fit.steps, minutes)
        print(f"{name}: {fit.steps} steps, {minutes:.1f} min, tested views "
              + " / ".join(f"{v:.2f}" for v in rows[name][0]), flush=True)
    print(f"\n| fit ({args.identities} held-out identities) | steps | minutes | " + " | ".join(names) + " | mean |")
    print("|---|---|---|" + "---|" * (len(names) + 1))
    for name, (values, steps, minutes) in rows.items():
        print(f"| {name} | {steps} | {minutes:.1f} | " + " | ".join(f"{v:.2f}" for v in values)
              + f" | {sum(values) / len(values):.2f} |")


if __name__ == "__main__":
    main()
