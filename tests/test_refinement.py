"""Test-time detail refinement (pe3d.refinement): the residual fits the input view, touches no weight,
and reaches the pipeline and `pe3d edit --refine-steps`."""

import pytest
import torch
import torch.nn.functional as F

import pe3d
from pe3d.errors import InvalidInput
from pe3d.refinement import RefineConfig, fit_detail_residual, fitting_resolution


@pytest.fixture(scope="module")
def pipe():
    return pe3d.EditPipeline.from_pretrained()


EVERY_CELL = {"hull_threshold": 0.0, "empty_weight": 0.0}
"""Settings of a fit of every plane cell (no visual hull, no empty-space term): the tests of one mechanism isolate it."""


def _world_portrait():
    from pe3d.evaluation.world import WorldEvalConfig, build_world_eval_set

    data = build_world_eval_set(WorldEvalConfig(identities=2, styles=[], novel_yaws_deg=[30.0], novel_pitches_deg=[]))
    return data.rgb, data.labels


def test_residual_fits_the_input_view_and_leaves_the_model_alone(pipe):
    image, camera = _world_portrait()
    editor = pipe.editor
    before = {name: p.detach().clone() for name, p in editor.named_parameters()}
    with torch.no_grad():
        reconstruction = pipe.refinement_prior()(image)
        plain = editor.render(reconstruction, camera).image.clamp(0, 1)
    residual = fit_detail_residual(editor.render, reconstruction, image, camera, RefineConfig(steps=30), frozen=editor,
                                   renderer=editor.renderer)
    assert residual.shape == reconstruction.shape and not residual.requires_grad
    with torch.no_grad():
        refined = editor.render(reconstruction + residual, camera).image.clamp(0, 1)
    error_plain, error_refined = (plain - image).square().mean(), (refined - image).square().mean()
    assert error_refined < 0.8 * error_plain, (float(error_plain), float(error_refined))
    for name, p in editor.named_parameters():
        assert torch.equal(p, before[name]), name
        assert p.grad is None, name
    zero = fit_detail_residual(editor.render, reconstruction, image, camera, RefineConfig(steps=0))
    assert torch.count_nonzero(zero) == 0


def test_a_front_residual_changes_the_front_plane_only(pipe):
    image, camera = _world_portrait()
    editor = pipe.editor
    with torch.no_grad():
        reconstruction = pipe.refinement_prior()(image)
        plain = editor.render(reconstruction, camera).image.clamp(0, 1)
    residual = fit_detail_residual(editor.render, reconstruction, image, camera,
                                   RefineConfig(steps=20, planes="front", **EVERY_CELL), frozen=editor)
    assert residual[:, 0].abs().mean() > 0
    assert torch.count_nonzero(residual[:, 1:]) == 0  # EG3D's two x-z planes untouched
    with torch.no_grad():
        refined = editor.render(reconstruction + residual, camera).image.clamp(0, 1)
    assert (refined - image).square().mean() < 0.8 * (plain - image).square().mean()
    with pytest.raises(InvalidInput, match="refine planes must be one of \\['all', 'front'\\], got 'side'"):
        RefineConfig(planes="side")


def test_a_larger_render_is_fitted_at_the_planes_resolution(pipe):
    """Asked for 128² renders, the mini model's 64-cell planes are fitted at 64² (a quarter of the rays a step)
    and the residual still brings the 128² render of the input view closer to the input."""
    image, camera = _world_portrait()
    editor = pipe.editor
    sides = []

    def render(planes, labels, resolution=None, **kwargs):
        sides.append(resolution)
        return editor.render(planes, labels, resolution=resolution, **kwargs)

    large = torch.nn.functional.interpolate(image, size=128, mode="bilinear", align_corners=False)
    with torch.no_grad():
        reconstruction = pipe.refinement_prior()(image)
        plain = editor.render(reconstruction, camera, resolution=128).image.clamp(0, 1)
    residual = fit_detail_residual(render, reconstruction, large, camera, RefineConfig(steps=30), frozen=editor, resolution=128,
                                   renderer=editor.renderer)
    assert reconstruction.shape[-1] == 64 and sides == [64] * 30
    with torch.no_grad():
        refined = editor.render(reconstruction + residual, camera, resolution=128).image.clamp(0, 1)
    assert (refined - large).square().mean() < 0.8 * (plain - large).square().mean()
    sides.clear()
    fit_detail_residual(render, reconstruction, large, camera, RefineConfig(steps=2, fit_resolution=96), resolution=128,
                        renderer=editor.renderer)
    assert sides == [96, 96]


def test_fitting_resolution_and_the_stored_teachers_key():
    assert fitting_resolution(RefineConfig(), 128, 64) == 64
    assert fitting_resolution(RefineConfig(), 48, 64) == 48
    assert fitting_resolution(RefineConfig(), None, 64) is None  # the renderer's default
    assert fitting_resolution(RefineConfig(fit_resolution=96), 128, 64) == 96
    # the key of refined teachers stored before fit_resolution existed (runs/pairs-bg/refined-teacher) holds
    from pe3d.systems.editing import teacher_refinement

    assert teacher_refinement(10).fingerprint() == "RefineConfig(steps=10, lr=0.02, l1=0.5, residual_weight=0.1, prior='', planes='all')"
    assert "fit_resolution=96" in RefineConfig(steps=10, fit_resolution=96).fingerprint()
    assert "ray_fraction=0.25" in RefineConfig(steps=10).fingerprint()
    with pytest.raises(InvalidInput, match="refine fit_resolution must be >= 0"):
        RefineConfig(fit_resolution=-1)


def test_refinement_prior_must_share_the_editors_renderer(pipe, tmp_path):
    from pe3d.models.prior import load_prior, save_prior
    from pe3d.weights import shipped_path

    assert pipe.refinement_prior() is pipe.refinement_prior(str(shipped_path("prior_mini")))  # loaded once
    other = load_prior(shipped_path("prior_mini"))
    with torch.no_grad():
        next(other.renderer.parameters()).add_(0.1)
    path = save_prior(other, tmp_path / "other_prior.safetensors")
    with pytest.raises(InvalidInput, match="other_prior.safetensors: this prior's renderer is not the editor's"):
        pipe.refinement_prior(str(path))


def test_pipeline_adds_the_residual_to_the_edit(pipe):
    image, camera = _world_portrait()
    prompt = "turn the person into a bronze statue"
    plain = pipe(image, prompt=prompt, input_camera=camera)
    refined = pipe(image, prompt=prompt, input_camera=camera, refine=RefineConfig(steps=10))
    residual = refined.triplane - plain.triplane
    assert residual.abs().mean() > 0
    # the residual is the same whichever prompt is edited: it comes from the unedited reconstruction
    other = pipe(image, prompt="make the person a zombie", input_camera=camera, refine=RefineConfig(steps=10))
    zombie = pipe(image, prompt="make the person a zombie", input_camera=camera)
    assert torch.allclose(other.triplane - zombie.triplane, residual, atol=1e-5)


def test_the_refine_strength_scales_the_residual_added_to_the_edit(pipe, tmp_path, capsys):
    """``RefineConfig.strength``: the multiple of the fitted residual added to the edit, not part of the fit (nor of
    the stored teachers' key); ``pe3d edit --style`` takes the style's ``refine.strength`` (marble_statue 0.5)."""
    image, camera = _world_portrait()
    prompt = "turn the person into a marble statue"
    plain = pipe(image, prompt=prompt, input_camera=camera)
    full = pipe(image, prompt=prompt, input_camera=camera, refine=RefineConfig(steps=10))
    quarter = pipe(image, prompt=prompt, input_camera=camera, refine=RefineConfig(steps=10, strength=0.25))
    residual = full.triplane - plain.triplane
    assert residual.abs().mean() > 0
    assert torch.allclose(quarter.triplane - plain.triplane, 0.25 * residual, atol=1e-5)
    assert not torch.allclose(quarter.image, full.image, atol=1e-3)
    assert RefineConfig(steps=10, strength=0.25).fingerprint() == RefineConfig(steps=10).fingerprint()
    with pytest.raises(InvalidInput, match=r"refine strength must be in \[0, 2\]"):
        RefineConfig(strength=2.5)
    from pe3d.cli import main
    from pe3d.recipes.edit import _load_settings

    assert _load_settings(pipe, "marble_statue", None, None).refine_strength == 0.5
    assert _load_settings(pipe, "bronze_statue", None, None).refine_strength == 1.0
    assert _load_settings(pipe, None, "make it marble", None).refine_strength == 1.0
    assert _load_settings(pipe, "marble_statue", None, None, refine_strength=0.25).refine_strength == 0.25
    photo = tmp_path / "x.png"
    assert main(["edit", str(photo), "--style", "bronze_statue", "--out", str(tmp_path / "o"), "--refine-strength", "3"]) == 2
    assert "--refine-strength must be in [0, 2], got 3.0" in capsys.readouterr().err


def test_bad_refine_settings_are_named(tmp_path, capsys):
    with pytest.raises(InvalidInput, match="refine steps"):
        RefineConfig(steps=-1)
    with pytest.raises(InvalidInput, match="refine lr"):
        RefineConfig(steps=5, lr=0.0)
    from pe3d.cli import main

    photo = tmp_path / "x.png"
    assert main(["edit", str(photo), "--style", "bronze_statue", "--out", str(tmp_path / "o"), "--refine-steps", "-2"]) == 2
    assert "--refine-steps must be >= 0, got -2" in capsys.readouterr().err


def test_refined_teacher_fits_each_pairs_edit_once():
    """system.teacher_refine_steps: the teacher's triplane of a pair's 2D edit, refined to it at the pair's
    camera, is computed at the pair's first step and reused from the frozen cache after."""
    from pe3d.systems.editing import EditSystemConfig
    from test_view_bank import _batch, _system

    with pytest.raises(ValueError, match="teacher_refine_steps must be >= 0"):
        EditSystemConfig(teacher_refine_steps=-1)
    batch = _batch()
    plain, refined = _system(view_bank=0), _system(view_bank=0)
    refined.cfg.teacher_refine_steps = 15
    edited, keys, label = batch["edited_image"], [("pair", i) for i in range(batch["edited_image"].shape[0])], batch["label"]
    with torch.no_grad():
        soft = plain._teacher_planes("teacher_edited", edited, keys, label)
        sharp = refined._teacher_planes("teacher_edited", edited, keys, label)
        again = refined._teacher_planes("teacher_edited", edited, keys, label)
        render = refined.teacher.render

        def error(planes):
            return float((render(planes, label).image.clamp(0, 1) - edited).square().mean())

    assert torch.equal(sharp, again)  # from the cache, not fitted again
    assert error(sharp) < 0.8 * error(soft)
    assert torch.equal(soft, plain._teacher_planes("teacher_input", edited, keys, label))  # 0 steps: feed-forward


def test_pe3d_edit_refines_by_default(pipe):
    """``refine_steps=None`` (the CLI's default): 200 steps with the shipped editor, for an aligned photo and with
    ``--no-align`` (world-framed inputs) alike, none for an editor whose renderer is not the shipped prior's."""
    import copy

    from pe3d.recipes.edit import PHOTO_REFINE_STEPS, _load_settings, default_refine_steps

    assert PHOTO_REFINE_STEPS == 200
    assert _load_settings(pipe, "bronze_statue", None, None, align=True).refine_steps == PHOTO_REFINE_STEPS
    assert _load_settings(pipe, "bronze_statue", None, None, align=True, refine_steps=None).refine_steps == PHOTO_REFINE_STEPS
    assert _load_settings(pipe, "bronze_statue", None, None, align=False).refine_steps == PHOTO_REFINE_STEPS
    assert _load_settings(pipe, "bronze_statue", None, None, align=True, refine_steps=7).refine_steps == 7
    other = copy.deepcopy(pipe.editor)
    with torch.no_grad():
        next(other.renderer.parameters()).add_(0.1)
    assert default_refine_steps(pe3d.EditPipeline(other)) == 0


def test_a_fit_started_from_a_residual_continues_it(pipe):
    """``initial`` (a video's previous frame): 0 steps return it; a few steps from a fitted residual end closer to
    the input than as many from zeros."""
    image, camera = _world_portrait()
    editor = pipe.editor
    with torch.no_grad():
        reconstruction = pipe.refinement_prior()(image)
    fitted = fit_detail_residual(editor.render, reconstruction, image, camera, RefineConfig(steps=30), frozen=editor,
                                 renderer=editor.renderer)
    assert torch.equal(fit_detail_residual(editor.render, reconstruction, image, camera, RefineConfig(steps=0), initial=fitted), fitted)
    cold = fit_detail_residual(editor.render, reconstruction, image, camera, RefineConfig(steps=3), frozen=editor,
                               renderer=editor.renderer)
    warm = fit_detail_residual(editor.render, reconstruction, image, camera, RefineConfig(steps=3), frozen=editor, initial=fitted,
                               renderer=editor.renderer)

    def error(residual):
        with torch.no_grad():
            return float((editor.render(reconstruction + residual, camera).image.clamp(0, 1) - image).square().mean())

    assert error(warm) < 0.8 * error(cold), (error(warm), error(cold))
    with pytest.raises(InvalidInput, match="initial residual must have the reconstruction's shape"):
        fit_detail_residual(editor.render, reconstruction, image, camera, RefineConfig(steps=1), initial=fitted[:1],
                            renderer=editor.renderer)


def test_each_step_renders_a_quarter_of_the_rays_repeatably(pipe):
    """``RefineConfig.ray_fraction`` (0.25 by default): each step renders that share of the rays, drawn afresh from a
    generator seeded at 0, so two fits are equal; with every ray (1.0) no subset is drawn."""
    from pe3d.refinement import RaySubsets

    image, camera = _world_portrait()
    editor = pipe.editor
    counts = []

    def render(planes, labels, resolution=None, ray_indices=None):
        counts.append(None if ray_indices is None else tuple(ray_indices.shape))
        if ray_indices is not None:
            assert ray_indices.unique(dim=1).shape == ray_indices.shape  # no ray twice in a step
        return editor.render(planes, labels, resolution=resolution, ray_indices=ray_indices)

    with torch.no_grad():
        reconstruction = pipe.refinement_prior()(image)
        plain = editor.render(reconstruction, camera).image.clamp(0, 1)
    first = fit_detail_residual(render, reconstruction, image, camera, RefineConfig(steps=40), frozen=editor, resolution=64,
                                renderer=editor.renderer)
    assert counts == [(2, 64 * 64 // 4)] * 40
    again = fit_detail_residual(editor.render, reconstruction, image, camera, RefineConfig(steps=40), frozen=editor, resolution=64,
                                renderer=editor.renderer)
    assert torch.equal(first, again)
    with torch.no_grad():
        refined = editor.render(reconstruction + first, camera).image.clamp(0, 1)
    assert (refined - image).square().mean() < 0.8 * (plain - image).square().mean()
    counts.clear()
    fit_detail_residual(render, reconstruction, image, camera, RefineConfig(steps=2, ray_fraction=1.0), resolution=64,
                        renderer=editor.renderer)
    assert counts == [None, None]
    draws = RaySubsets(0.5, 3).draw(8, torch.device("cpu"))
    assert draws.shape == (3, 32) and int(draws.max()) < 64
    with pytest.raises(InvalidInput, match="refine ray_fraction must be in \\(0, 1\\]"):
        RefineConfig(ray_fraction=0.0)


def test_the_hull_keeps_the_residual_off_the_background(pipe):
    """``RefineConfig.hull_threshold`` (0.3 by default): the residual may change only the plane cells over the
    reconstruction's occupied field (:func:`visual_hull_masks`), so a busy photo background is not painted onto the
    box's walls, where a side view saw it as streaks; without the hull it is. The face is still fitted."""
    import math

    from pe3d.geometry import label_from_yaw_pitch
    from pe3d.refinement import visual_hull_masks

    image, camera = _world_portrait()
    editor = pipe.editor
    with torch.no_grad():
        reconstruction = pipe.refinement_prior()(image)
        front = editor.render(reconstruction, camera)
    background = (front.weights < 0.05).to(image)
    stripes = (torch.arange(64) // 4 % 2).to(image)[None, None, :, None].expand_as(image) * torch.tensor([0.1, 0.2, 0.6])[:, None, None]
    photo = image * (1 - background) + stripes * background  # a dark striped wall behind the head

    hull = visual_hull_masks(editor.renderer, reconstruction, 0.3, 2)
    assert hull.shape == (2, 3, 1, 64, 64) and set(hull.unique().tolist()) <= {0.0, 1.0}
    assert 0.1 < float(hull.mean()) < 0.9
    wider = visual_hull_masks(editor.renderer, reconstruction, 0.3, 4)
    assert bool((wider >= hull).all()) and float(wider.sum()) > float(hull.sum())

    kept = pipe.detail_residual(photo, camera, RefineConfig(steps=30, empty_weight=0.0), resolution=64)  # the default hull
    with torch.no_grad():
        reconstruction = pipe.refinement_prior()(pipe._prepare_image(photo))  # what the fit started from
    photo_hull = visual_hull_masks(editor.renderer, reconstruction, 0.3, 2, softness=RefineConfig.hull_softness)
    outside = (photo_hull == 0).to(kept)  # the soft edge's ramp (hull_softness) counts as inside
    assert torch.count_nonzero(kept * outside) == 0 and kept.abs().mean() > 0
    free = pipe.detail_residual(photo, camera, RefineConfig(steps=30, hull_threshold=0.0, empty_weight=0.0), resolution=64)
    assert torch.count_nonzero(free * outside) > 0

    side = label_from_yaw_pitch([math.radians(30)] * 2, [0.0, 0.0])
    with torch.no_grad():
        plain = editor.render(reconstruction, side)
    empty = (plain.weights < 0.05).to(image)

    @torch.no_grad()
    def wall_change(residual):
        shown = editor.render(reconstruction + residual, side).image
        return float(((shown - plain.image).abs() * empty).sum() / (empty.sum() * 3))

    @torch.no_grad()
    def face_error(residual):
        shown = editor.render(reconstruction + residual, camera).image.clamp(0, 1)
        return float(((shown - image).square() * (1 - background)).sum())

    assert wall_change(kept) < 0.25 * wall_change(free), (wall_change(kept), wall_change(free))
    assert face_error(kept) < 0.8 * face_error(torch.zeros_like(kept)), (face_error(kept), face_error(torch.zeros_like(kept)))
    with pytest.raises(InvalidInput, match="refine hull_threshold must be in \\[0, 1\\)"):
        RefineConfig(hull_threshold=1.0)
    with pytest.raises(InvalidInput, match="refine: region must be"):
        fit_detail_residual(editor.render, reconstruction, image, camera, RefineConfig(steps=1), region=hull[:, :2])


def test_a_fit_asked_for_the_hull_needs_the_renderer(pipe):
    """The defaults keep the residual to the visual hull and out of the empty space: given ``renderer=``, the fit
    makes both itself (the same residual as when given :func:`residual_region`'s), and without it, it refuses,
    naming the settings, instead of silently fitting every cell; with both off no renderer is needed."""
    from pe3d.refinement import residual_region

    image, camera = _world_portrait()
    editor = pipe.editor
    with torch.no_grad():
        reconstruction = pipe.refinement_prior()(image)
    cfg = RefineConfig(steps=3)
    with pytest.raises(InvalidInput, match="refine: hull_threshold=0.3 and empty_weight=10.0 need .* pass renderer="):
        fit_detail_residual(editor.render, reconstruction, image, camera, cfg)
    with pytest.raises(InvalidInput, match="refine: empty_weight=10.0 needs"):
        fit_detail_residual(editor.render, reconstruction, image, camera, RefineConfig(steps=3, hull_threshold=0.0))
    own = fit_detail_residual(editor.render, reconstruction, image, camera, cfg, frozen=editor, renderer=editor.renderer)
    masks, empty = residual_region(editor.renderer, reconstruction, cfg)
    given = fit_detail_residual(editor.render, reconstruction, image, camera, cfg, frozen=editor, region=masks, empty=empty)
    assert torch.equal(own, given) and own.abs().mean() > 0
    assert torch.count_nonzero(own * (masks == 0)) == 0
    free = fit_detail_residual(editor.render, reconstruction, image, camera,
                               RefineConfig(steps=3, hull_threshold=0.0, empty_weight=0.0), frozen=editor)
    assert torch.count_nonzero(free * (masks == 0)) > 0
    # the pipeline's residual_region is the same, and detail_residual given it (edit-video reuses the first frame's)
    # fits what it fits making its own
    made = pipe.residual_region(image, cfg)
    assert torch.equal(made[0], masks)
    assert torch.equal(pipe.detail_residual(image, camera, cfg, region=made), pipe.detail_residual(image, camera, cfg))
    assert pipe.residual_region(image, RefineConfig(steps=3, **EVERY_CELL)) == (None, None)


def test_hull_masks_mark_the_cells_the_renderer_reads_an_occupied_box_through():
    """:func:`visual_hull_masks` on a field whose density is known (a box off the centre, in no plane's symmetry):
    each plane's mask, read the way the renderer reads its planes (``sample_from_planes``), is 1 at points whose
    projection falls on the box and 0 elsewhere; planes larger than the hull grid (96 cells here, grid 64) get masks
    of their own side."""
    from types import SimpleNamespace

    from pe3d.rendering.decoder import DecoderOutput
    from pe3d.rendering.planes import sample_from_planes
    from pe3d.rendering.volume import RayMarchOptions
    from pe3d.refinement import visual_hull_masks

    low, high = torch.tensor([0.1, -0.25, 0.0]), torch.tensor([0.3, -0.05, 0.2])

    def inside(points):
        return ((points >= low) & (points <= high)).all(dim=-1, keepdim=True)

    field = SimpleNamespace(config=SimpleNamespace(ray_march=RayMarchOptions(box_warp=1.0)),
                            query_field=lambda planes, coords: DecoderOutput(torch.zeros(*coords.shape[:2], 3),
                                                                             torch.where(inside(coords), 50.0, -50.0)))
    for side in (64, 96):
        masks = visual_hull_masks(field, torch.zeros(1, 3, 4, side, side), threshold=0.3, dilation=0)
        assert masks.shape == (1, 3, 1, side, side)
        points = torch.rand(4000, 3, generator=torch.Generator().manual_seed(side)) - 0.5
        seen = sample_from_planes(masks, points[None], box_warp=1.0, mode="nearest")[0, :, :, 0]  # [3, N]
        for plane, (a, b) in enumerate([(0, 1), (0, 2), (2, 0)]):  # EG3D's (x, y), (x, z), (z, x)
            over = ((points[:, [a, b]] >= low[[a, b]] + 0.02) & (points[:, [a, b]] <= high[[a, b]] - 0.02)).all(dim=1)
            off = ((points[:, [a, b]] < low[[a, b]] - 0.02) | (points[:, [a, b]] > high[[a, b]] + 0.02)).any(dim=1)
            assert bool((seen[plane][over] == 1).all()) and bool((seen[plane][off] == 0).all()), (side, plane)
    grown = visual_hull_masks(field, torch.zeros(1, 3, 4, 64, 64), threshold=0.3, dilation=2)
    assert float(grown.sum()) > float(visual_hull_masks(field, torch.zeros(1, 3, 4, 64, 64), 0.3, 0).sum())
    # a soft edge: the same mask averaged over 5 x 5 cells, 1 deep inside, 0 far off, falling in between
    hard = visual_hull_masks(field, torch.zeros(1, 3, 4, 64, 64), 0.3, 2, softness=0)
    soft = visual_hull_masks(field, torch.zeros(1, 3, 4, 64, 64), 0.3, 2, softness=5)
    assert torch.equal(hard, grown)
    expected = F.avg_pool2d(F.pad(hard.reshape(3, 1, 64, 64), (2, 2, 2, 2), mode="replicate"), 5, stride=1)
    torch.testing.assert_close(soft.reshape(3, 1, 64, 64), expected)
    between = (soft > 0) & (soft < 1)
    assert bool(between.any()) and float(soft.min()) == 0.0 and float(soft.max()) == 1.0
    assert bool((hard[soft == 1] == 1).all()), "the soft mask is 1 only inside the hard one"
    with pytest.raises(InvalidInput, match="softness must be odd"):
        visual_hull_masks(field, torch.zeros(1, 3, 4, 64, 64), 0.3, 2, softness=4)


def test_the_hull_softness_is_checked_and_keyed():
    """``RefineConfig.hull_softness``: 0 or 1 (a hard edge) leaves the key of residuals stored before the field
    existed as it was, any other value (the default 5) is part of it; an even number of cells is refused naming the
    field."""
    assert "hull_softness" not in RefineConfig(steps=10, hull_softness=0).fingerprint()
    assert "hull_softness=5" in RefineConfig(steps=10).fingerprint()
    assert "hull_softness" not in RefineConfig(steps=10, hull_threshold=0.0, hull_softness=5).fingerprint()
    with pytest.raises(InvalidInput, match="refine hull_softness"):
        RefineConfig(hull_softness=2)


def test_the_empty_space_term_keeps_the_reconstructions_empty_space_empty(pipe):
    """``RefineConfig.empty_weight`` (10 by default): the fit adds the mean opacity of random points that the
    reconstruction leaves empty within the hull (:class:`pe3d.residual_region.EmptySpace`) to its loss, so the residual
    does not grow density there, as it does without the term; the face is still fitted."""
    from pe3d.refinement import residual_region
    from pe3d.residual_region import EMPTY_OPACITY, EmptySpace

    image, camera = _world_portrait()
    editor = pipe.editor
    with torch.no_grad():
        reconstruction = pipe.refinement_prior()(pipe._prepare_image(image))
        front = editor.render(reconstruction, camera)
    background = (front.weights < 0.05).to(image)
    stripes = (torch.arange(64) // 4 % 2).to(image)[None, None, :, None].expand_as(image) * torch.tensor([0.1, 0.2, 0.6])[:, None, None]
    photo = image * (1 - background) + stripes * background
    with torch.no_grad():
        reconstruction = pipe.refinement_prior()(pipe._prepare_image(photo))

    masks, empty = residual_region(editor.renderer, reconstruction, RefineConfig(steps=1))
    assert masks is not None and isinstance(empty, EmptySpace) and len(empty.points) == 2
    assert all(points.shape[0] > 1000 for points in empty.points)
    with torch.no_grad():
        start = torch.cat([empty.opacity(reconstruction[i : i + 1], points[None]) for i, points in enumerate(empty.points)], dim=1)
    assert float(start.max()) < EMPTY_OPACITY
    assert residual_region(editor.renderer, reconstruction, RefineConfig(steps=1, empty_weight=0.0))[1] is None
    assert residual_region(editor.renderer, reconstruction, RefineConfig(steps=0)) == (None, None)

    def grown(residual):
        with torch.no_grad():
            return float(torch.cat([empty.opacity(reconstruction[i : i + 1] + residual[i : i + 1], points[None])
                                    for i, points in enumerate(empty.points)], dim=1).mean())

    kept = pipe.detail_residual(photo, camera, RefineConfig(steps=30), resolution=64)
    free = pipe.detail_residual(photo, camera, RefineConfig(steps=30, empty_weight=0.0), resolution=64)
    assert grown(kept) < 0.5 * grown(free), (grown(kept), grown(free), float(start.mean()))
    with torch.no_grad():
        plain = (editor.render(reconstruction, camera).image.clamp(0, 1) - image).square() * (1 - background)
        refined = (editor.render(reconstruction + kept, camera).image.clamp(0, 1) - image).square() * (1 - background)
    assert refined.sum() < 0.9 * plain.sum()  # 30 steps: 0.82 when written
    points, weights = EmptySpace([torch.zeros(0, 3), torch.ones(5, 3)], empty.opacity).draw(7, torch.Generator().manual_seed(0))
    assert points.shape == (2, 7, 3) and weights.tolist() == [0.0, 1.0] and bool((points[1] == 1).all())
    with pytest.raises(InvalidInput, match="refine empty_weight must be >= 0"):
        RefineConfig(empty_weight=-1.0)
