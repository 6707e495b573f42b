"""How well could *any* single-image prior do at the novel views, given what a frontal image cannot show?

    python tools/ambiguity_bound.py [--identities 8] [--variants 6] [--params head_depth jaw_depth nose_protrusion]

For each held-out identity of ``pe3d eval prior`` (indices 1,000,000+), draws ``--variants`` heads that differ
from it only in ``--params`` (each redrawn from its own distribution in the world: the values of 4,096 sampled
identities), renders every variant at the five tested cameras with the world's renderer and scores, per view,
the best predictor that knows everything but those parameters: the mean of the other variants' renders
(leave-one-out, so no variant scores against itself). Under squared error no predictor that cannot tell the
variants apart does better on average, so each column is an upper bound on what a prior can reach at that view
if the frontal image really hides those parameters. The ``input cue`` row says how far apart the variants'
frontal images are (mean PSNR between pairs): how faint the hint is that a perfect encoder could still read.
The last row gives the share of the bound's squared error on the silhouette ring (:mod:`pe3d.metrics.silhouette`).
"""

from __future__ import annotations

import argparse
from dataclasses import fields, replace

import numpy as np
import torch

from pe3d.metrics.ground_truth import GT_VIEWS, psnr, render_view_targets
from pe3d.metrics.silhouette import split_ring_psnr
from pe3d.world import Identity, WorldSplit, sample_identity

POPULATION = 4096
"""Identities sampled to read each parameter's distribution from."""


def parameter_population(names: list[str], seed: int = 0) -> dict[str, np.ndarray]:
    """Each named :class:`Identity` field's values over :data:`POPULATION` training identities of world ``seed``."""
    known = {f.name for f in fields(Identity)}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise SystemExit(f"--params: {unknown} are not Identity fields (pe3d/world/identity.py)")
    identities = [sample_identity(seed, i) for i in range(POPULATION)]
    return {n: np.array([getattr(i, n) for i in identities]) for n in names}


def render_world_views(identities: list[Identity], resolution: int) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """View name -> (RGB ``[N, 3, R, R]``, mask ``[N, 1, R, R]``) at the cameras of ``pe3d eval prior``."""
    return {name: (view.image, view.mask) for name, view in render_view_targets(identities, GT_VIEWS, resolution=resolution).items()}


def main() -> None:
    """Print the bound per view."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--identities", type=int, default=8)
    parser.add_argument("--variants", type=int, default=6)
    parser.add_argument("--params", nargs="+", default=["head_depth", "jaw_depth", "nose_protrusion"])
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0, help="seed of the variants' draws")
    args = parser.parse_args()
    if args.variants < 2:
        raise SystemExit("--variants must be >= 2 (the bound is a leave-one-out mean)")
    population = parameter_population(args.params)
    rng = np.random.default_rng(args.seed)
    base = [sample_identity(0, i) for i in WorldSplit().heldout_indices(args.identities, 0)]
    variants = [[replace(ident, **{n: float(rng.choice(population[n])) for n in args.params}) for ident in base]
                for _ in range(args.variants)]
    renders = [render_world_views(v, args.resolution) for v in variants]
    k = args.variants
    print(f"params {args.params}, {args.identities} identities x {k} variants\n")
    print("| view | bound (dB) | input cue: PSNR between variants (dB) | bound's ring share of sq. error |")
    print("|---|---|---|---|")
    for name in GT_VIEWS:
        stack = torch.stack([r[name][0] for r in renders])  # [K, N, 3, R, R]
        total = stack.sum(0)
        scores, ring_shares = [], []
        for j in range(k):
            guess = (total - stack[j]) / (k - 1)
            scores.append(psnr(guess, stack[j]).mean())
            ring_shares.append(split_ring_psnr(guess, stack[j], renders[j][name][1]).ring_error_share)
        pairs = [psnr(stack[a], stack[b]).clamp(max=100).mean() for a in range(k) for b in range(a + 1, k)]
        print(f"| {name} | {float(torch.stack(scores).mean()):.2f} | {float(torch.stack(pairs).mean()):.2f} | "
              f"{float(np.mean(ring_shares)):.2f} |")


if __name__ == "__main__":
    main()
