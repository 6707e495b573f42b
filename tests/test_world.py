"""Tests of the embedded procedural portrait world (identities, SDF renders, split, filters)."""

from __future__ import annotations

import math

import pytest
import torch

from pe3d.geometry.cameras import label_from_yaw_pitch, split_label
from pe3d.geometry.rays import sample_rays
from pe3d.world import (
    HELDOUT_START,
    STYLE_FILTERS,
    Part,
    WorldRender,
    WorldSplit,
    apply_style_filter,
    get_field,
    render_identities,
    render_identity,
    sample_identity,
    write_filter_preview,
    write_world_preview,
)

RES = 48


def _labels(*views_deg: tuple[float, float]) -> torch.Tensor:
    yaw = torch.tensor([math.radians(y) for y, _ in views_deg])
    pitch = torch.tensor([math.radians(p) for _, p in views_deg])
    return label_from_yaw_pitch(yaw, pitch)


def _first_with(pred, seed: int = 0) -> int:
    return next(i for i in range(200) if pred(sample_identity(seed, i)))


@pytest.fixture(scope="module")
def hairy_index() -> int:
    return _first_with(lambda i: i.hair_style in ("short", "bun") and not i.has_glasses)


@pytest.fixture(scope="module")
def frontal(hairy_index) -> WorldRender:
    return render_identity(sample_identity(0, hairy_index), _labels((0, 0), (30, 0)), 64)


# ----------------------------------------------------------------------------- identities
def test_identity_deterministic_per_seed_and_index():
    assert sample_identity(3, 17) == sample_identity(3, 17)
    assert sample_identity(3, 17) != sample_identity(3, 18)
    assert sample_identity(3, 17) != sample_identity(4, 17)
    with pytest.raises(ValueError):
        sample_identity(-1, 0)


def test_identities_cover_styles():
    idents = [sample_identity(0, i) for i in range(150)]
    styles = {i.hair_style for i in idents}
    assert {"bald", "short", "long", "bun", "curly"} <= styles
    assert any(i.has_glasses for i in idents) and any(i.beard_style != "none" for i in idents)
    lum = [sum(i.skin_rgb) / 3 for i in idents]
    assert max(lum) - min(lum) > 0.4  # light to dark skin tones


def test_render_deterministic_and_identities_differ():
    lab = _labels((0, 0))
    a = render_identity(sample_identity(0, 1), lab, RES)
    b = render_identity(sample_identity(0, 1), lab, RES)
    c = render_identity(sample_identity(0, 2), lab, RES)
    assert torch.equal(a.rgb, b.rgb) and torch.equal(a.depth, b.depth) and torch.equal(a.parts, b.parts)
    assert (a.rgb - c.rgb).abs().mean() > 0.02


# ----------------------------------------------------------------------------- renders
def test_render_shapes_and_ranges(frontal):
    assert frontal.rgb.shape == (2, 3, 64, 64) and frontal.rgb.dtype == torch.float32
    assert frontal.depth.shape == (2, 1, 64, 64)
    assert frontal.parts.shape == (2, 64, 64) and frontal.parts.dtype == torch.int64
    assert frontal.rgb.min() >= 0 and frontal.rgb.max() <= 1
    bg = ~frontal.mask
    assert torch.all(frontal.rgb.permute(1, 0, 2, 3)[:, bg] == 1.0)  # white background
    assert torch.all(frontal.depth[:, 0][bg] == 0)


def test_frontal_masks_contain_face_parts(frontal):
    masks = frontal[0].masks()
    for key in ("skin", "hair", "eyes", "background"):
        assert masks[key].sum() > 4, key
    parts = set(frontal.parts[0].unique().tolist())
    assert {int(Part.BACKGROUND), int(Part.SKIN), int(Part.HAIR), int(Part.EYES)} <= parts
    # the face fills the frame like an FFHQ crop: foreground covers a large part of the image
    assert 0.35 < frontal.mask[0].float().mean() < 0.85
    # centre pixel (nose region) is skin, near the camera
    c = 32
    assert frontal.parts[0, c, c] == Part.SKIN
    assert 2.25 < frontal.depth[0, 0, c, c] < 2.7


@pytest.mark.parametrize("index", [0, 5])
def test_depth_range_over_poses(index):
    views = [(-60, 0), (60, 0), (0, 30), (0, -30), (45, 20)]
    r = render_identity(sample_identity(0, index), _labels(*views), 40)
    fg = r.depth[:, 0][r.mask]
    assert fg.numel() > 0 and fg.min() > 2.25 and fg.max() < 3.3
    assert torch.all(r.depth[:, 0][~r.mask] == 0)
    # every visible surface point lies well inside the unit box
    o, d = sample_rays(_labels(*views), 40)
    pts = (o + d * r.depth.reshape(len(views), -1, 1))[r.mask.reshape(len(views), -1)]
    assert pts.abs().max() < 0.47


def test_depth_is_on_the_surface(hairy_index, frontal):
    fld = get_field(sample_identity(0, hairy_index))
    o, d = sample_rays(_labels((0, 0)), 64)
    m = frontal.mask[0].reshape(-1)
    pts = o[0, m] + d[0, m] * frontal.depth[0].reshape(-1, 1)[m]
    err = fld.sdf(pts).abs()
    assert err.median() < 5e-4
    assert err.max() < 0.006  # grazing silhouette rays are accepted within half a pixel


def test_depth_reprojects_into_side_view(frontal):
    """Unproject frontal depth pixels, project into the yaw=+30 view: visible points agree."""
    labels = _labels((0, 0), (30, 0))
    o, d = sample_rays(labels[:1], 64)
    m = frontal.mask[0].reshape(-1)
    pts = o[0, m] + d[0, m] * frontal.depth[0].reshape(-1, 1)[m]  # [P, 3]
    cam2world, intr = split_label(labels[1:])
    w2c = torch.linalg.inv(cam2world[0])
    pc = pts @ w2c[:3, :3].T + w2c[:3, 3]
    uv = (pc[:, :2] / pc[:, 2:3]) * intr[0, 0, 0] + intr[0, 0, 2]
    px = (uv * 64 - 0.5).round().long()
    inside = (px >= 0).all(1) & (px < 64).all(1)
    px, pts = px[inside], pts[inside]
    expected = (pts - cam2world[0, :3, 3]).norm(dim=1)
    rendered = frontal.depth[1, 0, px[:, 1], px[:, 0]]
    fg = rendered > 0
    diff = (rendered - expected)[fg]
    visible = diff > -0.02  # occluded points have a much nearer rendered depth
    assert visible.float().mean() > 0.6
    assert diff[visible].abs().median() < 0.006
    assert (diff[visible].abs() < 0.02).float().mean() > 0.85


def test_render_identities_matches_single_renders():
    a, b = sample_identity(0, 3), sample_identity(0, 4)
    labels = _labels((10, 0), (-20, 5), (25, -5))
    both = render_identities([a, b, a], labels, 32)  # the two views of `a` are rendered together
    assert both.rgb.shape == (3, 3, 32, 32)
    for k, (ident, i) in enumerate(((a, 0), (b, 1), (a, 2))):
        one = render_identity(ident, labels[i : i + 1], 32)
        assert (both.rgb[k] - one.rgb[0]).abs().mean() < 1e-3
        assert (both.parts[k] == one.parts[0]).float().mean() > 0.995
    with pytest.raises(ValueError):
        render_identities([a, b], labels[:1], 32)


def test_supersample_antialiases():
    lab = _labels((0, 0))
    ident = sample_identity(0, 7)
    plain = render_identity(ident, lab, 32)
    ss = render_identity(ident, lab, 32, supersample=2)
    assert ss.rgb.shape == plain.rgb.shape and ss.depth.shape == plain.depth.shape
    assert 0 <= ss.rgb.min() and ss.rgb.max() <= 1
    assert (ss.mask != plain.mask).float().mean() < 0.05
    assert torch.all(ss.depth[:, 0][~ss.mask] == 0) and torch.all(ss.depth[:, 0][ss.mask] > 2.25)


# ----------------------------------------------------------------------------- split
def test_split_is_disjoint():
    split = WorldSplit(seed=0)
    train, held = split.train_indices(500), split.heldout_indices(500)
    assert not set(train) & set(held)
    assert min(held) >= HELDOUT_START > max(train)
    assert all(split.is_heldout(i) for i in held) and not any(split.is_heldout(i) for i in train)
    rtrain, rheld = split.random_indices("train", 50), split.random_indices("heldout", 50)
    assert max(rtrain) < HELDOUT_START <= min(rheld) and len(set(rtrain)) == 50
    assert split.identities("heldout", 1)[0] == sample_identity(0, HELDOUT_START)
    with pytest.raises(ValueError):
        split.train_indices(10, offset=HELDOUT_START)


# ----------------------------------------------------------------------------- filters
MASK_PARTS = {
    "zombie": (Part.SKIN, Part.LIPS, Part.EYES),
    "blue_hair": (Part.HAIR, Part.BROWS, Part.BEARD),
}


def test_keep_filter_returns_the_input_unchanged(frontal):
    rgb, parts = frontal.rgb, frontal.parts
    out = apply_style_filter("keep", rgb, parts)
    assert torch.equal(out, rgb) and out.data_ptr() != rgb.data_ptr()
    assert torch.equal(apply_style_filter("keep", rgb, None), rgb)


@pytest.mark.parametrize("name", sorted(set(STYLE_FILTERS) - {"keep"}))
def test_filter_changes_image_and_keeps_range(name, frontal):
    rgb, parts = frontal.rgb, frontal.parts
    out = apply_style_filter(name, rgb, parts)
    assert out.shape == rgb.shape and out.dtype == rgb.dtype
    assert out.min() >= 0 and out.max() <= 1
    changed = (out - rgb).abs().sum(1) > 0.05
    assert changed.float().mean() > 0.002, "filter should be clearly visible"
    bg = parts == Part.BACKGROUND
    assert torch.equal(out.permute(1, 0, 2, 3)[:, bg], rgb.permute(1, 0, 2, 3)[:, bg])
    if name in MASK_PARTS:
        target = torch.zeros_like(bg)
        for p in MASK_PARTS[name]:
            target |= parts == p
        assert torch.equal(out.permute(1, 0, 2, 3)[:, ~target], rgb.permute(1, 0, 2, 3)[:, ~target])
    # without parts (a real photo) the filter still runs and stays in range
    free = apply_style_filter(name, rgb, None)
    assert free.shape == rgb.shape and free.min() >= 0 and free.max() <= 1
    if name != "anime_eyes":  # its colour heuristic may find no eye whites in a small render
        assert (free - rgb).abs().mean() > 1e-3
    # deterministic and single-image friendly
    assert torch.equal(apply_style_filter(name, rgb[0], parts[0]), out[0])


@pytest.mark.parametrize("index", [1, 3, 6])
def test_filters_are_strong_on_the_face(index):
    r = render_identity(sample_identity(0, index), _labels((0, 0)), RES)
    rgb, parts = r.rgb, r.parts
    for name in ("bronze_statue", "golden_statue", "marble_statue", "pencil_sketch", "pop_art", "zombie"):
        out = apply_style_filter(name, rgb, parts)
        face = parts[0] == Part.SKIN
        assert (out - rgb)[0][:, face].abs().mean() > 0.06, name


def test_anime_eyes_stays_near_the_eyes(frontal):
    rgb, parts = frontal.rgb, frontal.parts
    out = apply_style_filter("anime_eyes", rgb, parts)
    far = ~torch.nn.functional.max_pool2d((parts == Part.EYES).float()[:, None], 7, 1, 3)[:, 0].bool()
    assert torch.equal(out.permute(1, 0, 2, 3)[:, far], rgb.permute(1, 0, 2, 3)[:, far])


def test_unknown_filter_lists_known_names(frontal):
    with pytest.raises(ValueError, match="bronze_statue"):
        apply_style_filter("no_such_style", frontal.rgb)


# ----------------------------------------------------------------------------- preview
def test_preview_writes_files(tmp_path):
    paths = write_world_preview(tmp_path, 2, resolution=32, supersample=1, turntable_frames=3)
    names = {p.name for p in paths}
    assert {"identity_0000000.png", "identity_0000001.png", "grid.png", "turntable.gif", "identities.json"} <= names
    assert all(p.stat().st_size > 0 for p in paths)
    f = write_filter_preview(tmp_path, resolution=32, supersample=1)
    assert f.exists() and f.stat().st_size > 0
