import math

import pytest
import torch

from pe3d.geometry import (
    FFHQ_LOOKAT,
    FFHQ_RADIUS,
    cam2world_from_yaw_pitch,
    camera_label,
    default_intrinsics,
    label_from_yaw_pitch,
    mirror_camera_labels,
    sample_camera_labels,
    sample_rays,
    split_label,
    yaw_pitch_from_cam2world,
)


def test_ffhq_intrinsics_match_eg3d_focal():
    k = default_intrinsics()
    assert k[0, 0].item() == pytest.approx(4.2647, abs=2e-3)
    assert k[0, 2].item() == 0.5 and k[1, 2].item() == 0.5


def test_frontal_camera_matches_eg3d_layout():
    c2w = cam2world_from_yaw_pitch(0.0, 0.0)[0]
    assert torch.allclose(c2w[:3, 3], torch.tensor([0.0, 0.0, FFHQ_RADIUS]), atol=1e-6)
    # columns: right (+x), down (-y world), forward (towards the look-at point, -z)
    assert torch.allclose(c2w[:3, 0], torch.tensor([1.0, 0.0, 0.0]), atol=1e-6)
    assert torch.allclose(c2w[:3, 1], torch.tensor([0.0, -1.0, 0.0]), atol=1e-6)
    assert torch.allclose(c2w[:3, 2], torch.tensor([0.0, 0.0, -1.0]), atol=1e-6)


def test_label_roundtrip_and_shape():
    label = label_from_yaw_pitch([0.1, -0.3], [0.05, 0.2])
    assert label.shape == (2, 25)
    c2w, k = split_label(label)
    assert torch.equal(camera_label(c2w, k), label)
    with pytest.raises(ValueError, match=r"\[B, 25\]"):
        split_label(torch.zeros(2, 24))


def test_yaw_pitch_roundtrip():
    yaw = torch.tensor([-0.6, 0.0, 0.4])
    pitch = torch.tensor([0.2, -0.3, 0.0])
    got_yaw, got_pitch = yaw_pitch_from_cam2world(cam2world_from_yaw_pitch(yaw, pitch))
    assert torch.allclose(got_yaw, yaw, atol=1e-5) and torch.allclose(got_pitch, pitch, atol=1e-5)


def test_positive_yaw_moves_camera_to_plus_x_and_pitch_up():
    c2w = cam2world_from_yaw_pitch([0.5, 0.0], [0.0, 0.3])
    assert c2w[0, 0, 3] > 0 and c2w[1, 1, 3] > 0


def test_centre_ray_hits_lookat():
    label = label_from_yaw_pitch([0.0, 0.7], [0.0, -0.2])
    origins, dirs = sample_rays(label, 2)  # 2x2 pixels: the centre lies between them
    centre = dirs.mean(1)
    centre = centre / centre.norm(dim=-1, keepdim=True)
    to_lookat = torch.tensor(FFHQ_LOOKAT) - origins[:, 0]
    to_lookat = to_lookat / to_lookat.norm(dim=-1, keepdim=True)
    assert torch.allclose(centre, to_lookat, atol=1e-4)
    assert torch.allclose(dirs.norm(dim=-1), torch.ones(2, 4), atol=1e-5)


def test_ray_pixel_order_is_row_major_x_fast():
    origins, dirs = sample_rays(label_from_yaw_pitch(0.0, 0.0), 4)
    grid = dirs.reshape(4, 4, 3)
    assert grid[0, 3, 0] > grid[0, 0, 0]  # x grows along a row (camera right = +x)
    assert grid[3, 0, 1] < grid[0, 0, 1]  # rows go down in the world


def test_field_of_view_spans_expected_half_width():
    _, dirs = sample_rays(label_from_yaw_pitch(0.0, 0.0), 64)
    edge = dirs.reshape(64, 64, 3)[32, 0]
    half_angle = math.atan2(-edge[0].item(), -edge[2].item())
    expected = math.atan(0.5 / 4.2647) * (31.5 / 32)
    assert half_angle == pytest.approx(expected, rel=1e-3)


def test_pose_sampling_is_seeded_and_clamped():
    gen = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    a = sample_camera_labels(64, yaw_std=1.0, yaw_limit=0.5, generator=gen())
    b = sample_camera_labels(64, yaw_std=1.0, yaw_limit=0.5, generator=gen())
    assert torch.equal(a, b)
    yaw, _ = yaw_pitch_from_cam2world(split_label(a)[0])
    assert yaw.abs().max() <= 0.5 + 1e-5


def test_mirrored_cameras_see_the_mirrored_scene_flipped():
    """The ray through pixel (row, R-1-col) of the mirrored camera is the ray through (row, col) mirrored in
    x = 0, also for off-centre principal points; yaw is negated, pitch kept, and mirroring twice is the identity."""
    torch.manual_seed(0)
    labels = sample_camera_labels(3, yaw_std=0.5)
    labels[:, 18] += torch.tensor([0.03, -0.02, 0.0])  # cx
    mirrored = mirror_camera_labels(labels)
    flip = torch.tensor([-1.0, 1.0, 1.0])
    (o, d), (om, dm) = sample_rays(labels, 8), sample_rays(mirrored, 8)
    assert torch.allclose(om.reshape(3, 8, 8, 3).flip(2), (o * flip).reshape(3, 8, 8, 3), atol=1e-6)
    assert torch.allclose(dm.reshape(3, 8, 8, 3).flip(2), (d * flip).reshape(3, 8, 8, 3), atol=1e-6)
    (yaw, pitch), (yaw_m, pitch_m) = (yaw_pitch_from_cam2world(split_label(x)[0]) for x in (labels, mirrored))
    assert torch.allclose(yaw_m, -yaw, atol=1e-6) and torch.allclose(pitch_m, pitch, atol=1e-6)
    assert torch.allclose(mirror_camera_labels(mirrored), labels)
