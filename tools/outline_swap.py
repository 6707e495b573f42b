"""How much of the prior's error is its outline? Its own colours composited with the true outline.

    python tools/outline_swap.py [--prior FILE] [--count 8] [--picture PNG] [--outline-picture PNG]

On the held-out set of ``pe3d eval prior``, renders the prior at the five tested cameras, recovers its foreground
colour from each render (``(image - (1 - opacity) * 1) / opacity``: the world's background is white, and the prior's
field background is white there to within its own error) and composites it with (a) the **true** mask, (b) the
prior's own opacity thresholded at 0.5. Prints PSNR per view: as rendered, (a) and (b), with the silhouette-ring
PSNR (:mod:`pe3d.metrics.silhouette`) of each. (a) is what the prior would score with a perfect outline and its own
colours: the gap to the first column is what its outline costs. ``--picture`` writes, for the first 4 identities at
the input camera and at yaw +30, the truth, the render and (a), the last two with their absolute error (x2) below.
``--outline-picture`` writes, for every identity at the input camera and at yaw +/-30, the truth, the render and the
truth dimmed with the render's outline errors on it (:func:`pe3d.metrics.silhouette.outline_error_maps`: red where the
render is opaque outside the true mask, too wide; blue where it is transparent inside, too narrow).
"""

from __future__ import annotations

import argparse

import torch

from pe3d.evaluation.world import WorldEvalConfig, build_world_eval_set, reconstruct, render_views
from pe3d.metrics.ground_truth import psnr
from pe3d.metrics.silhouette import outline_error_maps, split_ring_psnr
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
    parser.add_argument("--outline-picture", default="", help="PNG to write the outline errors' picture to")
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
    if args.outline_picture:
        outline_picture(args.outline_picture, data, renders)
    if args.picture:
        from torchvision.utils import save_image

        save_image(torch.nn.functional.interpolate(torch.cat(tiles), scale_factor=2, mode="nearest"), args.picture,
                   nrow=4, padding=2, pad_value=1.0)
        print(f"\npicture: {args.picture}")


def outline_picture(path: str, data, renders: dict) -> None:
    """Truth, render and outline errors (red: too wide, blue: too narrow) at the input view and yaw +/-30."""
    from torchvision.utils import save_image

    tiles = []
    for name in ("input", "yaw-30", "yaw+30"):
        truth, render = data.truth.views[name], renders[name]
        wide, narrow = (m.float() for m in outline_error_maps(render.weights, truth.mask))
        marked = (0.5 * truth.image + 0.25) * (1 - wide) * (1 - narrow) + torch.cat([wide, 0 * wide, narrow], dim=1)
        tiles += [truth.image, render.image.clamp(0, 1), marked]
    save_image(torch.nn.functional.interpolate(torch.cat(tiles), scale_factor=2, mode="nearest"), path,
               nrow=data.truth.views["input"].image.shape[0], padding=2, pad_value=0.5)
    print(f"outline picture: {path}")


if __name__ == "__main__":
    main()
