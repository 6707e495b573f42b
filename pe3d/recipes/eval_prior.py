"""Measured quality of a prior on held-out world identities.

For each held-out identity the frontal render is the input; the prior's triplane is
rendered at yaw +-30 deg and pitch +-15 deg (and the input camera) and compared with
the world's ground truth there: PSNR of the image, mean absolute depth error on the
ground-truth foreground. The baseline cannot do 3D: it shows the input image (and
the input's ground-truth depth map) unchanged at every view.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from pe3d.metrics.ground_truth import GT_VIEWS, build_world_targets, masked_abs_error, psnr
from pe3d.models.prior import PriorModel

__all__ = ["EVAL_VIEWS", "ViewScores", "evaluate_prior", "format_table", "masked_abs_error", "psnr"]

EVAL_VIEWS: dict[str, tuple[float, float]] = dict(GT_VIEWS)
"""View name -> (yaw, pitch) in degrees (the input camera, yaw +-30, pitch +-15)."""


@dataclass
class ViewScores:
    """Mean scores of one view over identities."""

    psnr: float
    depth_error: float
    baseline_psnr: float
    baseline_depth_error: float


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
    model.eval()
    input_size = model.cfg.encoder.image_size
    sums: dict[str, list[float]] = {name: [0.0, 0.0, 0.0, 0.0] for name in EVAL_VIEWS}
    for start in tqdm(range(0, count, batch_size), desc="evaluating prior", disable=not progress):
        size = min(batch_size, count - start)
        targets = build_world_targets(None, size, resolution, seed, EVAL_VIEWS, supersample=2, offset=start)
        source = targets.views["input"]
        image = torch.nn.functional.interpolate(source.source, size=(input_size, input_size), mode="area")
        planes = model(image)
        for name, truth in targets.views.items():
            out = model.render(planes, truth.labels, resolution=resolution)
            scores = (
                psnr(out.image, truth.image),
                masked_abs_error(out.depth, truth.depth, truth.mask),
                psnr(source.source, truth.image),
                masked_abs_error(source.depth, truth.depth, truth.mask),
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
