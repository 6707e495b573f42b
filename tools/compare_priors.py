"""Two priors side by side on held-out world identities: a picture grid and the PSNR of each view.

    python tools/compare_priors.py --a shipped --b runs/prior-wide/prior.safetensors \
        [--count 4] [--views input yaw+30] [--out docs/results/quality/prior_wide_vs_shipped.png]

``--a`` / ``--b`` are prior ``.safetensors`` files (``shipped`` = the shipped mini prior). Each row is one
held-out identity (index 1,000,000 + i): the ground truth, prior A and prior B at each of ``--views`` (default:
the input view and yaw +30°; any of input, yaw-30, yaw+30, pitch-15, pitch+15). PSNR per view over the same identities is printed, scored by ``pe3d eval prior``'s own code
(:func:`pe3d.evaluation.world.evaluate_prior`; that command scores more identities).
"""

import argparse

import torch

from pe3d.bench.plots import GridRow, image_grid
from pe3d.evaluation.world import build_world_eval_set, evaluate_prior, reconstruct, render_views
from pe3d.models.prior import load_prior
from pe3d.recipes.eval_prior import prior_eval_config
from pe3d.weights import resolve_weights

VIEWS = ("input", "yaw+30")
"""The views shown unless ``--views`` says otherwise."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--a", default="shipped", help="prior file shown second (shipped = pe3d/weights/prior_mini)")
    parser.add_argument("--b", required=True, help="prior file shown third")
    parser.add_argument("--count", type=int, default=4, help="held-out identities (rows)")
    parser.add_argument("--views", nargs="+", default=list(VIEWS), help="views shown, e.g. input pitch+15")
    parser.add_argument("--out", default="runs/compare_priors.png", help="PNG written (atomically)")
    args = parser.parse_args()
    if args.count < 1:
        parser.error(f"--count must be >= 1, got {args.count}")
    views = tuple(args.views)

    priors = [load_prior(resolve_weights("" if name == "shipped" else name, "prior_mini")).eval() for name in (args.a, args.b)]
    data = build_world_eval_set(prior_eval_config(args.count))
    scores = [evaluate_prior(prior, data) for prior in priors]
    unknown = [view for view in views if view not in scores[0]]
    if unknown:
        parser.error(f"--views: unknown {unknown}; choose from {list(scores[0])}")
    for view in views:
        print(f"{view}: A {float(scores[0][view].psnr):.2f} dB, B {float(scores[1][view].psnr):.2f} dB ({args.count} identities)")
    truth = data.truth.views
    with torch.no_grad():
        renders = [render_views(prior.render, reconstruct(prior, data), truth, views, data.resolution) for prior in priors]
    rows = [GridRow(f"id {i}", [image for view in views
                                for image in (truth[view].image[i], *(r[view].image[i].clamp(0, 1) for r in renders))])
            for i in range(args.count)]
    columns = [f"{name} {view}" for view in views for name in ("truth", "A", "B")]
    path = image_grid(rows, columns, args.out, cell=128, title=f"{' | '.join(views)} (held-out ids): A = {args.a}, B = {args.b}")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
