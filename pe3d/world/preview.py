"""Preview images of the embedded world: per-identity sheets, a turntable GIF, filter sheets.

``write_world_preview(out_dir, count)`` writes, for the first ``count`` identities of a split:

* ``identity_<index>.png``: top row RGB at (yaw, pitch) = (-30, 0), (0, 0), (+30, 0),
  (0, +15), (0, -15) degrees; middle row the depth maps (near = bright, background black);
  bottom row the part masks in false colour;
* ``grid.png``: frontal views of all identities;
* ``turntable.gif``: 24 frames, yaw -45..+45 degrees, of up to 4 identities side by side;
* ``identities.json``: the parameters of every identity.

``write_filter_preview(out_dir)`` writes ``filters.png``: one identity (frontal and yaw +30)
with every style filter, applied with part labels and without (the real-photo fallback).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image

from pe3d.geometry.cameras import label_from_yaw_pitch
from pe3d.world.field import Part
from pe3d.world.filters import STYLE_FILTERS, apply_style_filter
from pe3d.world.identity import sample_identity
from pe3d.world.render import WorldRender, render_identity
from pe3d.world.split import WorldSplit

__all__ = ["write_world_preview", "write_filter_preview", "parts_to_rgb", "depth_to_rgb", "SHEET_VIEWS_DEG"]

SHEET_VIEWS_DEG: tuple[tuple[float, float], ...] = ((-30, 0), (0, 0), (30, 0), (0, 15), (0, -15))
"""(yaw, pitch) in degrees of the views on an identity sheet."""

PART_COLOURS: dict[int, tuple[int, int, int]] = {
    Part.BACKGROUND: (255, 255, 255),
    Part.SKIN: (230, 180, 140),
    Part.HAIR: (110, 60, 20),
    Part.EYES: (40, 120, 255),
    Part.LIPS: (220, 30, 60),
    Part.BROWS: (40, 20, 10),
    Part.BEARD: (240, 140, 0),
    Part.GLASSES: (200, 0, 200),
    Part.CLOTHES: (60, 170, 80),
}


def parts_to_rgb(parts: torch.Tensor) -> np.ndarray:
    """False-colour ``[H, W]`` part labels -> ``[H, W, 3]`` uint8."""
    lut = np.zeros((len(Part), 3), dtype=np.uint8)
    for k, c in PART_COLOURS.items():
        lut[int(k)] = c
    return lut[parts.cpu().numpy().astype(np.int64)]


def depth_to_rgb(depth: torch.Tensor, near: float = 2.35, far: float = 3.05) -> np.ndarray:
    """``[1, H, W]`` or ``[H, W]`` ray depth -> ``[H, W, 3]`` uint8 (near bright, background black)."""
    d = depth.reshape(depth.shape[-2:]).cpu().numpy()
    v = np.where(d > 0, 1.0 - (d - near) / (far - near), 0.0)
    v = (np.clip(v, 0, 1) * 235 + np.where(d > 0, 20, 0)).astype(np.uint8)
    return np.repeat(v[..., None], 3, axis=-1)


def _to_uint8(rgb: torch.Tensor) -> np.ndarray:
    return (rgb.clamp(0, 1).permute(1, 2, 0).cpu().numpy() * 255 + 0.5).astype(np.uint8)


def _labels(views_deg: Sequence[tuple[float, float]]) -> torch.Tensor:
    yaw = torch.tensor([math.radians(y) for y, _ in views_deg])
    pitch = torch.tensor([math.radians(p) for _, p in views_deg])
    return label_from_yaw_pitch(yaw, pitch)


def _sheet(render: WorldRender) -> np.ndarray:
    rows = [
        np.concatenate([_to_uint8(x) for x in render.rgb], axis=1),
        np.concatenate([depth_to_rgb(d) for d in render.depth], axis=1),
        np.concatenate([parts_to_rgb(p) for p in render.parts], axis=1),
    ]
    return np.concatenate(rows, axis=0)


def write_world_preview(
    out_dir: str | Path,
    count: int,
    seed: int = 0,
    resolution: int = 128,
    split: str = "train",
    supersample: int = 2,
    turntable_frames: int = 24,
) -> list[Path]:
    """Write identity sheets, a frontal grid, a turntable GIF and the identity parameters.

    Args:
        out_dir: folder to write into (created).
        count: number of identities (the first ``count`` of the split).
        seed: world seed.
        resolution: image side of each view.
        split: ``"train"`` or ``"heldout"``.
        supersample: anti-aliasing factor of the renders.
        turntable_frames: frames of ``turntable.gif`` (yaw -45..+45 degrees).

    Returns:
        The written paths.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    idents = WorldSplit(seed).identities(split, count)
    written: list[Path] = []
    labels = _labels(SHEET_VIEWS_DEG)
    frontal = []
    for ident in idents:
        r = render_identity(ident, labels, resolution, supersample=supersample)
        path = out / f"identity_{ident.index:07d}.png"
        Image.fromarray(_sheet(r)).save(path)
        written.append(path)
        frontal.append(_to_uint8(r.rgb[1]))
    if frontal:
        cols = min(len(frontal), 8)
        rows = int(math.ceil(len(frontal) / cols))
        blank = np.full_like(frontal[0], 255)
        tiles = frontal + [blank] * (rows * cols - len(frontal))
        grid = np.concatenate([np.concatenate(tiles[r * cols : (r + 1) * cols], axis=1) for r in range(rows)], axis=0)
        Image.fromarray(grid).save(out / "grid.png")
        written.append(out / "grid.png")

        yaws = np.linspace(-45.0, 45.0, turntable_frames)
        tt_labels = _labels([(float(y), 0.0) for y in yaws])
        strips = [render_identity(ident, tt_labels, resolution, supersample=supersample).rgb for ident in idents[:4]]
        frames = [Image.fromarray(np.concatenate([_to_uint8(s[f]) for s in strips], axis=1)) for f in range(len(yaws))]
        frames = frames + frames[::-1][1:-1]  # ping-pong
        frames[0].save(out / "turntable.gif", save_all=True, append_images=frames[1:], duration=60, loop=0)
        written.append(out / "turntable.gif")

    with open(out / "identities.json", "w") as fh:
        json.dump([i.to_dict() for i in idents], fh, indent=1)
    written.append(out / "identities.json")
    return written


def write_filter_preview(
    out_dir: str | Path,
    seed: int = 0,
    index: int = 0,
    resolution: int = 128,
    filters: Sequence[str] | None = None,
    supersample: int = 2,
) -> Path:
    """Write ``filters.png``: every filter on one identity (rows), at yaw 0 and +30 degrees.

    Columns: original frontal, filtered frontal (with parts), filtered frontal (without
    parts), original yaw +30, filtered yaw +30 (with parts).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ident = sample_identity(seed, index)
    r = render_identity(ident, _labels([(0, 0), (30, 0)]), resolution, supersample=supersample)
    names = list(filters) if filters is not None else list(STYLE_FILTERS)
    rows = []
    for name in names:
        with_parts = apply_style_filter(name, r.rgb, r.parts)
        no_parts = apply_style_filter(name, r.rgb, None)
        tiles = [r.rgb[0], with_parts[0], no_parts[0], r.rgb[1], with_parts[1]]
        rows.append(np.concatenate([_to_uint8(t) for t in tiles], axis=1))
    path = out / "filters.png"
    Image.fromarray(np.concatenate(rows, axis=0)).save(path)
    return path
