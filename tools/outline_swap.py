"""How much of the prior's error is its outline? Its own colours composited with the true outline.

    python tools/outline_swap.py [--prior FILE] [--count 8] [--picture PNG]

On the held-out set of ``pe3d eval prior``, renders the prior at the five tested cameras, recovers its foreground
colour from each render (``(image - (1 - opacity) * 1) / opacity``: the world's background is white, and the prior's
field background is white there to within its own error) and composites it with (a) the **true** mask, (b) the
prior's own opacity thresholded at 0.5. Prints PSNR per view: as rendered, (a) and (b), with the silhouette-ring
PSNR (:mod:`pe3d.metrics.silhouette`) of each. (a) is what the prior would score with a perfect outline and its own
colours: the gap to the first column is what its outline costs. ``--picture`` writes, for the first 4 identities at
the input camera and at yaw +30, the truth, the render and (a), the last two with their absolute error (x2) below.
"""

from __future__ import annotations

import argparse

import torch

from pe3d.evaluation.world import WorldEvalConfig, build_world_eval_set, reconstruct, render_views
from pe3d.metrics.ground_truth import psnr
from pe3d.metrics.silhouette import split_ring_psnr
from pe3d.models.prior import load_prior
from pe3d.weights import resolve_weights

MIN_OPACITY = 0.05
"""Opacity below which the foreground colour is not recovered (divided by at least this)."""


def main() -> None:
    """Print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prior", default="", help="prior .safetensors (default: the shipped mini prior)")
    parser.add_argument("--count", type=int, default=8, help="held-out identities")
    parser.add_argument("--picture", default="", help="PNG to write the picture to")
    args = parser.parse_args()
    prior = load_prior(resolve_weights(args.prior, "prior_mini")).eval()
    data = build_world_eval_set(WorldEvalConfig(identities=args.count), styles=[])
    with torch.no_grad():
        renders = render_views(prior.render, reconstruct(prior, data), data.truth.views, data.plan.scored, data.resolution)
    tiles = []
    print("| view | as rendered (ring) | its colours, the true outline (ring) | its colours, its opacity > 0.5 (ring) |")
    print("|---|---|---|---|")
    for name in data.plan.scored:
        truth, render = data.truth.views[name], renders[name]
        colour = ((render.image - (1 - render.weights)) / render.weights.clamp(MIN_OPACITY, 1)).clamp(0, 1)
        cells = []
        for mask in (None, truth.mask.float(), (render.weights > 0.5).float()):
            image = render.image if mask is None else colour * mask + (1 - mask)
            ring = split_ring_psnr(image, truth.image, truth.mask).ring_psnr
            cells.append(f"{float(psnr(image, truth.image).mean()):.2f} ({ring:.2f})")
        print(f"| {name} | " + " | ".join(cells) + " |")
        if name in ("input", "yaw+30"):
            swapped = colour * truth.mask.float() + (1 - truth.mask.float())
            tiles.append(truth.image[:4])
            for image in (render.image.clamp(0, 1), swapped):
                tiles += [image[:4], (2 * (image - truth.image).abs()).clamp(0, 1)[:4]]
    if args.picture:
        from torchvision.utils import save_image

        save_image(torch.nn.functional.interpolate(torch.cat(tiles), scale_factor=2, mode="nearest"), args.picture,
                   nrow=4, padding=2, pad_value=1.0)
        print(f"\npicture: {args.picture}")


if __name__ == "__main__":
    main()
