"""What a PSNR means on the embedded world: the ground truth against itself blurred, per view.

    python tools/blur_equivalence.py [--weights shipped] [--count 8] [--sigmas 0.5 0.6 0.7 0.8 1.0 1.5 2.0 3.0]

For each held-out view of ``pe3d eval prior`` (input, yaw ±30°, pitch ±15°) it prints the PSNR of the
ground truth against a Gaussian blur of itself (standard deviation ``sigma`` pixels, kernel out to 3 sigma), then the
prior's PSNR on the same identities (scored by :func:`pe3d.evaluation.world.evaluate_prior`) and the blur
that costs as much. The world's renders are sharp to the pixel, so a fraction of a pixel of blur already
costs several dB: read the prior's numbers and the issue's targets against this scale.
"""

import argparse
import math

import numpy as np
import torch
from torchvision.transforms.functional import gaussian_blur

from pe3d.evaluation.world import build_world_eval_set, evaluate_prior
from pe3d.metrics.ground_truth import psnr
from pe3d.models.prior import load_prior
from pe3d.recipes.eval_prior import prior_eval_config
from pe3d.weights import resolve_weights


def blur_psnr(images: torch.Tensor, sigma: float) -> float:
    """Mean PSNR (dB) of ``images [N, 3, H, W]`` in [0, 1] against their Gaussian blur of ``sigma`` pixels."""
    size = 2 * math.ceil(3 * sigma) + 1
    return float(psnr(gaussian_blur(images, [size, size], [sigma, sigma]), images).mean())


def equivalent_sigma(db: float, sigmas: list[float], psnrs: list[float]) -> str:
    """The blur whose PSNR equals ``db`` (linear between the measured ones), or a bound outside them."""
    if db >= psnrs[0]:
        return f"< {sigmas[0]:.2f} px"
    if db <= psnrs[-1]:
        return f"> {sigmas[-1]:.2f} px"
    return f"{float(np.interp(-db, [-p for p in psnrs], sigmas)):.2f} px"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default="shipped", help="prior file (shipped = pe3d/weights/prior_mini); 'none' skips it")
    parser.add_argument("--count", type=int, default=8, help="held-out identities")
    parser.add_argument("--sigmas", type=float, nargs="+", default=[0.5, 0.6, 0.7, 0.8, 1.0, 1.5, 2.0, 3.0], help="blur widths (pixels)")
    args = parser.parse_args()
    if args.count < 1:
        parser.error(f"--count must be >= 1, got {args.count}")
    sigmas = sorted(args.sigmas)
    if sigmas[0] <= 0:
        parser.error(f"--sigmas must be > 0, got {sigmas[0]}")

    data = build_world_eval_set(prior_eval_config(args.count))
    scores = None
    if args.weights != "none":
        prior = load_prior(resolve_weights("" if args.weights == "shipped" else args.weights, "prior_mini")).eval()
        scores = evaluate_prior(prior, data)
    print("view      " + " ".join(f"blur {s:.2f}" for s in sigmas) + ("   prior  ~ blur" if scores else ""))
    for view, target in data.truth.views.items():
        psnrs = [blur_psnr(target.image, s) for s in sigmas]
        line = f"{view:9s} " + " ".join(f"{p:9.2f}" for p in psnrs)
        if scores is not None:
            prior_db = float(scores[view].psnr)
            line += f"   {prior_db:5.2f}  {equivalent_sigma(prior_db, sigmas, psnrs)}"
        print(line)


if __name__ == "__main__":
    main()
