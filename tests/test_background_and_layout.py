"""Backgrounds that are part of the scene, image-aligned triplanes, background augmentation,
prompt augmentation: each checked against an expectation that does not come from the code under test."""

from __future__ import annotations

import math

import pytest
import torch

from pe3d.data.backgrounds import WallGeometry, WallTexture, wall_points
from pe3d.data.prompt_augment import PromptAugmentConfig, augment_prompt
from pe3d.data.world_views import WorldViewDataset
from pe3d.geometry import label_from_yaw_pitch, sample_rays
from pe3d.models.prior_encoder import image_layout_to_eg3d
from pe3d.rendering import RayMarchOptions, background_wall_points, render_rays, sample_from_planes, wall_face_blend
from pe3d.rendering.renderer import RendererConfig, TriplaneRenderer

SPHERE_RADIUS = 0.2


def _sphere_field(coords: torch.Tensor, directions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    inside = (coords.norm(dim=-1, keepdim=True) < SPHERE_RADIUS).to(coords.dtype)
    colour = torch.tensor([0.2, 0.4, 0.6]).expand(*coords.shape[:-1], 3)
    return colour, inside * 1000.0 - 10.0 * (1.0 - inside)


def test_background_fn_shows_only_where_the_volume_is_empty() -> None:
    origins, directions = sample_rays(label_from_yaw_pitch(0.0, 0.0), 16)
    hit = ((origins * directions).sum(-1) ** 2 - ((origins * origins).sum(-1) - SPHERE_RADIUS**2)) > 0.01
    miss = ((origins * directions).sum(-1) ** 2 - ((origins * origins).sum(-1) - SPHERE_RADIUS**2)) < -0.01
    per_ray = torch.rand(1, 256, 3)  # a different background colour on every ray
    options = RayMarchOptions(depth_resolution=16, depth_resolution_importance=16, perturb=False, background=1.0)
    out = render_rays(_sphere_field, origins, directions, options, background_fn=lambda o, d: per_ray)
    assert torch.allclose(out.rgb[miss], per_ray[miss], atol=1e-4)
    assert torch.allclose(out.rgb[hit], torch.tensor([0.2, 0.4, 0.6]).expand_as(out.rgb[hit]), atol=1e-3)
    assert (out.weights_sum[miss] < 1e-3).all()  # opacity stays the volume's own
    white = render_rays(_sphere_field, origins, directions, options)
    assert torch.allclose(white.rgb[miss], torch.ones_like(white.rgb[miss]), atol=1e-4)
    assert torch.equal(white.depth, out.depth)


def _empty_field_renderer(box: float | None = None) -> TriplaneRenderer:
    """A renderer whose field is empty everywhere and whose colour is ``sigmoid(2 * f0 - 3)`` of the first plane
    channel ``f0`` (sigma -100 everywhere), so its background read shows the planes directly."""
    cfg = RendererConfig(neural_rendering_resolution=8, background_source="field")
    cfg.decoder.in_channels, cfg.decoder.out_features = 4, 3
    if box is not None:
        cfg.ray_march.box_warp = box
    renderer = TriplaneRenderer(cfg).eval()
    with torch.no_grad():
        first, second = renderer.decoder.net[0], renderer.decoder.net[2]
        first.weight.zero_()
        first.bias.zero_()
        first.weight[0, 0] = 1.0
        second.weight.zero_()
        second.bias.zero_()
        second.bias[0] = -100.0
        second.bias[1:] = -3.0
        second.weight[1:, 0] = 2.0
    return renderer


def test_field_background_is_read_from_the_back_of_the_triplane_box() -> None:
    """Planes that are empty (very low density) everywhere: every ray sees the decoded colour of the
    triplane where the ray leaves the box; a constant-background renderer sees its grey level."""
    renderer = _empty_field_renderer()
    cfg = renderer.config
    cfg.ray_march.depth_resolution, cfg.ray_march.depth_resolution_importance = 8, 0
    planes = torch.zeros(1, 3, 4, 16, 16)
    planes[:, :, 0] = torch.linspace(-3, 3, 16)  # a colour ramp along the planes' columns
    label = label_from_yaw_pitch(0.0, 0.0)
    with torch.no_grad():
        out = renderer(planes, label)
        origins, directions = sample_rays(label, 8)
        far = (origins + cfg.ray_march.ray_end * directions).clamp(-0.4995, 0.4995)
        inner = 0.4995 - 1 / 16  # wall_inset: one of the 16 cells inside the left, right and top faces
        far = torch.stack([far[..., 0].clamp(-inner, inner), far[..., 1].clamp(max=inner), far[..., 2]], dim=-1)
        expected = renderer.decoder(sample_from_planes(planes, far, cfg.ray_march.box_warp)).features
    assert out.weights.max() < 1e-3
    assert torch.allclose(out.image.flatten(2).transpose(1, 2), expected, atol=1e-5)
    assert out.image.std() > 0.05  # the background varies across the image: it is not a constant
    cfg.background_source, cfg.ray_march.background = "constant", 1.0
    with torch.no_grad():
        grey = TriplaneRenderer(cfg).eval()
        grey.load_state_dict(renderer.state_dict())
        assert torch.allclose(grey(planes, label).image, torch.ones(1, 3, 8, 8), atol=1e-3)


def test_the_wall_is_read_one_cell_inside_the_side_and_top_faces() -> None:
    """``RayMarchOptions.wall_inset`` (1 plane cell by default): the background's read point stays that far inside
    the box's left, right and top faces, where bilinear sampling would read the edge cell at full weight before it
    mixes it half with the zero padding; the bottom face (the body below the box is drawn from it) and the back
    keep the plain clamp, and ``wall_inset=0`` is the rule before."""
    origins = torch.zeros(1, 5, 3)
    directions = torch.tensor([[[1.0, 0, 0], [-1.0, 0, 0], [0, 1.0, 0], [0, -1.0, 0], [0, 0, -1.0]]])
    box, cell = 0.6, 0.6 / 64
    plain = background_wall_points(origins, directions, box, ray_end=3.0)
    inset = background_wall_points(origins, directions, box, ray_end=3.0, inset=cell)
    half = 0.3 * (1 - 1e-3)
    torch.testing.assert_close(plain, torch.tensor([[[half, 0, 0], [-half, 0, 0], [0, half, 0], [0, -half, 0], [0, 0, -half]]]))
    torch.testing.assert_close(inset, torch.tensor([[[half - cell, 0, 0], [-half + cell, 0, 0], [0, half - cell, 0],
                                                     [0, -half, 0], [0, 0, -half]]]))
    assert RayMarchOptions().wall_inset == 1.0
    with pytest.raises(ValueError, match="wall_inset must be >= 0"):
        RayMarchOptions(wall_inset=-1.0)
    # the renderer passes the inset in its planes' cells: with wall_inset 0 it reads the plain clamp
    cfg = RendererConfig(neural_rendering_resolution=8, background_source="field")
    cfg.decoder.in_channels, cfg.decoder.out_features = 4, 3
    cfg.ray_march.box_warp = 0.6  # the frame's edge rays leave this box through its sides and top
    planes = torch.randn(1, 3, 4, 16, 16, generator=torch.Generator().manual_seed(0))
    label = label_from_yaw_pitch(0.0, 0.0)
    origins, directions = sample_rays(label, 8)
    renderer = TriplaneRenderer(cfg).eval()
    with torch.no_grad():
        shown = renderer.query_background(planes, origins, directions)
        cfg.ray_march.wall_inset = 0.0
        before = renderer.query_background(planes, origins, directions)
        at_faces = renderer.decoder(sample_from_planes(planes, background_wall_points(
            origins, directions, cfg.ray_march.box_warp, cfg.ray_march.ray_end), cfg.ray_march.box_warp)).features
    torch.testing.assert_close(before, at_faces)
    assert not torch.allclose(shown, before)


def test_the_wall_near_the_bottom_and_back_faces_is_a_blend_not_the_edge_row_at_full_weight() -> None:
    """``RayMarchOptions.wall_face_blend`` (1.5 cells): a read point just inside the bottom or back face takes the
    face's read blended with the read 1.5 cells in, by its distance from the face. Bilinear sampling there weighs the
    planes' edge row above the half it has on the face: with a bright edge row the plain read bumps up between the
    two (the photo's lines); the blend stays between them, equals the face's read on the face and the plain read from
    the band's end on, and does not blend points on the bottom face towards the back."""
    box, side = 0.6, 16
    cell, half = box / side, 0.5 * box * (1 - 1e-3)
    band = 1.5 * cell
    points = torch.tensor([[[0.0, 0.0, -half], [0.0, 0.0, -half + 0.5 * band], [0.0, 0.0, -half + 1.01 * band],
                            [0.0, -half, -half + 0.5 * band], [0.0, -half + 0.25 * band, -half + 0.5 * band],
                            [0.0, 0.0, 0.0]]])
    t = wall_face_blend(points, box, band)[0]  # [points, (bottom, back)]
    assert torch.isnan(t[[0, 2, 5]]).all()  # on the back face, at the band's end, far inside
    assert t[1, 1].item() == pytest.approx(0.5) and torch.isnan(t[1, 0])
    assert torch.isnan(t[3]).all()  # on the bottom face: neither blended towards the back nor up
    assert t[4].tolist() == pytest.approx([0.25, 0.5])  # near both: blended over both axes

    renderer = _empty_field_renderer(box)
    planes = torch.zeros(1, 3, 4, side, side)
    for row in (0, side - 1):  # a bright edge row on every border of every plane
        planes[:, :, 0, row, :] = 3.0
        planes[:, :, 0, :, row] = 3.0
    depths = torch.linspace(-half - 0.02, -half + 3 * band, 41)  # from past the face to 3 bands in
    zeros = torch.zeros_like(depths)
    for axis, far in ((2, torch.stack([zeros, zeros, depths], dim=-1)[None]),     # back face, at mid height
                      (1, torch.stack([zeros, depths, zeros], dim=-1)[None])):    # bottom face, mid depth
        directions = torch.tensor([0.0, 0.0, -1.0]).expand_as(far)
        origins = far - renderer.config.ray_march.ray_end * directions
        renderer.config.ray_march.wall_face_blend = 1.5
        with torch.no_grad():
            blended = renderer.query_background(planes, origins, directions)[0, :, 0]
            renderer.config.ray_march.wall_face_blend = 0.0
            plain = renderer.query_background(planes, origins, directions)[0, :, 0]
        coordinate = far.clamp(-half, half)[0, :, axis]
        in_band = (coordinate > -half) & (coordinate < -half + band)
        face, band_end = plain[0], plain[coordinate >= -half + band][0]
        assert plain[in_band].max() > max(face, band_end) + 0.05, axis  # the bump the blend removes
        low, high = min(face, band_end), max(face, band_end)
        assert bool(((blended[in_band] >= low - 1e-6) & (blended[in_band] <= high + 1e-6)).all()), axis
        torch.testing.assert_close(blended[~in_band], plain[~in_band])
        assert float(blended.diff().abs().max()) < float(plain.diff().abs().max())  # no jump at the band's ends
    assert RayMarchOptions().wall_face_blend == 1.5
    with pytest.raises(ValueError, match="wall_face_blend must be >= 0"):
        RayMarchOptions(wall_face_blend=-1.0)


def test_unknown_background_source_is_refused() -> None:
    with pytest.raises(ValueError, match="background_source"):
        RendererConfig(background_source="sky")


def test_image_layout_puts_each_input_pixel_on_the_xy_plane_point_it_shows() -> None:
    """A frontal ray through pixel (r, c) meets z = 0 at the xy-plane point that an image-aligned map's
    cell (r, c) lands on, when the triplane box matches the input frame (box = 2 * 0.5 / focal * radius)."""
    size = 32
    image = torch.rand(1, 3, size, size)
    planes = torch.zeros(1, 3, 3, size, size)
    planes[:, 0] = image
    planes = image_layout_to_eg3d(planes)
    label = label_from_yaw_pitch(0.0, 0.0)
    origins, directions = sample_rays(label, size)
    focal, radius = float(label[0, 16]), float(label[0, 11])
    at_z0 = origins - (origins[..., 2:] / directions[..., 2:]) * directions
    read = sample_from_planes(planes, at_z0, box_warp=2 * 0.5 / focal * radius)[0, 0]  # [N, 3]
    assert torch.allclose(read.T.reshape(3, size, size), image[0], atol=1e-3)


def test_image_layout_zx_plane_columns_follow_world_x() -> None:
    size = 16
    ramp = torch.linspace(-1, 1, size).expand(size, size)  # grows with the column index
    planes = torch.zeros(1, 3, 1, size, size)
    planes[0, 2, 0] = ramp
    planes = image_layout_to_eg3d(planes)
    points = torch.tensor([[[-0.3, 0.0, 0.1], [0.3, 0.0, 0.1]]])
    read = sample_from_planes(planes, points)[0, 2, :, 0]
    assert read[0] < -0.4 and read[1] > 0.4


def test_background_augmentation_recolours_only_the_background_of_every_view() -> None:
    views, size = 3, 8
    parts = torch.zeros(1, views, size, size, dtype=torch.uint8)
    parts[..., 2:6, 2:6] = 3
    rgb = torch.full((1, views, 3, size, size), 255, dtype=torch.uint8)
    rgb[..., 2:6, 2:6] = 40
    bank = {"rgb": rgb, "depth": torch.ones(1, views, 1, size, size, dtype=torch.float16), "parts": parts,
            "labels": torch.zeros(1, views, 25), "index": torch.tensor([5])}
    item = WorldViewDataset(bank, num_targets=3, background_probability=1.0)[0]
    background = item["target_image"][:, :, 0, 0]  # [K, 3]
    assert torch.allclose(background, background[:1].expand_as(background))  # one colour in every view
    assert not torch.allclose(background, torch.ones_like(background))
    assert torch.allclose(item["target_image"][:, :, 3, 3], torch.full((3, 3), 40 / 255))
    assert torch.allclose(item["input_image"][:, 0, 0], background[0])
    plain = WorldViewDataset(bank, num_targets=3, background_probability=0.0)[0]
    assert torch.equal(plain["target_image"][:, :, 0, 0], torch.ones(3, 3))
    with pytest.raises(ValueError, match="background_probability"):
        WorldViewDataset(bank, background_probability=1.5)


def test_prompt_augmentation_drops_words_and_adds_unknown_ones() -> None:
    text = "turn the person into a bronze statue"
    assert augment_prompt(text, PromptAugmentConfig(probability=0.0)) == text
    cfg = PromptAugmentConfig(probability=1.0, word_dropout=0.5, unknown_words=2)
    generator = torch.Generator().manual_seed(0)
    outs = [augment_prompt(text, cfg, generator) for _ in range(200)]
    known = set(text.split())
    for out in outs:
        words = out.split()
        kept = [w for w in words if w in known]
        assert 1 <= len(kept) <= 7 and len(words) - len(kept) <= 2
        assert kept == [w for w in text.split() if w in kept]  # order kept
    kept_share = sum(len([w for w in o.split() if w in known]) for o in outs) / (200 * 7)
    assert 0.4 < kept_share < 0.65  # about half the words dropped
    assert any(len(o.split()) > len([w for w in o.split() if w in known]) for o in outs)
    again = [augment_prompt(text, cfg, torch.Generator().manual_seed(0)) for _ in range(1)]
    assert again[0] == outs[0]
    with pytest.raises(ValueError, match="word_dropout"):
        PromptAugmentConfig(word_dropout=2.0)


def test_vocabulary_unknown_words_are_real_whole_word_tokens_no_training_prompt_uses() -> None:
    from open_clip.tokenizer import SimpleTokenizer

    from pe3d.data.prompt_augment import vocabulary_words

    training = {"turn", "the", "person", "into", "a", "bronze", "statue"}
    pool = vocabulary_words(training)
    assert len(pool) > 20000 and not training & set(pool)
    assert {"illustration", "rough", "ghoul"} <= set(pool)  # real words that no such prompt uses
    tokenizer = SimpleTokenizer()
    for word in pool[::997]:  # each one token of its own, as a word the editor never saw would be
        assert len(tokenizer.encode(word)) == 1, word
    text = "turn the person into a bronze statue"
    cfg = PromptAugmentConfig(probability=1.0, word_dropout=0.0, unknown_words=2, unknown_word_source="vocabulary")
    generator = torch.Generator().manual_seed(5)
    outs = [augment_prompt(text, cfg, generator, vocabulary=pool) for _ in range(200)]
    inserted = [w for o in outs for w in o.split() if w not in training]
    assert inserted and set(inserted) <= set(pool) and len(set(inserted)) > 100  # drawn from the whole pool
    assert all([w for w in o.split() if w in training] == text.split() for o in outs)  # the prompt itself kept
    # the default stays random letter strings, which the tokenizer splits into pieces
    generator = torch.Generator().manual_seed(5)
    letters = [w for o in (augment_prompt(text, PromptAugmentConfig(probability=1.0, word_dropout=0.0), generator)
                           for _ in range(50)) for w in o.split() if w not in training]
    assert letters and sum(len(tokenizer.encode(w)) > 1 for w in letters) > len(letters) // 2
    with pytest.raises(ValueError, match="unknown_word_source"):
        PromptAugmentConfig(unknown_word_source="dictionary")


def test_word_bags_draw_words_of_the_style_prompts_and_only_then() -> None:
    pool = ["turn the portrait into a pencil sketch", "draw the person with a graphite pencil"]
    pool_words = {w for p in pool for w in p.split()}
    text = pool[0]
    generator = torch.Generator().manual_seed(1)
    bags = [augment_prompt(text, PromptAugmentConfig(probability=1.0, word_bag=1.0, word_bag_size=3, unknown_words=0),
                           generator, pool=pool) for _ in range(300)]
    assert all(1 <= len(b.split()) <= 3 and set(b.split()) <= pool_words for b in bags)
    assert any("graphite" in b.split() for b in bags)  # words of the other prompt appear on their own
    assert any(len(b.split()) == 1 for b in bags) and any(len(b.split()) == 3 for b in bags)
    # no pool (or word_bag 0): plain word dropout, every kept word from the prompt itself, in order
    plain = [augment_prompt(text, PromptAugmentConfig(probability=1.0, word_bag=1.0, unknown_words=0), generator)
             for _ in range(50)]
    assert all(b.split() == [w for w in text.split() if w in b.split()] for b in plain)
    with pytest.raises(ValueError, match="word_bag_size"):
        PromptAugmentConfig(word_bag_size=0)


def test_distinct_word_bags_draw_each_word_alike_and_never_twice() -> None:
    # "pencil" is 3 of the pool's 10 words: from occurrences it fills a 1-word bag 30 % of the time,
    # from the 7 distinct words 14 %, as often as the rare "graphite"
    pool = ["pencil sketch", "a pencil drawing", "draw with a graphite pencil"]
    def one_word_bags(distinct: bool) -> list[str]:
        generator = torch.Generator().manual_seed(3)
        cfg = PromptAugmentConfig(probability=1.0, word_bag=1.0, word_bag_size=1, unknown_words=0, word_bag_distinct=distinct)
        return [augment_prompt("pencil sketch", cfg, generator, pool=pool) for _ in range(2000)]
    share = {d: {w: b.count(w) / len(b) for w in ("pencil", "graphite")} for d in (False, True) for b in [one_word_bags(d)]}
    assert 0.26 < share[False]["pencil"] < 0.34 and 0.07 < share[False]["graphite"] < 0.13
    assert 0.11 < share[True]["pencil"] < 0.18 and 0.11 < share[True]["graphite"] < 0.18
    generator = torch.Generator().manual_seed(4)
    cfg = PromptAugmentConfig(probability=1.0, word_bag=1.0, word_bag_size=9, unknown_words=0, word_bag_distinct=True)
    bags = [augment_prompt("pencil sketch", cfg, generator, pool=pool).split() for _ in range(200)]
    assert all(len(b) == len(set(b)) for b in bags) and max(len(b) for b in bags) == 7


def test_export_model_overrides_keep_the_weights_and_refuse_shape_changes() -> None:
    from pe3d.config import ConfigError
    from pe3d.models.prior import PriorModel, model_config_from_yaml
    from pe3d.recipes.prior import model_yaml_path, with_model_overrides

    torch.manual_seed(0)
    model = PriorModel(model_config_from_yaml(model_yaml_path("mini")))
    fewer = with_model_overrides(model, ["renderer.ray_march.depth_resolution=12",
                                         "renderer.ray_march.depth_resolution_importance=12"])
    assert fewer.cfg.renderer.ray_march.depth_resolution == 12
    assert model.cfg.renderer.ray_march.depth_resolution == 24  # the trained model is left as it was
    for (name, a), (_, b) in zip(model.state_dict().items(), fewer.state_dict().items()):
        assert torch.equal(a, b), name
    with pytest.raises(ConfigError, match="change the weights"):
        with_model_overrides(model, ["encoder.triplane_channels=8"])


def test_refine_blocks_grown_onto_a_trained_prior_start_as_the_identity_then_train() -> None:
    from pe3d.config import ConfigError
    from pe3d.models.prior import PriorModel, model_config_from_yaml
    from pe3d.recipes.prior import model_yaml_path, with_model_overrides

    torch.manual_seed(0)
    model = PriorModel(model_config_from_yaml(model_yaml_path("mini")))
    grow = ["encoder.t_refine_blocks=2", "encoder.t_refine_width=8"]
    with pytest.raises(ConfigError, match="add"):  # exporting must not add weights
        with_model_overrides(model, grow)
    grown = with_model_overrides(model, grow, allow_new=True)
    new = sorted(set(grown.state_dict()) - set(model.state_dict()))
    assert new and all(name.startswith("encoder.decoder.refine.") for name in new)
    image = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(grown(image), model(image))  # zero-initialised last convs: same output
    grown(image).square().mean().backward()
    last = grown.encoder.decoder.refine[0].conv2.weight
    assert last.grad is not None and last.grad.abs().sum() > 0  # the new blocks do train
    with pytest.raises(ConfigError, match="drop"):  # shrinking back would lose trained weights
        with_model_overrides(grown, ["encoder.t_refine_blocks=1"], allow_new=True)


def _frontal_bank(size: int = 16) -> dict:
    """One identity, three views (frontal, yaw -0.3, yaw +0.3), a square head in the middle."""
    views = 3
    parts = torch.zeros(1, views, size, size, dtype=torch.uint8)
    parts[..., 6:10, 6:10] = 3
    rgb = torch.full((1, views, 3, size, size), 255, dtype=torch.uint8)
    rgb[..., 6:10, 6:10] = 40
    labels = label_from_yaw_pitch(torch.tensor([0.0, -0.3, 0.3]), torch.zeros(3))
    return {"rgb": rgb, "depth": torch.ones(1, views, 1, size, size, dtype=torch.float16), "parts": parts,
            "labels": labels[None], "index": torch.tensor([5])}


def test_textured_background_is_the_wall_the_renderer_reads_seen_from_each_view() -> None:
    wall = WallGeometry(box_warp=0.6333, ray_end=3.1)
    torch.manual_seed(3)
    item = WorldViewDataset(_frontal_bank(), num_targets=3, random_views=False, background_probability=1.0,
                            background_texture=1.0, wall=wall)[0]
    images = item["target_image"]  # [3, 3, 16, 16]
    assert torch.allclose(images[:, :, 7, 7], torch.full((3, 3), 40 / 255))  # the head is untouched
    background = images[:, :, :4, :4]
    assert background.flatten(2).std(dim=2).mean() > 0.01  # textured, not one flat colour
    assert not torch.allclose(images[1, :, :4, :4], images[0, :, :4, :4])  # each view sees its own part of the wall
    # the frontal view's colours are those the renderer's background rule points at
    renderer = TriplaneRenderer(RendererConfig(ray_march=RayMarchOptions(box_warp=0.6333, ray_end=3.1)))
    origins, directions = sample_rays(item["target_label"][:1], 16)
    points = background_wall_points(origins, directions, renderer.config.ray_march.box_warp,
                                    renderer.config.ray_march.ray_end)
    assert torch.allclose(points, wall_points(item["target_label"][:1], 16, wall))
    assert (points[..., 2] < -0.3).all()  # a frontal camera sees the back wall


def test_wall_texture_colours_are_a_function_of_the_wall_point() -> None:
    texture = WallTexture.random(torch.Generator().manual_seed(0), rectangles=3)
    points = torch.rand(50, 3) - 0.5
    colours = texture.colour(points)
    assert colours.shape == (50, 3) and colours.min() >= 0 and colours.max() <= 1
    assert torch.equal(texture.colour(points), colours)
    again = WallTexture.random(torch.Generator().manual_seed(0), rectangles=3)
    assert torch.equal(again.colour(points), colours)  # seeded: reproducible
    patch = WallTexture(base=torch.zeros(3), wave_directions=torch.zeros(0, 3), wave_frequencies=torch.zeros(0),
                        wave_phases=torch.zeros(0), wave_colours=torch.zeros(0, 3),
                        rect_centres=torch.zeros(1, 3), rect_half_sizes=torch.full((1, 3), 0.1),
                        rect_colours=torch.tensor([[1.0, 0.5, 0.0]]))
    inside_outside = patch.colour(torch.tensor([[0.05, -0.05, 0.0], [0.2, 0.0, 0.0]]))
    assert torch.equal(inside_outside, torch.tensor([[1.0, 0.5, 0.0], [0.0, 0.0, 0.0]]))  # hard edge


def test_textured_background_needs_the_wall_and_a_valid_share() -> None:
    bank = _frontal_bank()
    with pytest.raises(ValueError, match="wall geometry"):
        WorldViewDataset(bank, background_probability=1.0, background_texture=0.5)
    with pytest.raises(ValueError, match="background_texture"):
        WorldViewDataset(bank, background_texture=2.0, wall=WallGeometry(0.6, 3.1))
    with pytest.raises(ValueError, match="box_warp"):
        WallGeometry(0.0, 3.1)
