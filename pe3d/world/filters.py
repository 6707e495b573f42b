"""Deterministic 2D style filters: the embedded world's stand-in for a 2D diffusion editor.

3DPE distils a 2D editor (InstructPix2Pix) into a 3D-aware encoder. In the embedded world a
*style filter* plays that editor: a deterministic image-to-image function that turns a
portrait into its "edited" version. Every filter is per-pixel or uses a small neighbourhood
(3x3 edges, up to 5x5 mask dilation / hole filling) and never global image statistics, so
applying it to the ground-truth render of any camera gives a sensible, 3D-consistent
multi-view target.

``apply_style_filter(name, rgb, parts)`` takes ``rgb [B, 3, H, W]`` in ``[0, 1]`` and
optionally the part labels ``parts [B, H, W]`` of :class:`~pe3d.world.field.Part`:

* With ``parts``, every filter leaves background pixels (``parts == 0``) untouched, and the
  mask-based filters change only their parts.
* Without ``parts`` (a real photo), "global" filters apply to every pixel, and mask-based
  filters find their region with a local colour heuristic, documented per filter (weaker
  than the true masks, but deterministic and per-pixel).

Filters (name: effect; fallback without parts):

* ``bronze_statue``: luminance mapped onto a dark-brown-copper-highlight ramp with extra
  contrast; eyes flattened to the skin tone (statues have blank eyes). Global without parts.
* ``golden_statue``: as bronze with a saturated gold ramp. Global without parts.
* ``marble_statue``: bright, cool, almost white stone; blank eyes. Global without parts.
* ``pencil_sketch``: grey paper tone from luminance, dark strokes along 3x3 Sobel edges. Global.
* ``pop_art``: luminance posterised into four flat vivid colours with black outlines. Global.
* ``zombie``: skin turns sickly green-grey, lips dark purple, eyes pale yellow. Without parts:
  a per-pixel RGB skin-colour rule selects the skin.
* ``blue_hair``: hair, brows and beard recoloured vivid blue (luminance kept, dark hair
  lifted). Without parts: dark or desaturated, non-skin-coloured pixels count as hair.
* ``anime_eyes``: eyes enlarged by two pixels (two 3x3 dilations inside the face), irises turned
  bright violet-blue, eye whites pure white, a dark outline around them. Without parts: bright,
  desaturated (eye-white-like) pixels are recoloured; this fallback is weak.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from pe3d.world.field import Part

__all__ = ["StyleFilter", "STYLE_FILTERS", "apply_style_filter", "style_filter_names"]

FilterFn = Callable[[Tensor, "Tensor | None"], Tensor]


@dataclass(frozen=True)
class StyleFilter:
    """A named deterministic 2D edit.

    Attributes:
        name: registry key.
        prompt: an instruction an editor would receive for this edit (for prompt encoders).
        fn: ``(rgb [B, 3, H, W], parts [B, H, W] | None) -> rgb``.
        uses_parts: whether the filter is mask-based (changes only some parts).
        description: what it does, and its fallback without part labels.
    """

    name: str
    prompt: str
    fn: FilterFn
    uses_parts: bool
    description: str

    def __call__(self, rgb: Tensor, parts: Tensor | None = None) -> Tensor:
        return apply_style_filter(self.name, rgb, parts)


# ----------------------------------------------------------------------------- helpers
def luma(rgb: Tensor) -> Tensor:
    """``[B, 1, H, W]`` Rec. 601 luminance."""
    w = torch.tensor([0.299, 0.587, 0.114], dtype=rgb.dtype, device=rgb.device).view(1, 3, 1, 1)
    return (rgb * w).sum(1, keepdim=True)


def _ramp(x: Tensor, stops: list[tuple[float, tuple[float, float, float]]]) -> Tensor:
    """Piecewise-linear colour ramp: ``x [B, 1, H, W]`` in ``[0, 1]`` -> ``[B, 3, H, W]``."""
    pos = torch.tensor([p for p, _ in stops], dtype=x.dtype, device=x.device)
    cols = torch.tensor([c for _, c in stops], dtype=x.dtype, device=x.device)  # [S, 3]
    x = x.clamp(0.0, 1.0)
    i = torch.bucketize(x.contiguous(), pos).clamp(1, len(stops) - 1)  # upper stop index
    p0, p1 = pos[i - 1], pos[i]
    w = ((x - p0) / (p1 - p0).clamp_min(1e-6)).clamp(0, 1)
    c0 = cols[i - 1][:, 0].permute(0, 3, 1, 2)  # [B, 3, H, W]
    c1 = cols[i][:, 0].permute(0, 3, 1, 2)
    return c0 + (c1 - c0) * w


def _sobel(lum: Tensor) -> Tensor:
    """3x3 Sobel gradient magnitude ``[B, 1, H, W]`` (replicate padding)."""
    kx = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], dtype=lum.dtype, device=lum.device)
    k = torch.stack((kx, kx.T))[:, None] / 8.0
    g = F.conv2d(F.pad(lum, (1, 1, 1, 1), mode="replicate"), k)
    return g.norm(dim=1, keepdim=True)


def _dilate(mask: Tensor) -> Tensor:
    """3x3 binary dilation of a ``[B, 1, H, W]`` bool mask."""
    return F.max_pool2d(mask.float(), 3, stride=1, padding=1) > 0.5


def _saturation(rgb: Tensor) -> Tensor:
    mx, mn = rgb.amax(1, keepdim=True), rgb.amin(1, keepdim=True)
    return (mx - mn) / mx.clamp_min(1e-4)


def mask_of_parts(parts: Tensor | None, *labels: Part) -> Tensor | None:
    """``[B, 1, H, W]`` bool: where ``parts [B, H, W]`` holds any of ``labels`` (``None`` without parts)."""
    if parts is None:
        return None
    out = torch.zeros_like(parts, dtype=torch.bool)
    for p in labels:
        out |= parts == int(p)
    return out[:, None]


def _skin_heuristic(rgb: Tensor) -> Tensor:
    """Per-pixel RGB skin rule (no parts): reddish, not too dark, not too bright, not grey."""
    r, g, b = rgb[:, 0:1], rgb[:, 1:2], rgb[:, 2:3]
    lum = luma(rgb)
    return (r > g) & (g > b * 0.85) & (r - b > 0.06) & (lum > 0.08) & (lum < 0.96)


def _blend(rgb: Tensor, new: Tensor, where: Tensor | None) -> Tensor:
    out = new if where is None else torch.where(where, new, rgb)
    return out.clamp(0.0, 1.0)


def _foreground(parts: Tensor | None) -> Tensor | None:
    return None if parts is None else (parts != int(Part.BACKGROUND))[:, None]


def _blank_eyes(rgb: Tensor, parts: Tensor | None) -> Tensor:
    """Statue look: replace eye pixels by their 3x3-neighbourhood skin colour (one pass)."""
    if parts is None:
        return rgb
    eyes = mask_of_parts(parts, Part.EYES)
    if not bool(eyes.any()):
        return rgb
    skin = mask_of_parts(parts, Part.SKIN).float()
    num = F.avg_pool2d(F.pad(rgb * skin, (2, 2, 2, 2), mode="replicate"), 5, stride=1)
    den = F.avg_pool2d(F.pad(skin, (2, 2, 2, 2), mode="replicate"), 5, stride=1)
    fill = torch.where(den > 0.05, num / den.clamp_min(1e-4), torch.full_like(rgb, 0.6))
    return torch.where(eyes, fill * 0.95, rgb)


# ----------------------------------------------------------------------------- filters
def _statue(stops, gamma: float, contrast: float):
    def fn(rgb: Tensor, parts: Tensor | None) -> Tensor:
        src = _blank_eyes(rgb, parts)
        lum = luma(src)
        x = (lum.clamp(0, 1) ** gamma - 0.5) * contrast + 0.5
        return _blend(rgb, _ramp(x, stops), _foreground(parts))

    return fn


# Statues remap luminance with a strong gamma (< 1) first, so that every skin tone and hair
# colour lands on the metal's bright-to-mid range instead of keeping its own darkness.
_bronze = _statue(
    [(0.0, (0.06, 0.035, 0.015)), (0.3, (0.27, 0.14, 0.05)), (0.55, (0.55, 0.31, 0.11)), (0.8, (0.86, 0.58, 0.27)),
     (1.0, (1.0, 0.88, 0.62))],
    gamma=0.45, contrast=1.7,
)
_gold = _statue(
    [(0.0, (0.16, 0.09, 0.0)), (0.35, (0.62, 0.42, 0.04)), (0.65, (0.95, 0.76, 0.18)), (0.88, (1.0, 0.92, 0.55)),
     (1.0, (1.0, 1.0, 0.88))],
    gamma=0.5, contrast=1.3,
)
_marble = _statue(
    [(0.0, (0.42, 0.43, 0.47)), (0.4, (0.74, 0.75, 0.78)), (0.75, (0.92, 0.92, 0.94)), (1.0, (1.0, 1.0, 1.0))],
    gamma=0.5, contrast=0.9,
)


def _pencil(rgb: Tensor, parts: Tensor | None) -> Tensor:
    lum = luma(rgb)
    edges = (_sobel(lum) * 5.0).clamp(0.0, 0.9)
    tone = 1.0 - 0.6 * (1.0 - lum).clamp(0, 1) ** 1.4
    grey = tone * (1.0 - edges)
    paper = torch.tensor([0.98, 0.96, 0.91], dtype=rgb.dtype, device=rgb.device).view(1, 3, 1, 1)
    return _blend(rgb, grey * paper, _foreground(parts))


def _pop_art(rgb: Tensor, parts: Tensor | None) -> Tensor:
    lum = luma(rgb)
    palette = torch.tensor(
        [(0.10, 0.08, 0.40), (0.92, 0.14, 0.52), (1.0, 0.62, 0.05), (1.0, 0.93, 0.25)], dtype=rgb.dtype,
        device=rgb.device,
    )
    level = (lum * 4.0).floor().clamp(0, 3).long()[:, 0]  # [B, H, W]
    out = palette[level].permute(0, 3, 1, 2)
    outline = _sobel(lum) > 0.06
    out = torch.where(outline, torch.zeros_like(out) + 0.03, out)
    return _blend(rgb, out, _foreground(parts))


def _zombie(rgb: Tensor, parts: Tensor | None) -> Tensor:
    lum = luma(rgb)
    dev = dict(dtype=rgb.dtype, device=rgb.device)
    green = torch.tensor([0.50, 0.78, 0.36], **dev).view(1, 3, 1, 1)
    tint = torch.tensor([0.02, 0.0, 0.04], **dev).view(1, 3, 1, 1)
    skin_new = green * (0.2 + 0.85 * lum.clamp(0, 1).sqrt()) + 0.12 * (rgb - lum) - tint
    lips_new = torch.tensor([0.30, 0.12, 0.32], **dev).view(1, 3, 1, 1) * (0.5 + lum)
    eyes_new = torch.tensor([0.95, 0.92, 0.45], **dev).view(1, 3, 1, 1) * (0.45 + 0.7 * lum)
    if parts is None:
        return _blend(rgb, skin_new, _skin_heuristic(rgb))
    out = torch.where(mask_of_parts(parts, Part.SKIN), skin_new, rgb)
    out = torch.where(mask_of_parts(parts, Part.LIPS), lips_new, out)
    out = torch.where(mask_of_parts(parts, Part.EYES), eyes_new, out)
    return out.clamp(0.0, 1.0)


def _blue_hair(rgb: Tensor, parts: Tensor | None) -> Tensor:
    lum = luma(rgb)
    blue = torch.tensor([0.10, 0.38, 1.0], dtype=rgb.dtype, device=rgb.device).view(1, 3, 1, 1)
    new = blue * (0.45 + 1.0 * lum)
    if parts is None:
        where = ((lum < 0.3) | (_saturation(rgb) < 0.12)) & ~_skin_heuristic(rgb) & (lum < 0.97)
    else:
        where = mask_of_parts(parts, Part.HAIR, Part.BROWS, Part.BEARD)
    return _blend(rgb, new, where)


def _anime_eyes(rgb: Tensor, parts: Tensor | None) -> Tensor:
    lum = luma(rgb)
    dev = dict(dtype=rgb.dtype, device=rgb.device)
    iris = torch.tensor([0.45, 0.25, 1.0], **dev).view(1, 3, 1, 1) * (0.55 + 0.9 * lum)
    white = torch.ones_like(rgb)
    if parts is None:
        where = (lum > 0.6) & (lum < 0.97) & (_saturation(rgb) < 0.15)
        return _blend(rgb, 0.5 * iris + 0.5 * white, where)
    eyes = mask_of_parts(parts, Part.EYES)
    face = mask_of_parts(parts, Part.SKIN, Part.EYES, Part.BROWS, Part.GLASSES)
    big = _dilate(_dilate(eyes) & face) & face  # two pixels larger, never onto hair or background
    ring = _dilate(big) & ~big & face
    out = torch.where(big & (lum < 0.55), iris, rgb)
    out = torch.where(big & (lum >= 0.55), white, out)
    out = torch.where(big & ~eyes, iris * 0.9, out)  # the enlarged rim belongs to the iris colour
    out = torch.where(ring, out * 0.25, out)
    return out.clamp(0.0, 1.0)


def _keep(rgb: Tensor, parts: Tensor | None) -> Tensor:
    """The input unchanged (a copy)."""
    return rgb.clone()


STYLE_FILTERS: dict[str, StyleFilter] = {
    f.name: f
    for f in (
        StyleFilter("bronze_statue", "turn the person into a bronze statue", _bronze, False,
                    "bronze ramp of luminance, blank eyes; global without parts"),
        StyleFilter("golden_statue", "make it a golden statue", _gold, False,
                    "gold ramp of luminance, blank eyes; global without parts"),
        StyleFilter("marble_statue", "turn the portrait into a white marble sculpture", _marble, False,
                    "cool bright stone ramp, blank eyes; global without parts"),
        StyleFilter("pencil_sketch", "make it a pencil sketch", _pencil, False,
                    "paper tone plus Sobel strokes; global without parts"),
        StyleFilter("pop_art", "turn it into pop art", _pop_art, False,
                    "four-level posterisation with outlines; global without parts"),
        StyleFilter("zombie", "turn the person into a zombie", _zombie, True,
                    "green skin, purple lips, yellow eyes; RGB skin rule without parts"),
        StyleFilter("blue_hair", "give the person blue hair", _blue_hair, True,
                    "hair, brows and beard vivid blue; dark/grey non-skin pixels without parts"),
        StyleFilter("keep", "keep the portrait as it is", _keep, False,
                    "no edit: the input itself (the reconstruction anchor of distillation, configs/distill/anchor_styles)"),
        StyleFilter("anime_eyes", "give the person big anime eyes", _anime_eyes, True,
                    "eyes grown by 2 px, violet irises, outlines; eye-white-like pixels without parts"),
    )
}
"""The registered filters by name."""


def style_filter_names() -> list[str]:
    """Sorted names of the registered filters."""
    return sorted(STYLE_FILTERS)


def apply_style_filter(name: str, rgb: Tensor, parts: Tensor | None = None) -> Tensor:
    """Apply the filter ``name``.

    Args:
        name: a key of :data:`STYLE_FILTERS`.
        rgb: ``[B, 3, H, W]`` (or ``[3, H, W]``) float in ``[0, 1]``.
        parts: ``[B, H, W]`` (or ``[H, W]``) int part labels, or ``None`` for a real photo.

    Returns:
        The edited image, same shape as ``rgb``, in ``[0, 1]``.

    Raises:
        ValueError: for an unknown name (the message lists the known ones) or bad shapes.
    """
    if name not in STYLE_FILTERS:
        raise ValueError(f"unknown style filter {name!r}; known filters: {', '.join(style_filter_names())}")
    single = rgb.ndim == 3
    if single:
        rgb = rgb[None]
        parts = None if parts is None else parts[None]
    if rgb.ndim != 4 or rgb.shape[1] != 3:
        raise ValueError(f"rgb must have shape [B, 3, H, W], got {tuple(rgb.shape)}")
    if parts is not None and parts.shape != (rgb.shape[0], *rgb.shape[2:]):
        want = (rgb.shape[0], *rgb.shape[2:])
        raise ValueError(f"parts must have shape [B, H, W] = {want}, got {tuple(parts.shape)}")
    with torch.no_grad():
        out = STYLE_FILTERS[name].fn(rgb.float().clamp(0, 1), parts).to(rgb.dtype)
    return out[0] if single else out
