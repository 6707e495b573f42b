"""How far the teacher store's float16 residual moves a refined teacher triplane and its render.

    python tools/teacher_store_precision.py runs/pairs-bg --styles bronze_statue zombie pop_art --per-style 8

For the first pairs of each style in a pair folder (``pe3d pairs`` / ``fit distill`` output), the shipped
prior's (or ``--prior``'s) triplane of the pair's edited image is refined as ``system.teacher_refine_steps``
does (:func:`pe3d.refinement.fit_detail_residual`, ``--steps``), then rebuilt the way
:class:`~pe3d.systems.teacher_store.RefinedTeacherStore` keeps it (the feed-forward triplane plus the residual
rounded to float16). Prints the largest triplane difference, the largest one relative to the residual's size,
and the PSNR between the two triplanes' renders at the pair's camera (min and mean).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pairs", type=Path, help="a pair folder with one subfolder per style")
    parser.add_argument("--styles", nargs="+", default=["bronze_statue", "zombie", "pop_art"])
    parser.add_argument("--per-style", type=int, default=8)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--prior", default="", help="prior file (default: the shipped mini prior)")
    args = parser.parse_args()
    torch.set_num_threads(2)

    from pe3d.data.pairs import load_png, read_manifest
    from pe3d.models.prior import load_prior
    from pe3d.refinement import fit_detail_residual
    from pe3d.systems.editing import teacher_refinement
    from pe3d.systems.teacher_store import RESIDUAL_DTYPE
    from pe3d.weights import resolve_weights

    prior = load_prior(resolve_weights(args.prior, "prior_mini")).eval()
    worst, relative, psnrs = 0.0, 0.0, []
    for style in args.styles:
        for record in read_manifest(args.pairs / style)[: args.per_style]:
            image = load_png(args.pairs / style / record.edited)[None]
            camera = torch.tensor(record.camera, dtype=torch.float32)[None]
            with torch.no_grad():
                base = prior(image)
            residual = fit_detail_residual(prior.render, base, image, camera, teacher_refinement(args.steps), frozen=prior)
            exact, kept = base + residual, base + residual.to(RESIDUAL_DTYPE).float()
            worst = max(worst, float((kept - exact).abs().max()))
            relative = max(relative, float((kept - exact).abs().max() / residual.abs().max().clamp_min(1e-12)))
            with torch.no_grad():
                error = (prior.render(exact, camera).image - prior.render(kept, camera).image).square().mean()
            psnrs.append(float(-10 * torch.log10(error.clamp_min(1e-20))))
    print(f"{len(psnrs)} pairs, {args.steps} refinement steps: largest triplane difference {worst:.2e} "
          f"({relative:.2e} of the residual's largest value); render PSNR between them min {min(psnrs):.1f}, "
          f"mean {sum(psnrs) / len(psnrs):.1f} dB")


if __name__ == "__main__":
    main()
