"""What the prior was trained to match: its deterministic render, or the mean of its jittered ones?

    python tools/render_estimator_probe.py [--prior FILE] [--count 8] [--renders 12]

Training renders with jittered stratified depths and random importance samples (``perturb``), so the image loss
fits the *expectation* of that estimator; evaluation and inference render once, deterministically (evenly spaced
depths, quantile importance samples). On the held-out set of ``pe3d eval prior`` this prints, per tested view,
PSNR (ring PSNR; outline too wide / too narrow, % of pixels) of the deterministic render, of one jittered render
and of the mean of ``--renders`` jittered renders (its opacity the mean opacity). The gap between the first and
the last is what the one-pass deterministic render loses against what training fitted.
"""

from __future__ import annotations

import argparse

import torch

from pe3d.evaluation.world import WorldEvalConfig, build_world_eval_set, reconstruct, render_views
from pe3d.metrics.ground_truth import psnr
from pe3d.metrics.silhouette import outline_errors, split_ring_psnr
from pe3d.models.prior import load_prior
from pe3d.weights import resolve_weights


def cell(image: torch.Tensor, opacity: torch.Tensor, view) -> str:
    """PSNR (ring PSNR; too wide / too narrow %) of one render against one view's truth."""
    image = image.clamp(0, 1)
    outline = outline_errors(opacity, view.mask)
    return (f"{float(psnr(image, view.image).mean()):.2f} ({split_ring_psnr(image, view.image, view.mask).ring_psnr:.2f}; "
            f"{100 * outline.too_wide:.2f} / {100 * outline.too_narrow:.2f})")


def main() -> None:
    """Print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prior", default="", help="prior .safetensors (default: the shipped mini prior)")
    parser.add_argument("--count", type=int, default=8, help="held-out identities")
    parser.add_argument("--renders", type=int, default=12, help="jittered renders averaged")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    prior = load_prior(resolve_weights(args.prior, "prior_mini")).eval()
    data = build_world_eval_set(WorldEvalConfig(identities=args.count), styles=[])
    names = data.plan.scored
    with torch.no_grad():
        planes = reconstruct(prior, data)
        fixed = render_views(prior.render, planes, data.truth.views, names, data.resolution)
        prior.renderer.train()  # jittered samples, as in training
        jittered = [render_views(prior.render, planes, data.truth.views, names, data.resolution) for _ in range(args.renders)]
        prior.renderer.eval()
    print(f"| view | deterministic (as evaluated) | one jittered render | mean of {args.renders} jittered renders |")
    print("|---|---|---|---|")
    for name in names:
        view = data.truth.views[name]
        mean_image = torch.stack([r[name].image for r in jittered]).mean(0)
        mean_opacity = torch.stack([r[name].weights for r in jittered]).mean(0)
        cells = [cell(fixed[name].image, fixed[name].weights, view), cell(jittered[0][name].image, jittered[0][name].weights, view),
                 cell(mean_image, mean_opacity, view)]
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
