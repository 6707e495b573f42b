"""Procedural textured backgrounds, consistent across views, for prior training.

The world renders heads on a flat background, so a prior trained on it has never seen the
textured backgrounds of real photos (flags, walls, windows) and renders them as streaks.
A renderer whose background is read from the triplane (``background_source: field``) sees
behind the volume the colour decoded at the far end of each ray, clamped into the triplane's
box: a wall. :func:`wall_background` paints a random texture on that wall (smooth colour waves
plus a few sharp-edged rectangles) and returns what each camera sees of it, so every view of
one item shows the same wall from its own viewpoint, as the model would render it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from pe3d.geometry.rays import sample_rays
from pe3d.rendering.renderer import background_wall_points


@dataclass(frozen=True)
class WallGeometry:
    """Where the model's background wall lies: the triplane box (``box_warp``, side length,
    centred at the origin) and the ray distance read as background (``ray_end``)."""

    box_warp: float
    ray_end: float

    def __post_init__(self) -> None:
        if self.box_warp <= 0 or self.ray_end <= 0:
            raise ValueError(f"box_warp and ray_end must be > 0, got {self.box_warp}, {self.ray_end}")


MINI_WALL = WallGeometry(box_warp=0.6333, ray_end=3.1)
"""The background wall of ``configs/model/mini.yaml`` (pair generators, which know no model, paint on it)."""


def wall_points(label: Tensor, resolution: int, wall: WallGeometry) -> Tensor:
    """The wall point each pixel sees: ``[K, R*R, 3]`` for camera labels ``[K, 25]``.

    The rule of :meth:`~pe3d.rendering.renderer.TriplaneRenderer.query_background`
    (:func:`~pe3d.rendering.renderer.background_wall_points`) at the box's faces, i.e. with
    ``RayMarchOptions.wall_inset`` 0: the shipped prior learned its walls from data painted this way, so
    the painting keeps it (a renderer with the default inset of 1 reads the same points except for the
    rays whose point lies within one plane cell of the box's side and top faces or past them: those it
    reads one cell inside the face; and a point within ``RayMarchOptions.wall_face_blend`` cells of the bottom or
    back face it reads as a blend of the face's read and the read that far in).
    """
    origins, directions = sample_rays(label, resolution)
    return background_wall_points(origins, directions, wall.box_warp, wall.ray_end)


@dataclass
class WallTexture:
    """A random colour field on the wall (coordinates in box units, i.e. ``point / box_warp``).

    ``base [3]`` plus ``waves`` sinusoids (directions ``[W, 3]``, frequencies in cycles per box,
    phases, colour amplitudes ``[W, 3]``) plus axis-aligned rectangles (centres, half sizes,
    colours) painted over them with hard edges. Draw one with :meth:`random`.
    """

    base: Tensor
    wave_directions: Tensor
    wave_frequencies: Tensor
    wave_phases: Tensor
    wave_colours: Tensor
    rect_centres: Tensor
    rect_half_sizes: Tensor
    rect_colours: Tensor

    @classmethod
    def random(cls, generator: torch.Generator | None = None, waves: int = 3, rectangles: int = 3,
               max_frequency: float = 4.0) -> "WallTexture":
        """A texture with ``waves`` smooth colour waves (0.5 to ``max_frequency`` cycles per box)
        and up to ``rectangles`` hard-edged patches (each present with probability 1/2)."""

        def rand(*shape: int) -> Tensor:
            return torch.rand(*shape, generator=generator)

        directions = torch.randn(waves, 3, generator=generator)
        directions = directions / directions.norm(dim=1, keepdim=True).clamp_min(1e-6)
        present = rand(rectangles) < 0.5
        half_sizes = 0.05 + 0.25 * rand(rectangles, 3)
        half_sizes[:, 2] = 1.0  # prisms through the box's depth (z): every patch reaches the back wall
        return cls(
            base=rand(3),
            wave_directions=directions,
            wave_frequencies=0.5 + (max_frequency - 0.5) * rand(waves),
            wave_phases=2 * math.pi * rand(waves),
            wave_colours=(rand(waves, 3) - 0.5) * 0.6,
            rect_centres=(rand(rectangles, 3) - 0.5)[present],
            rect_half_sizes=half_sizes[present],
            rect_colours=rand(rectangles, 3)[present],
        )

    def colour(self, points: Tensor) -> Tensor:
        """Colours ``[..., 3]`` in ``[0, 1]`` at box-unit points ``[..., 3]``."""
        angles = 2 * math.pi * (points @ self.wave_directions.T) * self.wave_frequencies + self.wave_phases
        rgb = self.base + torch.sin(angles) @ self.wave_colours
        for centre, half_size, colour in zip(self.rect_centres, self.rect_half_sizes, self.rect_colours):
            inside = ((points - centre).abs() <= half_size).all(dim=-1, keepdim=True)
            rgb = torch.where(inside, colour, rgb)
        return rgb.clamp(0.0, 1.0)


def wall_background(label: Tensor, resolution: int, wall: WallGeometry, texture: WallTexture) -> Tensor:
    """What cameras ``label [K, 25]`` see of ``texture`` on the wall: ``[K, 3, R, R]``."""
    points = wall_points(label, resolution, wall) / wall.box_warp
    rgb = texture.colour(points)  # [K, R*R, 3]
    return rgb.transpose(1, 2).reshape(label.shape[0], 3, resolution, resolution)
