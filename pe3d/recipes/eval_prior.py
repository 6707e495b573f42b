"""Measured quality of a prior on held-out world identities.

For each held-out identity the frontal render is the input; the prior's triplane is
rendered at yaw +-30 deg and pitch +-15 deg (and the input camera) and compared with
the world's ground truth there: PSNR of the image, mean absolute depth error on the
ground-truth foreground. The baseline cannot do 3D: it shows the input image (and
the input's ground-truth depth map) unchanged at every view.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from pe3d.geometry import label_from_yaw_pitch
from pe3d.models.prior import PriorModel

EVAL_VIEWS: dict[str, tuple[float, float]] = {
    "input": (0.0, 0.0),
    "yaw-30": (-30.0, 0.0),
    "yaw+30": (30.0, 0.0),
    "pitch-15": (0.0, -15.0),
    "pitch+15": (0.0, 15.0),
}
"""View name -> (yaw, pitch) in degrees."""


@dataclass
class ViewScores:
    """Mean scores of one view over identities."""

    psnr: float
    depth_error: float
    baseline_psnr: float
    baseline_depth_error: float


def psnr(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR (dB) of ``[B,3,H,W]`` images in [0,1] -> ``[B]``."""
    mse = ((pred.clamp(0, 1) - target) ** 2).flatten(1).mean(1).clamp_min(1e-10)
    return -10.0 * torch.log10(mse)


def masked_abs_error(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-image mean ``|pred - target|`` over ``mask`` -> ``[B]``."""
    mask = mask.float()
    return ((pred - target).abs() * mask).flatten(1).sum(1) / mask.flatten(1).sum(1).clamp_min(1.0)


@torch.no_grad()
def evaluate_prior(
    model: PriorModel,
    count: int = 16,
    resolution: int = 64,
    seed: int = 0,
    batch_size: int = 8,
    progress: bool = True,
) -> dict[str, ViewScores]:
    """Scores per view name of :data:`EVAL_VIEWS` on ``count`` held-out identities."""
    from pe3d.world import WorldSplit, render_identities, sample_identity

    model.eval()
    input_size = model.cfg.encoder.image_size
    indices = list(WorldSplit().heldout_indices(count))
    sums: dict[str, list[float]] = {name: [0.0, 0.0, 0.0, 0.0] for name in EVAL_VIEWS}
    for start in tqdm(range(0, count, batch_size), desc="evaluating prior", disable=not progress):
        ids = [sample_identity(seed, i) for i in indices[start : start + batch_size]]
        frontal = label_from_yaw_pitch([0.0] * len(ids), [0.0] * len(ids))
        source = render_identities(ids, frontal, resolution, supersample=2)
        image = torch.nn.functional.interpolate(source.rgb, size=(input_size, input_size), mode="area")
        planes = model(image)
        for name, (yaw, pitch) in EVAL_VIEWS.items():
            labels = label_from_yaw_pitch([math.radians(yaw)] * len(ids), [math.radians(pitch)] * len(ids))
            truth = render_identities(ids, labels, resolution, supersample=2)
            out = model.render(planes, labels, resolution=resolution)
            scores = (
                psnr(out.image, truth.rgb),
                masked_abs_error(out.depth, truth.depth, truth.mask[:, None]),
                psnr(source.rgb, truth.rgb),
                masked_abs_error(source.depth, truth.depth, truth.mask[:, None]),
            )
            for k, value in enumerate(scores):
                sums[name][k] += float(value.sum())
    return {name: ViewScores(*(v / count for v in values)) for name, values in sums.items()}


def format_table(scores: dict[str, ViewScores]) -> str:
    """Markdown table of :func:`evaluate_prior` results."""
    lines = [
        "| view | PSNR prior (dB) | PSNR baseline (dB) | depth err prior | depth err baseline |",
        "|---|---|---|---|---|",
    ]
    for name, s in scores.items():
        lines.append(f"| {name} | {s.psnr:.2f} | {s.baseline_psnr:.2f} | {s.depth_error:.4f} | {s.baseline_depth_error:.4f} |")
    return "\n".join(lines)
