"""Which novel-view pixels the input view shows (pe3d.metrics.visibility), against analytic spheres."""

from __future__ import annotations

import math

import pytest
import torch

from pe3d.geometry import label_from_yaw_pitch, sample_rays
from pe3d.metrics.ground_truth import ViewTarget, psnr
from pe3d.metrics.visibility import masked_psnr, project_to_pixels, seen_from, split_psnr, surface_points

RES = 64
BIG = ((0.0, 0.0, 0.0), 0.22)
SMALL = ((0.12, 0.08, 0.26), 0.07)
"""A small sphere in front of the big one, to the right and up: it hides part of the big one from some cameras."""


def _hit(origins, directions, centre, radius):
    """Distance along each ray to the sphere's near side (inf on a miss)."""
    offset = origins - torch.tensor(centre)
    b = (offset * directions).sum(-1)
    c = (offset * offset).sum(-1) - radius**2
    disc = b * b - c
    t = -b - disc.clamp_min(0).sqrt()
    return torch.where((disc > 0) & (t > 0), t, torch.full_like(t, math.inf))


def _scene_depth(labels):
    """Ray depth of the two-sphere scene, ``[B, 1, R, R]`` (0 on background), and its mask."""
    origins, directions = sample_rays(labels, RES)
    t = torch.minimum(_hit(origins, directions, *BIG), _hit(origins, directions, *SMALL))
    mask = torch.isfinite(t)
    depth = torch.where(mask, t, torch.zeros_like(t))
    return depth.view(-1, 1, RES, RES), mask.view(-1, 1, RES, RES)


def _analytic_seen(points, source_labels):
    """Whether each point is the first surface on the segment from the source camera to it."""
    origin = sample_rays(source_labels, 1)[0][:, :1]
    direction = points - origin
    distance = direction.norm(dim=-1)
    direction = direction / distance[..., None]
    first = torch.minimum(_hit(origin.expand_as(points), direction, *BIG), _hit(origin.expand_as(points), direction, *SMALL))
    x, y, _ = project_to_pixels(source_labels, points, RES)
    inside = (x > -0.5) & (x < RES - 0.5) & (y > -0.5) & (y < RES - 0.5)
    return ((first - distance).abs() < 1e-3) & inside


@pytest.mark.parametrize("yaw_deg,pitch_deg", [(40.0, 0.0), (-60.0, 10.0), (0.0, 25.0)])
def test_seen_pixels_match_the_analytic_visibility(yaw_deg, pitch_deg):
    source = label_from_yaw_pitch(0.0, 0.0)
    target = label_from_yaw_pitch(math.radians(yaw_deg), math.radians(pitch_deg))
    s_depth, s_mask = _scene_depth(source)
    t_depth, t_mask = _scene_depth(target)
    seen = seen_from(target, t_depth, t_mask, source, s_depth, s_mask)
    truth = _analytic_seen(surface_points(target, t_depth), source).view_as(t_mask) & t_mask
    fg = float(t_mask.sum())
    assert float(truth.sum()) < 0.95 * fg, "the case must hide a real part of the scene"
    # The tolerance and the neighbourhood err towards "seen" at grazing angles (hidden is a lower bound) ...
    false_seen, false_hidden = float((seen & ~truth).sum()) / fg, float((~seen & truth).sum()) / fg
    assert false_seen < 0.07 and false_hidden < 0.015, (false_seen, false_hidden)
    # ... and the nearest pixel alone with a tight tolerance calls hardly anything seen that is hidden.
    strict = seen_from(target, t_depth, t_mask, source, s_depth, s_mask, tolerance=0.005, radius=0)
    assert float((strict & ~truth).sum()) / fg < 0.002
    assert not (seen & ~t_mask).any(), "background pixels are never 'seen'"


def test_a_view_sees_all_of_itself():
    labels = label_from_yaw_pitch(math.radians(20.0), 0.0)
    depth, mask = _scene_depth(labels)
    assert torch.equal(seen_from(labels, depth, mask, labels, depth, mask), mask)


def test_masked_psnr_and_the_split():
    torch.manual_seed(0)
    target = torch.rand(2, 3, 8, 8)
    pred = target.clone()
    mask = torch.zeros(2, 1, 8, 8, dtype=torch.bool)
    mask[:, :, :4] = True
    pred[:, :, :4] += 0.1  # error only inside the mask
    assert torch.allclose(masked_psnr(pred, target, torch.ones_like(mask)), psnr(pred, target), atol=1e-4)
    inside = masked_psnr(pred, target, mask)
    assert torch.all(inside < 21) and torch.all(masked_psnr(pred, target, ~mask) >= 99)
    empty = masked_psnr(pred, target, torch.zeros_like(mask))
    assert torch.isnan(empty).all()

    # A render wrong only where the input cannot see: the whole error lies in the hidden share.
    source_labels = label_from_yaw_pitch(0.0, 0.0)
    target_labels = label_from_yaw_pitch(math.radians(60.0), 0.0)
    s_depth, s_mask = _scene_depth(source_labels)
    t_depth, t_mask = _scene_depth(target_labels)
    truth = torch.rand(1, 3, RES, RES)
    src = ViewTarget(0.0, 0.0, source_labels, truth, truth, s_depth, s_mask)
    view = ViewTarget(60.0, 0.0, target_labels, truth, truth, t_depth, t_mask)
    hidden = t_mask & ~seen_from(target_labels, t_depth, t_mask, source_labels, s_depth, s_mask)
    render = torch.where(hidden, 1 - truth, truth)
    split = split_psnr(render, view, src)
    assert split.hidden_error_share == pytest.approx(1.0)
    assert split.seen_psnr >= 99 and split.hidden_psnr < 10
    assert split.hidden_share == pytest.approx(float(hidden.float().mean()))


def test_bad_shapes_are_named():
    labels = label_from_yaw_pitch(0.0, 0.0)
    depth, mask = _scene_depth(labels)
    with pytest.raises(ValueError, match="source mask"):
        seen_from(labels, depth, mask, labels, depth, mask[:, :, :8])
    with pytest.raises(ValueError, match="tolerance"):
        seen_from(labels, depth, mask, labels, depth, mask, tolerance=0.0)
