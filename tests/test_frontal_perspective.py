"""The frontal plane read in perspective (``RayMarchOptions.frontal_perspective``): each of its cells is one pixel of the
frontal camera at every depth, both sampling paths agree, and 0 leaves EG3D's projection unchanged."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from pe3d.geometry import label_from_yaw_pitch, sample_rays
from pe3d.rendering import RayMarchOptions, RendererConfig, TriplaneRenderer
from pe3d.rendering.planes import (
    FRONTAL_PLANE,
    frontal_scale,
    plane_gather_table,
    sample_from_planes,
    sample_mean_from_planes,
    sample_mean_from_table,
)

torch.set_num_threads(2)

BOX = 0.6333
DISTANCE = 2.7


def _frontal_ray_points(resolution: int = 8, depths: int = 9) -> torch.Tensor:
    """``[1, R*R*depths, 3]``: points at ``depths`` distances along every ray of the frontal camera, within the box."""
    origins, directions = sample_rays(label_from_yaw_pitch(0.0, 0.0), resolution)  # [1, R*R, 3]
    t = torch.linspace(DISTANCE - 0.45 * BOX, DISTANCE + 0.45 * BOX, depths)
    points = origins[:, :, None] + directions[:, :, None] * t[None, None, :, None]  # [1, R*R, depths, 3]
    return points.reshape(1, -1, 3)


def _frontal_plane_coordinates(points: torch.Tensor, frontal_perspective: float) -> torch.Tensor:
    """``[R*R, depths, 2]``: where each point reads the frontal plane, by sampling planes that hold their own
    ``(u, v)`` coordinates (exact under bilinear sampling inside the plane)."""
    size = 16
    centres = (2.0 * torch.arange(size) + 1.0) / size - 1.0
    v, u = torch.meshgrid(centres, centres, indexing="ij")
    planes = torch.zeros(1, 3, 2, size, size)
    planes[0, FRONTAL_PLANE] = torch.stack((u, v))
    sampled = sample_from_planes(planes, points, BOX, frontal_perspective=frontal_perspective)[0, FRONTAL_PLANE]
    return sampled.reshape(-1, 9, 2)


def test_frontal_scale_is_the_pinhole_ratio_and_one_when_off() -> None:
    z = torch.tensor([-0.3, 0.0, 0.2])
    torch.testing.assert_close(frontal_scale(z, DISTANCE), DISTANCE / (DISTANCE - z))
    torch.testing.assert_close(frontal_scale(z, 0.0), torch.ones(3))


def test_every_point_of_a_frontal_ray_reads_the_same_frontal_cell() -> None:
    points = _frontal_ray_points()
    warped = _frontal_plane_coordinates(points, DISTANCE)
    spread = (warped - warped[:, :1]).abs().amax()
    assert spread < 1e-5, f"a frontal ray's points read the frontal plane {float(spread):.2e} apart"
    # EG3D's orthographic projection reads the same rays at points spread over a fraction of a cell (1/8 of
    # the plane's [-1, 1] is one cell of an 16^2 plane): what the option removes
    orthographic = _frontal_plane_coordinates(points, 0.0)
    assert (orthographic - orthographic[:, :1]).abs().amax() > 0.05
    # the other two planes are read as before
    planes = torch.randn(1, 3, 4, 16, 16)
    with_option = sample_from_planes(planes, points, BOX, frontal_perspective=DISTANCE)[:, 1:]
    torch.testing.assert_close(with_option, sample_from_planes(planes, points, BOX)[:, 1:])


def test_box_points_outside_the_frontal_frustum_read_the_plane_edge_and_outside_points_read_zeros() -> None:
    """A point of the box in front of ``z = 0`` near a side face lies outside the frontal camera's frustum: it reads
    the frontal plane's edge, as unwarped points on the box's faces do (half the edge cell, grid_sample's border);
    a point outside the box reads zeros, as without the option."""
    planes = torch.zeros(1, 3, 1, 16, 16)
    planes[0, FRONTAL_PLANE] = 1.0
    half = BOX / 2
    points = torch.tensor([[[0.95 * half, 0.0, 0.9 * half],  # in the box, beyond the frustum: the edge, 0.5
                            [0.0, -0.99 * half, 0.5 * half],  # near the bottom face, in front: the edge, 0.5
                            [1.2 * half, 0.0, 0.0],  # outside the box: 0
                            [0.0, 0.0, 0.5 * half]]])  # inside the frustum: the plane's value, 1
    expected = torch.tensor([0.5, 0.5, 0.0, 1.0])
    grid = sample_from_planes(planes, points, BOX, frontal_perspective=DISTANCE)[0, FRONTAL_PLANE, :, 0]
    torch.testing.assert_close(grid, expected)
    table = sample_mean_from_table(plane_gather_table(planes), points, BOX, DISTANCE)[0, :, 0] * 3
    torch.testing.assert_close(table, expected)


def test_the_plane_through_the_origin_reads_as_before() -> None:
    torch.manual_seed(0)
    planes = torch.randn(2, 3, 5, 16, 16)
    coords = torch.rand(2, 500, 3) * BOX - BOX / 2
    coords[..., 2] = 0.0
    torch.testing.assert_close(sample_mean_from_planes(planes, coords, BOX, frontal_perspective=DISTANCE),
                               sample_mean_from_planes(planes, coords, BOX))


def test_gather_table_and_grid_sample_agree_with_the_warp() -> None:
    torch.manual_seed(1)
    planes = torch.randn(2, 3, 6, 16, 16)
    coords = torch.rand(2, 3000, 3) * 1.2 * BOX - 0.6 * BOX  # some points outside the box
    expected = sample_mean_from_planes(planes, coords, BOX, frontal_perspective=DISTANCE)
    table = plane_gather_table(planes)
    torch.testing.assert_close(sample_mean_from_table(table, coords, BOX, DISTANCE), expected, atol=2e-6, rtol=1e-5)
    assert (expected - sample_mean_from_planes(planes, coords, BOX)).abs().amax() > 1e-2


def test_renderer_passes_the_option_to_both_sampling_paths() -> None:
    torch.manual_seed(2)
    config = RendererConfig()
    config = dataclasses.replace(config, ray_march=dataclasses.replace(config.ray_march, box_warp=BOX,
                                                                       frontal_perspective=DISTANCE))
    renderer = TriplaneRenderer(config)
    plain = TriplaneRenderer(dataclasses.replace(config, ray_march=dataclasses.replace(config.ray_march, frontal_perspective=0.0)))
    plain.load_state_dict(renderer.state_dict())
    planes = torch.randn(1, 3, config.decoder.in_channels, 16, 16)
    coords = torch.rand(1, 2000, 3) * BOX - BOX / 2
    trained = renderer.query_field(planes, coords)
    with torch.no_grad():
        inferred = renderer.query_field(planes, coords)
        orthographic = plain.query_field(planes, coords)
    torch.testing.assert_close(inferred.features, trained.features.detach(), atol=2e-6, rtol=1e-5)
    assert (inferred.features - orthographic.features).abs().amax() > 1e-3


@pytest.mark.parametrize("value", [-1.0, 0.2])
def test_a_distance_inside_the_box_is_refused_with_the_field_named(value: float) -> None:
    with pytest.raises(ValueError, match="frontal_perspective"):
        RayMarchOptions(box_warp=BOX, frontal_perspective=value)


def test_hull_mask_of_the_frontal_plane_follows_its_perspective_rays() -> None:
    """A field that is a box off the centre, in front of ``z = 0``: read in perspective, the frontal plane's hull mask
    is 1 where the frontal camera's ray through the read point meets the box and 0 where it misses it; the other two
    planes' masks are the orthographic ones."""
    from types import SimpleNamespace

    from pe3d.refinement import visual_hull_masks
    from pe3d.rendering.decoder import DecoderOutput

    low, high = torch.tensor([0.1, -0.25, 0.0]), torch.tensor([0.3, -0.05, 0.2])

    def field(distance: float) -> SimpleNamespace:
        inside = lambda coords: ((coords >= low) & (coords <= high)).all(dim=-1, keepdim=True)  # noqa: E731
        return SimpleNamespace(config=SimpleNamespace(ray_march=RayMarchOptions(box_warp=1.0, frontal_perspective=distance)),
                               query_field=lambda planes, coords: DecoderOutput(torch.zeros(*coords.shape[:2], 3),
                                                                                torch.where(inside(coords), 50.0, -50.0)))

    masks = visual_hull_masks(field(DISTANCE), torch.zeros(1, 3, 4, 64, 64), threshold=0.3, dilation=0)
    points = torch.rand(6000, 3, generator=torch.Generator().manual_seed(0)) - 0.5
    seen = sample_from_planes(masks, points[None], box_warp=1.0, mode="nearest", frontal_perspective=DISTANCE)[0, :, :, 0]
    # where each point's frontal ray is at depth z' (a sweep through the box's depth), against the box's x-y extent
    read = points[:, :2] * frontal_scale(points[:, 2:], DISTANCE)
    sweep = torch.linspace(float(low[2]), float(high[2]), 201)
    on_ray = read[:, None, :] / frontal_scale(sweep, DISTANCE)[None, :, None]  # [N, 201, 2]
    hits = ((on_ray >= low[:2] + 0.02) & (on_ray <= high[:2] - 0.02)).all(dim=-1).any(dim=1)
    misses = ~((on_ray >= low[:2] - 0.02) & (on_ray <= high[:2] + 0.02)).all(dim=-1).any(dim=1)
    assert hits.sum() > 50 and misses.sum() > 50
    assert bool((seen[FRONTAL_PLANE][hits] == 1).all()) and bool((seen[FRONTAL_PLANE][misses] == 0).all())
    orthographic = visual_hull_masks(field(0.0), torch.zeros(1, 3, 4, 64, 64), threshold=0.3, dilation=0)
    assert not torch.equal(masks[:, FRONTAL_PLANE], orthographic[:, FRONTAL_PLANE])
    torch.testing.assert_close(masks[:, 1:], orthographic[:, 1:])
