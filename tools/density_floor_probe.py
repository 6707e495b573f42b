"""Is the prior's soft outline a faint haze of density around the head? Zero the densities below a floor and see.

    python tools/density_floor_probe.py [--prior FILE] [--floors 0 1 3 10 30]

Renders the prior's reconstruction of the held-out set of ``pe3d eval prior --count 8`` with every sample whose
activated density is below the floor set to zero (inside :func:`pe3d.rendering.volume.activate_density`, for this
run only) and prints PSNR per view, with the silhouette-ring PSNR (:mod:`pe3d.metrics.silhouette`) in brackets.
(2026-12-07: no floor sharpens the outline; docs/results/quality/prior_capacity.md.)
"""

from __future__ import annotations

import argparse

import torch

from density_shift_probe import density_activation_replaced
from pe3d.evaluation.world import WorldEvalConfig, build_world_eval_set, reconstruct, render_views
from pe3d.metrics.ground_truth import psnr
from pe3d.metrics.silhouette import split_ring_psnr
from pe3d.models.prior import load_prior
from pe3d.weights import resolve_weights


def main() -> None:
    """Print one row per floor."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prior", default="", help="prior .safetensors (default: the shipped mini prior)")
    parser.add_argument("--floors", type=float, nargs="+", default=[0.0, 1.0, 3.0, 10.0, 30.0])
    args = parser.parse_args()
    prior = load_prior(resolve_weights(args.prior, "prior_mini")).eval()
    data = build_world_eval_set(WorldEvalConfig(identities=8), styles=[])
    with torch.no_grad():
        planes = reconstruct(prior, data)
    print("| density floor | " + " | ".join(data.plan.scored) + " |\n|---|" + "---|" * len(data.plan.scored))
    for floor in args.floors:
        def floored(activate, floor=floor):
            def activate_floored(densities, activation="softplus_shift"):
                sigma = activate(densities, activation)
                return torch.where(sigma < floor, torch.zeros_like(sigma), sigma)
            return activate_floored

        with density_activation_replaced(floored), torch.no_grad():
            renders = render_views(prior.render, planes, data.truth.views, data.plan.scored, data.resolution)
        cells = []
        for name in data.plan.scored:
            truth = data.truth.views[name]
            ring = split_ring_psnr(renders[name].image, truth.image, truth.mask).ring_psnr
            cells.append(f"{float(psnr(renders[name].image, truth.image).mean()):.2f} ({ring:.2f})")
        print(f"| {floor:g} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
