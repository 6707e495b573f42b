"""Test-time detail refinement (pe3d.refinement): the residual fits the input view, touches no weight,
and reaches the pipeline and `pe3d edit --refine-steps`."""

import pytest
import torch

import pe3d
from pe3d.errors import InvalidInput
from pe3d.refinement import RefineConfig, fit_detail_residual


@pytest.fixture(scope="module")
def pipe():
    return pe3d.EditPipeline.from_pretrained()


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
    residual = fit_detail_residual(editor.render, reconstruction, image, camera, RefineConfig(steps=30), frozen=editor)
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
    residual = fit_detail_residual(editor.render, reconstruction, image, camera, RefineConfig(steps=20, planes="front"),
                                   frozen=editor)
    assert residual[:, 0].abs().mean() > 0
    assert torch.count_nonzero(residual[:, 1:]) == 0  # EG3D's two x-z planes untouched
    with torch.no_grad():
        refined = editor.render(reconstruction + residual, camera).image.clamp(0, 1)
    assert (refined - image).square().mean() < 0.8 * (plain - image).square().mean()
    with pytest.raises(InvalidInput, match="refine planes must be one of \\['all', 'front'\\], got 'side'"):
        RefineConfig(planes="side")


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
