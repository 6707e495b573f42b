"""What limits the representation's ceiling: per-identity triplane fits with one thing changed at a time.

    python tools/ceiling_study.py [--identities 2] [--max-steps 500] [--grid FILE.png]

``pe3d bench quality``'s ceiling fits one triplane per held-out identity to 13 ground-truth views (8 random
cameras + the 5 tested ones) with the shipped decoder and renderer frozen; its PSNR at the tested views
(which it was fitted to) is the best the representation does. Variants, fitted the same way
(:func:`pe3d.bench.quality.fit_ceiling`, the benchmark's settings, the same cameras and seed):

* ``shipped``: as the benchmark (64² planes, frozen decoder, box 0.633);
* ``128² planes``: the planes upsampled to 128² first (is the plane resolution the limit?);
* ``+ decoder``: the decoder MLP fitted too (is the decoder, trained with the encoder, the limit?);
* ``box 0.76``: a 20 % larger triplane box, the planes resampled into it (is the box edge the limit,
  e.g. the shirt below it at pitch +15°?);
* ``48 + 48 samples``: four times the ray samples of the shipped 12 + 12, fitted and rendered (is the
  volume sampling of the sharp ground-truth surfaces the limit?);
* ``3x longer fit``: ``--max-steps`` x 3, never stopped early (is the benchmark's fit converged?);
* ``box 0.76 + 128² planes``: both (the same cell size as the shipped planes, in a larger box).

``--variants`` picks some of them by name; ``--grid`` writes the first identity's renders (ground truth,
the prior, each variant) at the tested views.

Prints PSNR per tested view for each variant (the prior's own reconstruction first, for reference).
"""

import argparse
import copy
from dataclasses import replace

import torch
import torch.nn.functional as F

from pe3d.bench.config import CeilingConfig, QualityBenchmark
from pe3d.bench.plots import GridRow, image_grid
from pe3d.bench.quality import _fit_cameras, _first, _views, fit_ceiling, world_config
from pe3d.evaluation import PerViewScores, build_world_eval_set, reconstruct, render_views
from pe3d.models.prior import load_prior
from pe3d.weights import shipped_path


VARIANTS = ["shipped", "128² planes", "+ decoder", "box 0.76", "48 + 48 samples", "3x longer fit", "box 0.76 + 128² planes"]


def _resample_box(planes: torch.Tensor, old_box: float, new_box: float) -> torch.Tensor:
    """Planes ``[N,3,C,R,R]`` covering ``old_box`` resampled to cover ``new_box`` (zeros outside the old box)."""
    n, p, c, r, _ = planes.shape
    axis = (torch.arange(r) + 0.5) / r * 2 - 1  # cell centres in [-1, 1] of the new box
    grid = torch.stack(torch.meshgrid(axis, axis, indexing="xy"), -1) * (new_box / old_box)
    flat = planes.reshape(n * p, c, r, r)
    out = F.grid_sample(flat, grid[None].expand(n * p, -1, -1, -1), mode="bilinear", padding_mode="zeros", align_corners=False)
    return out.reshape(n, p, c, r, r)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--identities", type=int, default=2)
    parser.add_argument("--max-steps", type=int, default=500)
    parser.add_argument("--variants", nargs="+", default=VARIANTS, choices=VARIANTS)
    parser.add_argument("--grid", default="", help="PNG of the first identity's renders per fit and view")
    args = parser.parse_args()
    bench = QualityBenchmark(styles=[], identities=max(args.identities, 2), progress=False)
    bench.ceiling = replace(CeilingConfig(fit_views=8, views_per_step=3, ray_stride=2, lr=0.03, patience=60, tolerance=0.002),
                            max_steps=args.max_steps, identities=args.identities)
    prior = load_prior(shipped_path("prior_mini")).eval()
    generator = torch.Generator().manual_seed(bench.world_seed)
    fit_cams = _fit_cameras(bench, generator)
    data = build_world_eval_set(world_config(bench, []), extra_cameras=fit_cams)
    names = list(_views(bench))
    k = args.identities
    targets = {name: _first(view, k) for name, view in data.truth.views.items()}
    with torch.no_grad():
        init = reconstruct(prior, data)[:k]
    box = prior.renderer.config.ray_march.box_warp

    def variant(name: str):
        renderer = copy.deepcopy(prior.renderer)
        planes, extra = init, []
        if name.endswith("128² planes"):
            planes = F.interpolate(init.flatten(0, 1), scale_factor=2, mode="bilinear", align_corners=False).unflatten(0, init.shape[:2])
        if name == "+ decoder":
            extra = list(renderer.decoder.parameters())
        if name.startswith("box 0.76"):
            renderer.config.ray_march = replace(renderer.config.ray_march, box_warp=box * 1.2)
            planes = _resample_box(planes, box, box * 1.2)
        if name == "48 + 48 samples":
            renderer.config.ray_march = replace(renderer.config.ray_march, depth_resolution=48, depth_resolution_importance=48)
        return renderer, planes, extra

    rows = {}
    grid = [GridRow("ground truth", [targets[v].image[0] for v in names])]
    with torch.no_grad():
        scores = PerViewScores(names)
        renders = render_views(prior.render, init, targets, names, bench.resolution)
        scores.update(renders, targets)
        rows["prior (feed-forward)"] = (scores.compute(), 0)
        grid.append(GridRow("prior", [renders[v].image[0] for v in names]))
    for name in args.variants:
        renderer, planes, extra = variant(name)
        for param in renderer.parameters():
            param.requires_grad_(False)
        for param in extra:
            param.requires_grad_(True)
        fit = bench.ceiling
        if name == "3x longer fit":
            fit = replace(fit, max_steps=3 * fit.max_steps, patience=3 * fit.max_steps)  # the early stop needs 2 x patience steps
        torch.manual_seed(1)  # the renderer's sample jitter while fitting draws from the global generator
        fitted, steps = fit_ceiling(renderer, planes, targets, fit, torch.Generator().manual_seed(1), extra)[:2]
        with torch.no_grad():
            scores = PerViewScores(names)
            render = lambda p, labels, resolution=None, renderer=renderer: renderer(p, labels, resolution=resolution)  # noqa: E731
            renders = render_views(render, fitted, targets, names, bench.resolution)
            scores.update(renders, targets)
        rows[name] = (scores.compute(), steps)
        grid.append(GridRow(name, [renders[v].image[0] for v in names]))
        print(f"{name}: {steps} steps, " + " / ".join(f"{rows[name][0][v]['psnr']:.2f}" for v in names), flush=True)
    if args.grid:
        print("grid:", image_grid(grid, names, args.grid, cell=128, title="per-identity fits (13 views) at the tested views"))
    print(f"\n| fit ({k} held-out identities, 13 views) | steps | " + " | ".join(names) + " |")
    print("|---|---|" + "---|" * len(names))
    for name, (per_view, steps) in rows.items():
        print(f"| {name} | {steps} | " + " | ".join(f"{per_view[v]['psnr']:.2f}" for v in names) + " |")


if __name__ == "__main__":
    main()
