"""Each system's loss goes down when it trains on a fixed batch of the embedded world; the editing
systems take their depth target from the teacher on the image `loss.depth_source` names."""

import copy

import torch

from pe3d.config import configs_dir
from pe3d.data.world_views import WorldViewDataset, WorldViewsConfig, render_bank
from pe3d.losses import EditLossConfig, ImageLossConfig, ReconstructionLossConfig
from pe3d.models.editor import EditorCore, editor_config_from_yaml, load_editor
from pe3d.models.prior import PriorModel, load_prior
from pe3d.weights import shipped_path
from pe3d.systems.editing import AdaptSystem, DistillSystem, EditSystemConfig
from pe3d.systems.prior import PriorSystem, PriorSystemConfig
from pe3d.world import apply_style_filter

FAST = ["renderer.ray_march.depth_resolution=8", "renderer.ray_march.depth_resolution_importance=8"]


def _train(system, batch, steps, lr):
    optimizer = torch.optim.Adam([p for p in system.parameters() if p.requires_grad], lr=lr)
    losses = []
    for _ in range(steps):
        optimizer.zero_grad()
        loss = system.compute_losses(batch)[0]["loss"]
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def _world_batch():
    bank = render_bank(WorldViewsConfig(count=4, views=3, resolution=64), progress=False)
    data = WorldViewDataset(bank, num_targets=2, target_resolution=16, random_views=False)
    return torch.utils.data.default_collate([data[i] for i in range(4)]), bank


def test_prior_loss_falls():
    torch.manual_seed(0)
    batch, _ = _world_batch()
    cfg = editor_config_from_yaml(configs_dir() / "model" / "mini.yaml", FAST)
    system = PriorSystem(PriorModel(cfg.prior), PriorSystemConfig(loss=ReconstructionLossConfig(image=ImageLossConfig(perceptual="none"))))
    losses = _train(system, batch, 25, 2e-3)
    assert losses[-1] < 0.7 * losses[0], losses


def _edit_batch(style_filter: str, prompt: str) -> dict:
    _, bank = _world_batch()
    rgb = bank["rgb"][:, 0].float() / 255
    return {
        "input_image": rgb,
        "edited_image": apply_style_filter(style_filter, rgb, bank["parts"][:, 0].long()),
        "label": bank["labels"][:, 0],
        "prompt": [prompt] * 4,
    }


SYSTEM_CFG = EditSystemConfig(loss=EditLossConfig(image_3d=ImageLossConfig(perceptual="none")), num_views=1, render_resolution=16, image_log_every=0)


def test_distill_loss_falls_from_the_trained_prior():
    torch.manual_seed(0)
    cfg = editor_config_from_yaml(configs_dir() / "model" / "mini.yaml")
    prior = load_prior(shipped_path("prior_mini"))  # editing starts from a trained prior, as in the paper
    editor = EditorCore.from_prior(prior, cfg.cross_attention, cfg.prompt_encoder)
    losses = _train(DistillSystem(editor, copy.deepcopy(prior), SYSTEM_CFG), _edit_batch("zombie", "turn the person into a zombie"), 20, 1e-4)
    assert losses[-1] < 0.8 * losses[0], losses


def test_adapt_loss_falls_on_a_new_style():
    torch.manual_seed(0)
    editor = load_editor(shipped_path("editor_mini"))  # the base editor never saw golden_statue
    batch = _edit_batch("golden_statue", "turn the person into a golden statue")
    losses = _train(AdaptSystem(editor, load_prior(shipped_path("prior_mini")), SYSTEM_CFG), batch, 20, 3e-3)
    assert losses[-1] < 0.8 * losses[0], losses


def _depth_term(depth_source: str, batch: dict) -> float:
    cfg = EditSystemConfig(loss=EditLossConfig(image_3d=ImageLossConfig(perceptual="none"), depth_source=depth_source),
                           num_views=1, render_resolution=16, image_log_every=0)
    system = AdaptSystem(load_editor(shipped_path("editor_mini")), load_prior(shipped_path("prior_mini")), cfg)
    torch.manual_seed(0)  # the same random L3d cameras for every call
    with torch.no_grad():
        return system.compute_losses(batch)[0]["l3d_depth"].item()


def test_depth_source_input_takes_the_geometry_of_the_unedited_input():
    """The student sees only the input and the prompt, so with ``depth_source=input`` its depth term cannot
    depend on the edited image; with ``edited`` (the paper) it does, through the teacher."""
    batch = _edit_batch("pop_art", "turn the portrait into pop art")
    unedited = {**batch, "edited_image": batch["input_image"]}
    assert _depth_term("input", batch) == _depth_term("input", unedited)
    assert abs(_depth_term("edited", batch) - _depth_term("edited", unedited)) > 1e-4
    assert _depth_term("edited", unedited) == _depth_term("input", unedited)


def test_prior_empty_space_term_clears_the_fields_haze():
    """``system.loss.empty_space`` (off by default): the shipped prior's field keeps a faint opacity in its empty space;
    a few steps with the term lower it (at the same seeded points), and the term is reported."""
    from pe3d.losses import empty_space_loss
    from pe3d.residual_region import EMPTY_OPACITY

    torch.manual_seed(0)
    batch, _ = _world_batch()
    loss_cfg = ReconstructionLossConfig(image=ImageLossConfig(perceptual="none"))
    assert "empty_space" not in PriorSystem(load_prior(shipped_path("prior_mini")), PriorSystemConfig(loss=loss_cfg)).compute_losses(batch)[0]
    prior = load_prior(shipped_path("prior_mini"))
    system = PriorSystem(prior, PriorSystemConfig(loss=ReconstructionLossConfig(image=ImageLossConfig(perceptual="none"),
                                                                                empty_space=10.0, empty_space_points=2048)))

    def haze():
        with torch.no_grad():
            return float(empty_space_loss(prior.renderer, prior(batch["input_image"]), 4096, torch.Generator().manual_seed(1)))

    before = haze()
    terms = system.compute_losses(batch)[0]
    assert 0 < float(terms["empty_space"].detach()) < EMPTY_OPACITY
    _train(system, batch, 8, 1e-4)
    assert haze() < 0.8 * before, (haze(), before)
