"""What does the frontal image's ambiguity cost a *3D* prior? One triplane fitted to heads it cannot tell apart.

    python tools/ambiguity_3d.py [--identities 2] [--offset 0] [--variants 6] [--params head_depth jaw_depth nose_protrusion]

``tools/ambiguity_bound.py`` bounds a predictor that may blend its guesses in the image (the mean of the variants'
renders). A triplane prior cannot: it hedges in 3D, and a rendered hedge is not the mean of renders (opacity along a
ray saturates, so density spread over the places a part might be draws the union of their outlines). This tool
measures that 3D hedge. For each held-out identity of ``pe3d eval prior`` it builds a *set*: the identity itself and
``--variants - 1`` heads that differ from it only in ``--params`` (redrawn from the world's distributions, as
``ambiguity_bound.py`` does; their frontal images are near-identical). Then, with the shipped decoder and renderer
frozen and the quality benchmark's ceiling settings (``benchmarks/quality.yaml``: its 8 random cameras plus the 5
tested ones, until the fitted views' PSNR stops rising), it fits

* **ceiling**: one triplane to the identity's own views (the benchmark's converged ceiling), and
* **3D hedge**: one triplane to the views of every head of the set at once (``--views-per-step`` views a step,
  ``--steps`` at most),

both started from the prior's triplane of the identity's input image, and prints per tested view the PSNR on the
identity itself of: the prior, the ceiling, the 3D hedge, and the 2D hedge (the mean of the set's renders in the
image). The 3D hedge on the identity is what the best single-image 3D prior that cannot read ``--params`` could reach
there (an optimistic bound: the identity is one of the heads it was fitted to), with the silhouette ring's PSNR and
the false-positive / false-negative share of the outline (opacity > 0.5 outside / inside the true mask, % of pixels).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import numpy as np
import torch

from pe3d.bench.config import load_benchmark
from pe3d.bench.quality import _fit_cameras, fit_ceiling
from pe3d.metrics.ground_truth import GT_VIEWS, ViewTarget, psnr, render_view_targets
from pe3d.metrics.silhouette import outline_errors, split_ring_psnr
from pe3d.models.prior import load_prior
from pe3d.weights import resolve_weights
from pe3d.world import WorldSplit, sample_identity

from ambiguity_bound import parameter_population  # tools/ is the script's directory


def row(view: ViewTarget, k: int) -> ViewTarget:
    """The ``k``-th head of ``view`` alone."""
    parts = None if view.parts is None else view.parts[k : k + 1]
    return replace(view, labels=view.labels[k : k + 1], source=view.source[k : k + 1], image=view.image[k : k + 1],
                   depth=view.depth[k : k + 1], mask=view.mask[k : k + 1], parts=parts)


def scores(render, truth: ViewTarget) -> str:
    """PSNR (ring PSNR) and the outline's false positives / negatives of one render against one head."""
    image = render.image.clamp(0, 1)
    outline = outline_errors(render.weights, truth.mask)
    ring = split_ring_psnr(image, truth.image, truth.mask).ring_psnr
    return f"{float(psnr(image, truth.image).mean()):.2f} ({ring:.2f}; {100 * outline.too_wide:.1f}/{100 * outline.too_narrow:.1f})"


def main() -> None:
    """Print the table per identity."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prior", default="", help="prior .safetensors (default: the shipped mini prior)")
    parser.add_argument("--identities", type=int, default=2)
    parser.add_argument("--offset", type=int, default=0, help="first held-out identity")
    parser.add_argument("--variants", type=int, default=6, help="heads in each set, the identity included")
    parser.add_argument("--params", nargs="+", default=["head_depth", "jaw_depth", "nose_protrusion"])
    parser.add_argument("--views-per-step", type=int, default=6, help="views a step of the 3D hedge's fit")
    parser.add_argument("--steps", type=int, default=3000, help="at most, for the 3D hedge's fit")
    parser.add_argument("--seed", type=int, default=0, help="seed of the variants' draws")
    parser.add_argument("--ceiling-steps", type=int, default=0, help="at most, for the ceiling's fit (0: the benchmark's)")
    args = parser.parse_args()
    if args.variants < 2:
        raise SystemExit("--variants must be >= 2 (the identity and at least one head it cannot be told from)")
    overrides = ["styles=[]"] + ([f"ceiling.max_steps={args.ceiling_steps}"] if args.ceiling_steps else [])
    bench = load_benchmark("quality", overrides)
    prior = load_prior(resolve_weights(args.prior, "prior_mini")).eval()
    population = parameter_population(args.params)
    rng = np.random.default_rng(args.seed)
    generator = torch.Generator().manual_seed(bench.world_seed)
    cameras = {**_fit_cameras(bench, generator), **GT_VIEWS}
    print(f"params {args.params}; {args.variants} heads a set; PSNR on the identity (ring PSNR; outline false positives / "
          f"negatives, % of pixels)\n")
    for index in WorldSplit().heldout_indices(args.identities, args.offset):
        base = sample_identity(bench.world_seed, index)
        heads = [base] + [replace(base, **{n: float(rng.choice(population[n])) for n in args.params})
                          for _ in range(args.variants - 1)]
        truth = render_view_targets(heads, cameras, resolution=bench.resolution)
        own = {name: row(view, 0) for name, view in truth.items()}
        with torch.no_grad():
            init = prior(own["input"].source)
        start = time.perf_counter()
        ceiling = fit_ceiling(prior.renderer, init, own, bench.ceiling, generator)
        ceiling_minutes = (time.perf_counter() - start) / 60
        every = {f"{name}@{k}": row(view, k) for name, view in truth.items() for k in range(len(heads))}
        start = time.perf_counter()
        hedge = fit_ceiling(prior.renderer, init, every,
                            replace(bench.ceiling, views_per_step=args.views_per_step, max_steps=args.steps), generator)
        hedge_minutes = (time.perf_counter() - start) / 60
        print(f"identity {index}: ceiling {ceiling.steps} steps ({ceiling_minutes:.1f} min), 3D hedge {hedge.steps} steps "
              f"({hedge_minutes:.1f} min)\n")
        print("| view | prior | ceiling | 3D hedge | 2D hedge (mean of the set's renders) | 3D hedge, mean over the set |")
        print("|---|---|---|---|---|---|")
        with torch.no_grad():
            for name in GT_VIEWS:
                view = own[name]
                cells = [scores(prior.render(p, view.labels), view) for p in (init, ceiling.planes, hedge.planes)]
                blend = truth[name].image.mean(0, keepdim=True)
                cells.append(f"{float(psnr(blend, view.image).mean()):.2f} "
                             f"({split_ring_psnr(blend, view.image, view.mask).ring_psnr:.2f})")
                labels = truth[name].labels
                set_render = prior.render(hedge.planes.expand(len(heads), -1, -1, -1, -1), labels)
                cells.append(f"{float(psnr(set_render.image.clamp(0, 1), truth[name].image).mean()):.2f}")
                print(f"| {name} | " + " | ".join(cells) + " |")
        print(flush=True)


if __name__ == "__main__":
    main()
