"""Does averaging the prior over the input and its mirror image sharpen the reconstruction? (2026-12-07: no.)

    python tools/prior_mirror_probe.py [--weights FILE]

Scores, on the held-out world identities of ``pe3d eval prior`` (:class:`pe3d.evaluation.world.WorldEvalConfig`
defaults), the prior as shipped, the prior of the horizontally flipped input with its triplane mirrored back in
``x`` (each plane flipped along the axis that holds ``x``), and the mean of the two triplanes (test-time
augmentation, twice the encoder's cost). Prints PSNR (dB) and depth error per view.
"""

from __future__ import annotations

import argparse

import torch
from torch import Tensor, nn

from pe3d.rendering.planes import _PLANE_UV_AXES


def mirror_x(planes: Tensor) -> Tensor:
    """``[B, 3, C, H, W]`` EG3D triplanes mirrored in world ``x`` (each plane flipped along the axis holding ``x``)."""
    mirrored = []
    for plane in range(3):
        values = planes[:, plane]
        width_axis, height_axis = _PLANE_UV_AXES[plane].tolist()
        if width_axis == 0:
            values = values.flip(-1)
        if height_axis == 0:
            values = values.flip(-2)
        mirrored.append(values)
    return torch.stack(mirrored, dim=1)


class MirroredPrior(nn.Module):
    """A prior read through the mirror: ``mirror_x(prior(flip(x)))``, or its mean with ``prior(x)`` (``average``)."""

    def __init__(self, prior: nn.Module, average: bool) -> None:
        super().__init__()
        self.prior, self.average, self.cfg = prior, average, prior.cfg

    def forward(self, images: Tensor) -> Tensor:
        """The triplanes of ``images [B, 3, S, S]``."""
        mirrored = mirror_x(self.prior(images.flip(-1)))
        return 0.5 * (self.prior(images) + mirrored) if self.average else mirrored

    def render(self, *args, **kwargs):
        """The prior's renderer."""
        return self.prior.render(*args, **kwargs)


def main() -> None:
    """Print the three rows."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default="", help="prior file (default: the shipped mini prior)")
    args = parser.parse_args()
    from pe3d.evaluation.world import WorldEvalConfig, build_world_eval_set, evaluate_prior
    from pe3d.models.prior import load_prior
    from pe3d.weights import shipped_path

    prior = load_prior(args.weights or shipped_path("prior_mini")).eval()
    data = build_world_eval_set(WorldEvalConfig(), styles=[])
    for name, model in (("prior", prior), ("mirrored input, planes mirrored back", MirroredPrior(prior, False)),
                        ("mean of the two (test-time augmentation)", MirroredPrior(prior, True))):
        scores = evaluate_prior(model, data)
        print(f"{name}: PSNR {' / '.join(f'{s.psnr:.2f}' for s in scores.values())}, "
              f"depth error {' / '.join(f'{s.depth_error:.4f}' for s in scores.values())} ({', '.join(scores)})")


if __name__ == "__main__":
    main()
