"""Where a refinement residual (:mod:`pe3d.refinement`) may act: the reconstruction's visual hull, and its empty space.

A triplane residual fitted to one photo changes every point along each line through the box that projects onto a
changed plane cell. Left free it paints the photo's background onto the box's walls, which the renderer reads as
each ray's background (:func:`pe3d.rendering.renderer.background_wall_points`), and grows density in empty space
where the photo shows something the reconstruction put elsewhere; other views see both as streaks and posts.
:func:`visual_hull_masks` keeps the residual to the plane cells over the reconstruction's occupied field, and
:class:`EmptySpace` holds points inside that reach which the reconstruction leaves empty, where the fit is asked to
keep the opacity at zero (docs/results/quality/refinement.md, "Kept to the visual hull").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import torch
from torch import Tensor
from torch.nn import functional as F

from pe3d.errors import InvalidInput

__all__ = ["EMPTY_OPACITY", "HULL_GRID_SIDE", "EmptySpace", "field_occupancy", "frontal_occupancy", "visual_hull_masks"]

HULL_GRID_SIDE = 64
"""Most cells per side of the 3D grid the field is decoded on (``HULL_GRID_SIDE³`` points; larger planes get the
masks resized to their side)."""

EMPTY_OPACITY = 0.05
"""A grid point whose opacity over one cell is below this is empty space (:meth:`EmptySpace.of`)."""


def _grid_side(planes: Tensor) -> int:
    batch, count, _, side, width = planes.shape
    if count != 3 or side != width:
        raise InvalidInput(f"residual region: planes must be [B, 3, C, R, R], got {tuple(planes.shape)}")
    return min(side, HULL_GRID_SIDE)


def _grid_points(box_warp: float, side: int, like: Tensor) -> Tensor:
    """``[side³, 3]`` cell centres over the box ``[-box_warp/2, box_warp/2]³``, ``x`` slowest, ``z`` fastest."""
    centres = ((torch.arange(side, dtype=like.dtype, device=like.device) + 0.5) / side * 2 - 1) * (box_warp / 2)
    return torch.stack(torch.meshgrid(centres, centres, centres, indexing="ij"), dim=-1).reshape(-1, 3)


def cell_opacity(renderer, planes: Tensor, points: Tensor, cell: float) -> Tensor:
    """``[B, K, 1]`` opacity over one cell of side ``cell``, ``1 - exp(-σ · cell)``, of ``renderer``'s field of
    ``planes`` at ``points [B, K, 3]`` (differentiable in ``planes``)."""
    from pe3d.rendering.volume import activate_density

    options = renderer.config.ray_march
    sigma = renderer.query_field(planes, points).sigma
    return 1 - torch.exp(-activate_density(sigma, options.density_activation) * cell)


def field_occupancy(renderer, planes: Tensor) -> Tensor:
    """``[B, G, G, G]`` (indexed ``x, y, z``) opacity over one cell of ``renderer``'s field of ``planes
    [B, 3, C, R, R]`` at the centres of a ``G = min(R, HULL_GRID_SIDE)`` grid over the triplane's box (no autograd).
    ``renderer`` is a :class:`~pe3d.rendering.renderer.TriplaneRenderer`."""
    side = _grid_side(planes)
    box = renderer.config.ray_march.box_warp
    points = _grid_points(box, side, planes)[None].expand(planes.shape[0], -1, -1)
    with torch.no_grad():
        opacity = cell_opacity(renderer, planes.detach(), points, box / side)
    return opacity.reshape(planes.shape[0], side, side, side)


def frontal_occupancy(renderer, planes: Tensor) -> Tensor:
    """``[B, G, G, G]`` (indexed ``x, y, z``) like :func:`field_occupancy`, on the grid the frontal plane is read along
    when the renderer reads it in perspective (``ray_march.frontal_perspective`` > 0): the point of index ``(i, j, k)``
    lies at depth ``z_k`` on the frontal camera's ray through the frontal plane's cell ``(i, j)``
    (:func:`~pe3d.rendering.planes.frontal_scale`), so the maximum over ``k`` is that cell's occupancy."""
    from pe3d.rendering.planes import frontal_scale

    side = _grid_side(planes)
    options = renderer.config.ray_march
    points = _grid_points(options.box_warp, side, planes)
    scale = frontal_scale(points[:, 2:], options.frontal_perspective)
    points = torch.cat([points[:, :2] / scale, points[:, 2:]], dim=1)[None].expand(planes.shape[0], -1, -1)
    with torch.no_grad():
        opacity = cell_opacity(renderer, planes.detach(), points, options.box_warp / side)
    return opacity.reshape(planes.shape[0], side, side, side)


def visual_hull_masks(renderer, planes: Tensor, threshold: float, dilation: int,
                      occupancy: Optional[Tensor] = None, softness: int = 0) -> Tensor:
    """``[B, 3, 1, R, R]`` masks of the cells of each plane of ``planes [B, 3, C, R, R]`` above which
    ``renderer``'s field of those planes is occupied: the field's :func:`field_occupancy` (or ``occupancy``, computed
    before) is reduced by its maximum along each plane's normal, cells above ``threshold`` are kept and the kept
    region grows by ``dilation`` cells (a max filter). Multiplied into a residual, they keep it where the field has a
    surface, out of the empty space and the background that a point at a box wall reads.

    With ``ray_march.frontal_perspective`` the frontal plane's mask is taken along its perspective rays
    (:func:`frontal_occupancy`), as the renderer reads it.

    ``softness`` (cells, odd; 0 or 1 = a hard 0/1 edge): the mask is then averaged over ``softness x softness`` cells
    (edge cells replicated), so that it falls from 1 to 0 over that many cells instead of at one cell's edge. A hard
    edge follows the cells' staircase, and a residual that paints something the reconstruction does not hold (a
    photo's collar) shows it as steps; a soft one lets the residual fade out."""
    from pe3d.rendering.planes import _PLANE_UV_AXES, FRONTAL_PLANE

    grid_side = _grid_side(planes)
    batch, side = planes.shape[0], planes.shape[-1]
    occupancy = field_occupancy(renderer, planes) if occupancy is None else occupancy
    frontal = frontal_occupancy(renderer, planes) if renderer.config.ray_march.frontal_perspective > 0 else None
    masks = []
    for plane, (width_axis, height_axis) in enumerate(_PLANE_UV_AXES.tolist()):
        normal = 3 - width_axis - height_axis
        along = frontal if plane == FRONTAL_PLANE and frontal is not None else occupancy  # the plane's own rays
        seen = along.amax(dim=1 + normal)  # [B, the two remaining axes in order]
        masks.append(seen if height_axis < width_axis else seen.transpose(1, 2))  # -> [B, height, width]
    kept = (torch.stack(masks, dim=1) > threshold).to(planes.dtype).reshape(batch * 3, 1, grid_side, grid_side)
    if dilation:
        kept = F.max_pool2d(kept, 2 * dilation + 1, stride=1, padding=dilation)
    if softness > 1:
        if softness % 2 == 0:
            raise InvalidInput(f"visual hull softness must be odd (a centred box of cells), got {softness}")
        kept = F.avg_pool2d(F.pad(kept, (softness // 2,) * 4, mode="replicate"), softness, stride=1)
    if grid_side != side:
        kept = F.interpolate(kept, size=(side, side), mode="nearest")
    return kept.reshape(batch, 3, 1, side, side)


@dataclass
class EmptySpace:
    """Points of each item that its reconstruction leaves empty (opacity below :data:`EMPTY_OPACITY` on the
    :func:`field_occupancy` grid) and that a residual within ``masks`` can reach (every plane's cell on), with the
    field's opacity there: :func:`pe3d.refinement.fit_detail_residual` adds the mean opacity at a random draw of
    them to its loss, so that the residual does not grow density where the reconstruction has none (a post beside
    the shoulder, seen from the side)."""

    points: list[Tensor]
    """Per item ``[M_i, 3]`` world points (``M_i`` may be 0)."""
    opacity: Callable[[Tensor, Tensor], Tensor]
    """``(planes [B, 3, C, R, R], points [B, K, 3]) -> [B, K, 1]`` opacity over one grid cell (differentiable)."""

    @classmethod
    def of(cls, renderer, planes: Tensor, masks: Optional[Tensor] = None, occupancy: Optional[Tensor] = None) -> "EmptySpace":
        """The empty space of ``renderer``'s field of ``planes`` within ``masks`` (``None``: the whole box)."""
        from pe3d.rendering.planes import sample_from_planes

        side = _grid_side(planes)
        box = renderer.config.ray_march.box_warp
        occupancy = field_occupancy(renderer, planes) if occupancy is None else occupancy
        grid = _grid_points(box, side, planes)
        empty = occupancy.reshape(planes.shape[0], -1) < EMPTY_OPACITY
        if masks is not None:
            reach = sample_from_planes(masks.to(planes.dtype), grid[None].expand(planes.shape[0], -1, -1), box, mode="nearest",
                                       frontal_perspective=renderer.config.ray_march.frontal_perspective)
            empty &= reach[..., 0].amin(dim=1) > 0  # [B, N]: every plane's cell may change
        return cls([grid[row] for row in empty], lambda p, x: cell_opacity(renderer, p, x, box / side))

    def draw(self, count: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """``count`` points per item drawn with replacement, ``[B, count, 3]``, and ``[B]`` weights (0 for an item
        without empty points, whose draw is a placeholder)."""
        like = next((points for points in self.points if points.shape[0]), torch.zeros(0, 3))
        picks, weights = [], []
        for points in self.points:
            if points.shape[0] == 0:
                picks.append(like.new_zeros(count, 3))
                weights.append(0.0)
                continue
            picks.append(points[torch.randint(points.shape[0], (count,), generator=generator).to(points.device)])
            weights.append(1.0)
        return torch.stack(picks), torch.tensor(weights, dtype=like.dtype, device=like.device)
