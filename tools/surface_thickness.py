"""Is the prior's field softer than a converged fit's? The depth over which each ray's opacity builds up.

    python tools/surface_thickness.py [--prior FILE] [--identities 1] [--samples 400]

For the first ``--identities`` held-out identities of ``pe3d eval prior``, fits the quality benchmark's converged
ceiling (one triplane per identity, the shipped decoder and renderer frozen, ``benchmarks/quality.yaml``'s settings)
and marches the prior's and the ceiling's fields along the rays of the true foreground with ``--samples`` evenly
spaced samples (far finer than a render's): a ray's *thickness* is the depth between the points where its
transmittance falls below 0.9 and below 0.1 (world units; a plane cell of the mini prior is 0.0198). Prints the
median and mean over the rays that end opaque (> 0.95) at the input view and yaw +30, with each field's PSNR, ring
PSNR and outline errors (:func:`pe3d.metrics.silhouette.outline_errors`) there. Equal thicknesses with a wider
outline say the prior's outline is misplaced, not a softer surface seen at a grazing angle.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import torch

from pe3d.bench.config import load_benchmark
from pe3d.bench.quality import _fit_cameras, _first, fit_ceiling, world_config
from pe3d.evaluation import build_world_eval_set, reconstruct
from pe3d.geometry.rays import sample_rays
from pe3d.metrics.ground_truth import psnr
from pe3d.metrics.silhouette import outline_errors, split_ring_psnr
from pe3d.models.prior import load_prior
from pe3d.rendering.volume import compositing_weights, query_field, sample_stratified
from pe3d.weights import resolve_weights


def thickness(renderer, planes: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor, samples: int,
              resolution: int) -> torch.Tensor:
    """Thickness (world units) of every true-foreground ray of ``planes`` at ``labels`` that ends opaque."""
    options = renderer.config.ray_march
    origins, directions = sample_rays(labels, resolution)
    with torch.no_grad():
        depths = sample_stratified(origins, directions, options.ray_start, options.ray_end, samples, False)
        _, sigma = query_field(lambda c, d: renderer.query_field(planes, c, d), origins, directions, depths)
        weights = compositing_weights(sigma, depths, options.density_activation)[..., 0]  # [B, N, S-1]
    transmittance = 1 - torch.cumsum(weights, dim=-1)
    ends = depths[..., 1:, 0]

    def first_below(level: float) -> torch.Tensor:
        return ends.gather(-1, (transmittance < level).float().argmax(-1, keepdim=True))[..., 0]

    keep = mask.reshape(mask.shape[0], -1).bool() & (weights.sum(-1) > 0.95)
    return (first_below(0.1) - first_below(0.9))[keep]


def main() -> None:
    """Print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prior", default="", help="prior .safetensors (default: the shipped mini prior)")
    parser.add_argument("--identities", type=int, default=1)
    parser.add_argument("--samples", type=int, default=400, help="samples per ray of the thickness march")
    args = parser.parse_args()
    bench = load_benchmark("quality", [f"identities={args.identities}", "styles=[]"])
    prior = load_prior(resolve_weights(args.prior, "prior_mini")).eval()
    generator = torch.Generator().manual_seed(bench.world_seed)
    data = build_world_eval_set(world_config(bench, []), extra_cameras=_fit_cameras(bench, generator))
    with torch.no_grad():
        planes = reconstruct(prior, data)
    targets = {name: _first(view, args.identities) for name, view in data.truth.views.items()}
    start = time.perf_counter()
    fit = fit_ceiling(prior.renderer, planes, targets, replace(bench.ceiling, identities=args.identities), generator)
    print(f"ceiling: {fit.steps} steps, {(time.perf_counter() - start) / 60:.1f} min; {args.identities} identities\n")
    prior.renderer.eval()
    print("| view | field | thickness median / mean (world units) | PSNR (ring) | outline too wide / too narrow (%) |")
    print("|---|---|---|---|---|")
    for name in ("input", "yaw+30"):
        view = targets[name]
        for label, field in (("prior", planes), ("ceiling", fit.planes.detach())):
            depth = thickness(prior.renderer, field, view.labels, view.mask, args.samples, bench.resolution)
            with torch.no_grad():
                render = prior.render(field, view.labels, resolution=bench.resolution)
            image = render.image.clamp(0, 1)
            ring = split_ring_psnr(image, view.image, view.mask).ring_psnr
            outline = outline_errors(render.weights, view.mask)
            print(f"| {name} | {label} | {float(depth.median()):.4f} / {float(depth.mean()):.4f} | "
                  f"{float(psnr(image, view.image).mean()):.2f} ({ring:.2f}) | "
                  f"{100 * outline.too_wide:.2f} / {100 * outline.too_narrow:.2f} |")


if __name__ == "__main__":
    main()
