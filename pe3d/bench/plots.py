"""Benchmark figures: labelled image grids (PIL) and line plots (matplotlib, headless)."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFont
from torch import Tensor

from pe3d.io import atomic_write_bytes


@dataclass
class GridRow:
    """One row of an image grid: a label and ``[3, H, W]`` images in [0, 1]."""

    label: str
    images: Sequence[Tensor]


def _to_pil(image: Tensor, cell: int) -> Image.Image:
    image = image.detach().float().cpu().clamp(0, 1)
    if image.shape[0] == 1:
        image = image.expand(3, -1, -1)
    if image.shape[-1] != cell:
        image = F.interpolate(image[None], size=(cell, cell), mode="nearest" if cell > image.shape[-1] else "area")[0]
    array = (image.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    return Image.fromarray(array)


def image_grid(rows: Sequence[GridRow], columns: Sequence[str], path: str | Path, cell: int = 96, title: str = "") -> Path:
    """Write a PNG grid: one labelled row per :class:`GridRow`, ``columns`` as headers, ``title`` above (a line
    per ``\\n``)."""
    font = ImageFont.load_default()
    label_w = max(90, 7 * max((len(r.label) for r in rows), default=0))
    title_lines = title.split("\n") if title else []
    head_h = 18 + 18 * len(title_lines)
    ncols = max(len(columns), max((len(r.images) for r in rows), default=0))
    canvas = Image.new("RGB", (label_w + ncols * cell, head_h + len(rows) * cell), "white")
    draw = ImageDraw.Draw(canvas)
    for k, line in enumerate(title_lines):
        draw.text((4, 2 + 18 * k), line, fill="black", font=font)
    for j, name in enumerate(columns):
        draw.text((label_w + j * cell + 3, head_h - 15), name, fill="black", font=font)
    for i, row in enumerate(rows):
        y = head_h + i * cell
        draw.text((4, y + cell // 2 - 6), row.label, fill="black", font=font)
        for j, image in enumerate(row.images):
            canvas.paste(_to_pil(image, cell), (label_w + j * cell, y))
    buffer = io.BytesIO()
    canvas.save(buffer, format="PNG", optimize=True)
    return atomic_write_bytes(path, buffer.getvalue())


def depth_image(depth: Tensor, mask: Tensor | None = None, near: float = 2.3, far: float = 3.1) -> Tensor:
    """``[1, H, W]`` ray depth -> ``[3, H, W]`` grey (near = bright), background white."""
    from pe3d.turntable import depth_to_gray

    gray = depth_to_gray(depth, near, far)
    if mask is not None:
        gray = torch.where(mask.expand_as(gray), gray, torch.ones_like(gray))
    return gray


def depth_range(depth: Tensor, mask: Tensor, margin: float = 0.1) -> tuple[float, float]:
    """``(near, far)`` spanning ``depth`` on ``mask`` plus ``margin`` of the span each side (for :func:`depth_image`)."""
    values = depth[mask.expand_as(depth)]
    if values.numel() == 0:
        return 2.3, 3.1
    low, high = float(values.min()), float(values.max())
    pad = margin * max(high - low, 1e-3)
    return low - pad, high + pad


def line_plot(series: dict[str, tuple[Sequence[float], Sequence[float]]], path: str | Path, xlabel: str, ylabel: str,
              title: str = "") -> Path:
    """Write a PNG line plot: ``series`` label -> (x, y)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(5.0, 3.4), dpi=100)
    for name, (xs, ys) in series.items():
        axis.plot(list(xs), list(ys), marker="o", label=name)
    axis.set_xlabel(xlabel)
    axis.set_ylabel(ylabel)
    if title:
        axis.set_title(title, fontsize=10)
    axis.grid(True, alpha=0.3)
    axis.legend(fontsize=8)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return atomic_write_bytes(path, buffer.getvalue())
