"""Few-step fits of every system on CPU through the real recipes (world -> prior -> editor -> adapter)."""

import pytest
import torch

from pe3d.config import load_structured
from pe3d.models.editor import load_editor
from pe3d.models.prior import load_prior
from pe3d.recipes.editing import AdaptFitConfig, DistillFitConfig, fit_adapt, fit_distill
from pe3d.recipes.prior import PriorFitConfig, fit_prior
from pe3d.adapters import AdapterMismatchError, load_adapter_into, read_adapter

FAST_RENDER = [
    "renderer.ray_march.depth_resolution=8",
    "renderer.ray_march.depth_resolution_importance=8",
]
TRAINER = ["trainer.progress=false", "trainer.logger=csv", "trainer.checkpoint_every_n_steps=2"]
SMALL_RENDERS = ["system.input_ray_stride=1", "system.view_ray_stride=1"]
"""8^2 renders: every ray (the recipes' dilated patches would leave SSIM 2^2 images)."""


@pytest.fixture(scope="module")
def prior_path(tmp_path_factory):
    out = tmp_path_factory.mktemp("prior")
    cfg = load_structured(
        PriorFitConfig,
        [],
        [
            f"out={out}",
            "data.count=8", "data.views=3", "data.supersample=1",
            "val_data.count=2", "val_data.views=3", "val_data.supersample=1",
            "num_targets=2", "target_resolution=16", "batch_size=4",
            "background_probability=0.5", "background_texture=1.0", "recolour_probability=0.5",  # every augmentation path
            "system.image_log_every=0", "trainer.max_steps=4", *TRAINER,
        ],
    )
    return fit_prior(cfg)


def test_fit_prior_writes_loadable_weights_and_resumable_checkpoint(prior_path):
    model = load_prior(prior_path)
    assert (prior_path.parent / "checkpoints" / "last.ckpt").is_file()
    assert (prior_path.parent / "config.yaml").is_file()
    with torch.no_grad():
        planes = model(torch.rand(1, 3, 64, 64))
    assert torch.isfinite(planes).all()


@pytest.fixture(scope="module")
def editor_path(prior_path, tmp_path_factory):
    out = tmp_path_factory.mktemp("distill")
    cfg = load_structured(
        DistillFitConfig,
        [],
        [
            f"prior={prior_path}", f"out={out}", f"pairs_dir={out / 'pairs'}",
            "styles=[bronze_statue,blue_hair]", "pairs_per_style=6",
            "data.batch_size=4", "system.render_resolution=8", "system.num_views=1",
            "system.image_log_every=0", "trainer.max_steps=3", *SMALL_RENDERS, *TRAINER,
        ],
    )
    return fit_distill(cfg)


def test_fit_distill_then_adapt_exports_an_adapter_that_loads_back(prior_path, editor_path, tmp_path):
    base = load_editor(editor_path)
    export = tmp_path / "adapter.safetensors"
    cfg = load_structured(
        AdaptFitConfig,
        [],
        [
            f"base={editor_path}", f"prior={prior_path}", "style=pencil_sketch", "num_pairs=4",
            f"pairs_dir={tmp_path / 'pairs'}", f"out={tmp_path / 'run'}", f"export={export}",
            "system.render_resolution=8", "system.num_views=1", "system.image_log_every=0",
            "trainer.max_steps=3", *SMALL_RENDERS, *TRAINER,
        ],
    )
    path = fit_adapt(cfg)
    adapter = read_adapter(path)
    assert adapter.style == "pencil_sketch" and adapter.kind == "norm-only"
    norm_names = {n for n, p in base.named_parameters() if any(p is q for q in base.encoder.norm_parameters())}
    assert norm_names <= set(adapter.tensors)
    assert not any(n.startswith("encoder.low") or n.startswith("cross_attention") for n in adapter.tensors)
    changed = [n for n, t in adapter.tensors.items() if not torch.equal(t, dict(base.named_parameters())[n])]
    assert changed, "adaptation did not change any adapter tensor"
    fresh = load_editor(editor_path)
    load_adapter_into(fresh, path)
    for name, value in adapter.tensors.items():
        assert torch.equal(dict(fresh.named_parameters())[name], value)
    other = load_editor(editor_path)
    with torch.no_grad():
        next(other.encoder.low.parameters()).add_(1.0)
    with pytest.raises(AdapterMismatchError, match="made for base model"):
        load_adapter_into(other, path)


def test_fit_distill_init_continues_from_an_editor_with_no_edit_pairs(prior_path, editor_path, tmp_path):
    from pe3d.config import ConfigError

    args = [f"prior={prior_path}", f"init={editor_path}", f"out={tmp_path / 'more'}", f"pairs_dir={editor_path.parent / 'pairs'}",
            "styles=[bronze_statue,blue_hair]", "pairs_per_style=6", "data.prompt_augment.no_edit=0.5",
            "data.batch_size=4", "system.render_resolution=8", "system.num_views=1",
            "system.image_log_every=0", "trainer.max_steps=2", *SMALL_RENDERS, *TRAINER]
    start = load_editor(editor_path)
    path = fit_distill(load_structured(DistillFitConfig, [], args))
    continued = load_editor(path)
    assert continued.cfg == start.cfg  # the init file's own model, not a new one from the prior
    changed = [name for name, value in continued.state_dict().items() if not torch.equal(value, start.state_dict()[name])]
    assert changed, "fine-tuning did not change the editor"
    # init keeps its own weights: an override that would change them is refused ...
    with pytest.raises(ConfigError, match="change the weights"):
        fit_distill(load_structured(DistillFitConfig, [], [*args, "model_overrides=[encoder.triplane_channels=4]"]))
    # ... one that changes none applies (a plane border), and the teacher check then sees its wider planes
    with pytest.raises(ConfigError, match="triplanes"):
        fit_distill(load_structured(DistillFitConfig, [], [*args, "model_overrides=[encoder.plane_border=2]"]))


def test_fit_distill_init_takes_the_priors_frozen_parts(prior_path, editor_path, tmp_path):
    """With ``init``, the editor's E_low, E_high and renderer become the (here: continued) prior's, which
    distillation keeps frozen; ``init_takes_prior_parts=false`` keeps the init file's own."""
    from pe3d.recipes.editing import build_distill_system

    prior = load_prior(prior_path)
    with torch.no_grad():
        next(prior.encoder.low.parameters()).add_(0.5)
        next(prior.renderer.parameters()).add_(0.5)
    start = load_editor(editor_path)
    args = [f"prior={prior_path}", f"init={editor_path}", f"out={tmp_path}", "styles=[bronze_statue]"]
    taken = build_distill_system(load_structured(DistillFitConfig, [], args), prior).editor
    kept = build_distill_system(load_structured(DistillFitConfig, [], [*args, "init_takes_prior_parts=false"]), prior).editor
    for part in ("encoder.low", "encoder.high", "renderer"):
        ours, theirs = taken.get_submodule(part).state_dict(), prior.get_submodule(part).state_dict()
        assert all(torch.equal(ours[k], theirs[k]) for k in theirs), part
        assert all(torch.equal(v, start.get_submodule(part).state_dict()[k]) for k, v in kept.get_submodule(part).state_dict().items())
    assert not torch.equal(next(taken.encoder.low.parameters()), next(start.encoder.low.parameters()))
    assert taken.take_prior_parts(prior) == []  # nothing differs any more
    trained = dict(taken.encoder.decoder.state_dict())
    assert all(torch.equal(v, start.encoder.decoder.state_dict()[k]) for k, v in trained.items())  # E_t is the init's


def test_fit_distill_init_residual_turns_the_editor_residual(prior_path, editor_path, tmp_path):
    """``residual=true`` with ``init``: the exported editor is residual, its frozen base is the prior's E_t and
    its edit branch (trained from the init's E_t with a zeroed output layer) has moved off zero."""
    args = [f"prior={prior_path}", f"init={editor_path}", f"out={tmp_path / 'res'}", f"pairs_dir={editor_path.parent / 'pairs'}",
            "styles=[bronze_statue,blue_hair]", "pairs_per_style=6", "residual=true",
            "data.batch_size=4", "system.render_resolution=8", "system.num_views=1",
            "system.image_log_every=0", "trainer.max_steps=2", *SMALL_RENDERS, *TRAINER]
    path = fit_distill(load_structured(DistillFitConfig, [], args))
    editor = load_editor(path)
    prior = load_prior(prior_path)
    assert editor.cfg.residual
    theirs = prior.encoder.decoder.state_dict()
    assert all(torch.allclose(v, theirs[k].to(v.dtype)) for k, v in editor.base_decoder.state_dict().items())
    assert editor.encoder.decoder.out.weight.abs().max() > 0
    assert editor.take_prior_parts(prior) == []
    # adapting it writes an adapter with E_t's norms and its output layer (never the frozen base) that loads back
    adapter_path = fit_adapt(load_structured(AdaptFitConfig, [], [
        f"base={path}", f"prior={prior_path}", "style=pencil_sketch", "num_pairs=4", f"pairs_dir={tmp_path / 'pairs'}",
        f"out={tmp_path / 'adapt'}", f"export={tmp_path / 'adapter.safetensors'}", "system.render_resolution=8",
        "system.num_views=1", "system.image_log_every=0", "trainer.max_steps=2", *SMALL_RENDERS, *TRAINER]))
    adapter = read_adapter(adapter_path)
    assert {"encoder.decoder.out.weight", "encoder.decoder.out.bias"} <= set(adapter.tensors)
    assert not any(name.startswith("base_decoder") for name in adapter.tensors)
    assert not torch.equal(adapter.tensors["encoder.decoder.out.weight"], editor.encoder.decoder.out.weight)
    load_adapter_into(editor, adapter_path)
    assert torch.equal(editor.encoder.decoder.out.weight, adapter.tensors["encoder.decoder.out.weight"])


def _short_adapt_args(prior_path, editor_path, tmp_path, *extra: str) -> list[str]:
    """A 3-step ``fit adapt`` of pencil_sketch on 4 pairs at tiny renders, exporting ``tmp_path/adapter.safetensors``."""
    return [f"base={editor_path}", f"prior={prior_path}", "style=pencil_sketch", "num_pairs=4",
            f"pairs_dir={tmp_path / 'pairs'}", f"out={tmp_path / 'run'}", f"export={tmp_path / 'adapter.safetensors'}",
            "system.render_resolution=8", "system.num_views=1", "system.image_log_every=0", "trainer.max_steps=3",
            "lr=0.01", *extra, *SMALL_RENDERS, *TRAINER]


def test_fit_adapt_with_the_renderers_decoder(prior_path, editor_path, tmp_path):
    """``decoder_lr_scale > 0``: the renderer's decoder MLP adapts too, in its own optimizer group at that multiple
    of the rate, and the adapter (kind ``norm-only+decoder``) carries it and loads back; a negative scale is refused."""
    from pe3d.losses import EditLossConfig, ImageLossConfig
    from pe3d.systems.editing import AdaptSystem, EditSystemConfig

    base = load_editor(editor_path)
    adapter = read_adapter(fit_adapt(load_structured(AdaptFitConfig, [], _short_adapt_args(
        prior_path, editor_path, tmp_path, "decoder_lr_scale=0.5"))))
    assert adapter.kind == "norm-only+decoder"
    decoder = {f"renderer.decoder.{n}": p for n, p in base.renderer.decoder.named_parameters()}
    assert set(decoder) <= set(adapter.tensors)
    assert any(not torch.equal(adapter.tensors[n], p) for n, p in decoder.items()), "the decoder did not adapt"
    fresh = load_editor(editor_path)
    load_adapter_into(fresh, tmp_path / "adapter.safetensors")
    assert all(torch.equal(dict(fresh.named_parameters())[n], adapter.tensors[n]) for n in decoder)
    cfg = EditSystemConfig(loss=EditLossConfig(image_3d=ImageLossConfig(perceptual="ssim")))
    system = AdaptSystem(load_editor(editor_path), load_prior(prior_path), cfg, decoder_lr_scale=0.25)
    groups = system.configure_optimizers()["optimizer"].param_groups
    assert [g["lr"] for g in groups] == pytest.approx([5e-5, 5e-5 * 0.25])
    assert {id(p) for p in groups[1]["params"]} == {id(p) for p in system.editor.renderer.decoder.parameters()}
    with pytest.raises(ValueError, match="decoder_lr_scale"):
        AdaptSystem(load_editor(editor_path), load_prior(prior_path), cfg, decoder_lr_scale=-1.0)


def test_fit_adapt_with_a_frozen_prompt_encoder_exports_a_full_adapter(prior_path, editor_path, tmp_path):
    """``system.train_prompt_encoder=false``: E_p's mapper does not adapt, but the adapter still carries it (at the
    base's values) with the norms that did, so it loads back like any other adapter of that base."""
    base = load_editor(editor_path)
    adapter = read_adapter(fit_adapt(load_structured(AdaptFitConfig, [], _short_adapt_args(
        prior_path, editor_path, tmp_path, "system.train_prompt_encoder=false"))))
    mapper = {f"text_encoder.{n}": p for n, p in base.text_encoder.named_parameters() if n.startswith("mapper.")}
    assert mapper and set(mapper) <= set(adapter.tensors)
    assert all(torch.equal(adapter.tensors[n], p) for n, p in mapper.items()), "the frozen mapper moved"
    norms = [n for n in adapter.tensors if n.startswith("encoder.")]
    assert any(not torch.equal(adapter.tensors[n], dict(base.named_parameters())[n]) for n in norms), "no norm adapted"
    fresh = load_editor(editor_path)
    load_adapter_into(fresh, tmp_path / "adapter.safetensors")
    assert all(torch.equal(dict(fresh.named_parameters())[n], adapter.tensors[n]) for n in norms)


def test_fit_distill_keeps_the_refined_teacher_beside_the_pairs_for_the_next_run(prior_path, editor_path, tmp_path):
    """``system.teacher_refine_steps``: the first run writes each pair's refined teacher triplane to
    ``<pairs_dir>/refined-teacher``; a second run on the same pairs reads every one of them (no file is written
    again); ``system.teacher_store=none`` keeps nothing, and ``off`` (a boolean to YAML) is refused."""
    from pathlib import Path

    from omegaconf import OmegaConf

    pairs = tmp_path / "pairs"
    args = [f"prior={prior_path}", f"init={editor_path}", "system.teacher_refine_steps=1",
            "styles=[bronze_statue,blue_hair]", "pairs_per_style=6", "data.batch_size=4", "system.render_resolution=8",
            "system.num_views=1", "system.image_log_every=0", "trainer.max_steps=2", *SMALL_RENDERS, *TRAINER]
    fit_distill(load_structured(DistillFitConfig, [], [*args, f"pairs_dir={pairs}", f"out={tmp_path / 'first'}"]))
    assert OmegaConf.load(tmp_path / "first" / "config.yaml").system.teacher_store == str(pairs / "refined-teacher")
    written = {p: p.stat().st_mtime_ns for p in (pairs / "refined-teacher").rglob("*.safetensors")}
    assert len(written) >= 8  # 2 steps of 4 pairs (and the validation pairs)
    assert {p.parent.name for p in written} <= {"bronze_statue", "blue_hair"}
    fit_distill(load_structured(DistillFitConfig, [], [*args, f"pairs_dir={pairs}", f"out={tmp_path / 'second'}"]))
    assert {p: p.stat().st_mtime_ns for p in (pairs / "refined-teacher").rglob("*.safetensors")} == written
    off = tmp_path / "pairs-off"
    fit_distill(load_structured(DistillFitConfig, [], [*args, f"pairs_dir={off}", "system.teacher_store=none",
                                                       f"out={tmp_path / 'off'}"]))
    assert OmegaConf.load(tmp_path / "off" / "config.yaml").system.teacher_store == "none"
    assert not [p for p in tmp_path.rglob("*.safetensors") if off in p.parents and "refined" in str(p)]
    assert not list(Path.cwd().glob("none")) and not list(Path.cwd().glob("False"))
    with pytest.raises(ValueError, match="teacher_store='False'.*booleans to YAML"):
        load_structured(DistillFitConfig, [], [*args, "system.teacher_store=off"])
