"""Edit fidelity of an editor on held-out world identities, against ground truth.

For a filter style on the world, the correct 3D edit is known at every camera: the
style's filter applied to the world's ground-truth view there. For each held-out
identity (frontal input) and each test prompt of the style we report

* **edit fidelity**: L1 and PSNR of the edited render at the input camera against the
  filter applied to the input;
* **novel-view fidelity**: PSNR at yaw +-30 deg against the filter applied to the
  ground-truth views there.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from tqdm.auto import tqdm

from pe3d.metrics.ground_truth import build_world_targets, psnr
from pe3d.models.editor import EditorCore, Prompts

NOVEL_YAWS_DEG = (-30.0, 30.0)
"""Yaw angles of the novel views scored."""


@dataclass
class EditScores:
    """Means over identities x test prompts."""

    edit_l1: float
    edit_psnr: float
    novel_psnr: float

    def as_dict(self) -> dict[str, float]:
        """Plain dict (for JSON)."""
        return asdict(self)


def style_filter_name(spec) -> str:
    """The world filter behind a ``filter`` style (errors for styles that have none)."""
    name = spec.params.get("filter") if spec.generator == "filter" else None
    if not name:
        raise ValueError(f"style {spec.name!r}: ground-truth scoring needs a 'filter' style (generator={spec.generator!r})")
    return str(name)


@torch.no_grad()
def evaluate_editor(
    editor: EditorCore,
    spec,
    count: int = 8,
    resolution: int = 64,
    seed: int = 0,
    progress: bool = True,
) -> EditScores:
    """Score ``editor`` on ``count`` held-out identities with every test prompt of ``spec``."""
    editor.eval()
    filter_name = style_filter_name(spec)
    prompts = list(spec.prompts.test) or list(spec.prompts.train)
    size = editor.cfg.prior.encoder.image_size
    views = {"input": (0.0, 0.0), **{f"yaw{y:+.0f}": (y, 0.0) for y in NOVEL_YAWS_DEG}}
    truth = build_world_targets(filter_name, count, resolution, seed, views).views
    image = torch.nn.functional.interpolate(truth["input"].source, size=(size, size), mode="area")
    sums = torch.zeros(3)
    for prompt in tqdm(prompts, desc=f"evaluating {spec.name}", disable=not progress):
        planes = editor(image, Prompts(texts=[prompt] * count))
        for name, view in truth.items():
            render = editor.render(planes, view.labels, resolution=resolution).image.clamp(0, 1)
            target = view.image
            if name == "input":
                sums[0] += (render - target).abs().flatten(1).mean(1).sum()
                sums[1] += psnr(render, target).sum()
            else:
                sums[2] += psnr(render, target).sum() / len(NOVEL_YAWS_DEG)
    total = count * len(prompts)
    return EditScores(*(float(v) / total for v in sums))
