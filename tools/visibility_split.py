"""Where the prior's novel-view error lies: pixels the input view shows, pixels it hides, the background,
what lies beyond the cube the input frame spans, and the ground truth's silhouette ring
(:mod:`pe3d.metrics.silhouette`) -- for the prior and for the quality benchmark's converged ceiling.

    python tools/visibility_split.py [--identities 8] [--ceiling-identities 2] [--out docs/results/quality/visibility]

Renders the shipped prior (or ``--prior FILE``) on ``pe3d bench quality``'s held-out identities at its five
tested views and splits every view's pixels with :func:`pe3d.metrics.visibility.split_psnr` (the world's exact
depth maps decide what the input camera sees). With ``--ceiling-identities K > 0`` it also runs the benchmark's
ceiling (``benchmarks/quality.yaml``'s ``ceiling`` settings: one triplane per identity fitted to 13 ground-truth
views until converged) on the first K identities and splits its renders the same way, next to the prior on the
same K. Writes ``visibility.md`` (tables) and ``visibility.png`` (per view: truth with the hidden pixels in red
and the part beyond the input frame's cube in blue, prior, ceiling) to ``--out``.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

import torch
from torchvision.utils import save_image

from pe3d.bench.config import load_benchmark
from pe3d.bench.quality import _fit_cameras, _first, _views, fit_ceiling, world_config
from pe3d.evaluation import build_world_eval_set, reconstruct, render_views
from pe3d.metrics.ground_truth import psnr
from pe3d.metrics.silhouette import split_ring_psnr
from pe3d.metrics.visibility import DEFAULT_TOLERANCE, masked_psnr, seen_in_input, split_psnr, surface_points
from pe3d.models.prior import load_prior
from pe3d.weights import resolve_weights


def outside_box(view, box_warp: float) -> torch.Tensor:
    """``[B, 1, R, R]``: foreground pixels whose true surface point lies outside the cube of side ``box_warp``
    (here the cube the input frame spans at the head's centre: ``renderer.ray_march.box_warp``)."""
    points = surface_points(view.labels, view.depth)
    outside = points.abs().amax(-1) > box_warp / 2
    return outside.view_as(view.mask) & view.mask


def table(title: str, renders: dict, views: dict, names: list[str], box_warp: float, tolerance: float) -> str:
    """One Markdown table: per view, the whole image and each pixel set."""
    lines = [f"**{title}**", "",
             "| view | all | seen fg | hidden fg | background | beyond the frame cube (fg) | hidden share | beyond-cube share | "
             "hidden share of sq. error | silhouette ring | off the ring | ring share of sq. error |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    source = views["input"]
    for name in names:
        view, image = views[name], renders[name].image
        s = split_psnr(image, view, source, tolerance)
        box = outside_box(view, box_warp)
        box_psnr = float(torch.nanmean(masked_psnr(image, view.image, box)))
        ring = split_ring_psnr(image, view.image, view.mask)
        lines.append(f"| {name} | {float(psnr(image, view.image).mean()):.2f} | {s.seen_psnr:.2f} | {s.hidden_psnr:.2f} | "
                     f"{s.background_psnr:.2f} | {box_psnr:.2f} | {s.hidden_share:.3f} | {float(box.float().mean()):.3f} | "
                     f"{s.hidden_error_share:.2f} | {ring.ring_psnr:.2f} | {ring.off_ring_psnr:.2f} | {ring.ring_error_share:.2f} |")
    return "\n".join(lines)


def picture(path: Path, views: dict, names: list[str], rows: dict, count: int, box_warp: float, tolerance: float) -> None:
    """Per view (a block of rows): the truth with hidden pixels red and outside-box pixels blue, then each renderer."""
    source, tiles = views["input"], []
    red, blue = torch.tensor([1.0, 0, 0]).view(1, 3, 1, 1), torch.tensor([0, 0.3, 1.0]).view(1, 3, 1, 1)
    for name in names:
        view = _first(views[name], count)
        hidden = view.mask & ~seen_in_input(view, _first(source, count), tolerance)
        box = outside_box(view, box_warp)
        marked = torch.where(hidden, view.image * 0.4 + red * 0.6, view.image)
        marked = torch.where(box & ~hidden, marked * 0.4 + blue * 0.6, marked)
        tiles += [marked] + [renders[name].image[:count].clamp(0, 1) for renders in rows.values()]
    save_image(torch.cat(tiles), path, nrow=count, padding=1, pad_value=1.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prior", default="", help="prior .safetensors (default: the shipped mini prior)")
    parser.add_argument("--identities", type=int, default=8)
    parser.add_argument("--ceiling-identities", type=int, default=2, help="0: no ceiling fit")
    parser.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE)
    parser.add_argument("--out", default="runs/visibility")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    bench = load_benchmark("quality", [f"identities={max(args.identities, args.ceiling_identities)}", "styles=[]"])
    prior = load_prior(resolve_weights(args.prior, "prior_mini")).eval()
    box_warp = prior.cfg.renderer.ray_march.box_warp
    generator = torch.Generator().manual_seed(bench.world_seed)
    data = build_world_eval_set(world_config(bench, []), extra_cameras=_fit_cameras(bench, generator))
    names = list(_views(bench))
    views = data.truth.views
    with torch.no_grad():
        planes = reconstruct(prior, data)
    prior_renders = render_views(prior.render, planes, views, names, bench.resolution)
    sections = [f"`python tools/visibility_split.py --identities {args.identities} --ceiling-identities {args.ceiling_identities}`"
                f" (tolerance {args.tolerance}; the input frame's cube {box_warp:.4f}, the renderer's box "
                f"{prior.renderer.config.ray_march.box_warp:.4f}); PSNR dB, means over images.", "",
                table(f"prior, {args.identities} held-out identities", prior_renders, views, names, box_warp, args.tolerance)]
    rows = {"prior": prior_renders}
    k = args.ceiling_identities
    if k > 0:
        fit_targets = {name: _first(view, k) for name, view in views.items()}
        cfg = replace(bench.ceiling, identities=k)
        start = time.perf_counter()
        fit = fit_ceiling(prior.renderer, planes[:k], fit_targets, cfg, generator)
        minutes = (time.perf_counter() - start) / 60
        ceiling_renders = render_views(prior.render, fit.planes, fit_targets, names, bench.resolution)
        first_prior = {name: replace(r, image=r.image[:k]) for name, r in prior_renders.items()}
        sections += ["", table(f"prior, the first {k} identities", first_prior, fit_targets, names, box_warp, args.tolerance), "",
                     table(f"ceiling, the first {k} identities ({fit.steps} steps, {minutes:.1f} min)", ceiling_renders,
                           fit_targets, names, box_warp, args.tolerance)]
        rows = {"prior": first_prior, "ceiling": ceiling_renders}
    count = min(4, *(r[names[0]].image.shape[0] for r in rows.values()))
    picture(out / "visibility.png", views, names, rows, count, box_warp, args.tolerance)
    text = "\n".join(sections) + "\n"
    (out / "visibility.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
