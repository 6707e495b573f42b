"""encoder.t_depth_lift: image-column features lifted into the two depth planes (pe3d.models.depth_lift)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from pe3d.config import ConfigError
from pe3d.models.depth_lift import DepthLift
from pe3d.models.prior import PriorModel, PriorEncoderConfig, model_config_from_yaml
from pe3d.recipes.prior import with_model_overrides

MINI = Path(__file__).resolve().parents[1] / "configs" / "model" / "mini.yaml"


@pytest.fixture(scope="module")
def plain() -> PriorModel:
    torch.manual_seed(0)
    return PriorModel(model_config_from_yaml(MINI)).eval()


@pytest.fixture(scope="module")
def lifted(plain) -> PriorModel:
    return with_model_overrides(plain, ["encoder.t_depth_lift=4"], allow_new=True).eval()


def _image(model: PriorModel, seed: int) -> torch.Tensor:
    size = model.cfg.encoder.image_size
    return torch.rand(2, 3, size, size, generator=torch.Generator().manual_seed(seed))


def test_a_column_pixel_lands_on_its_depth_row_in_its_own_column():
    """One feature at pixel (row 2, column 5), certain to lie at depth row 6, reaches cell (6, 5) and no other."""
    r = 8
    lift = DepthLift(in_channels=2, channels=1, resolution=r, plane_channels=1)
    with torch.no_grad():
        lift.depth_logits.weight.zero_()
        lift.depth_logits.bias.zero_()
        lift.depth_logits.weight[6, 1] = 100.0  # input channel 1 votes for depth row 6
        lift.features.weight.zero_()
        lift.features.bias.zero_()
        lift.features.weight[0, 0] = 1.0  # the lifted feature is input channel 0
        lift.out.weight.zero_()
        lift.out.bias.zero_()
        lift.out.weight[:, 0, 1, 1] = 1.0  # both depth planes copy the lifted map
    x = torch.zeros(1, 2, r, r)
    x[0, 0, 2, 5] = 3.0
    x[0, 1, 2, 5] = 1.0
    out = lift(x)
    assert out.shape == (1, 2, r, r)
    expected = torch.zeros(r, r)
    expected[6, 5] = 3.0 / r
    assert torch.allclose(out[0, 0], expected, atol=1e-6)
    assert torch.allclose(out[0, 1], expected, atol=1e-6)


def test_a_new_lift_leaves_a_trained_encoder_unchanged_and_touches_only_the_depth_planes(plain, lifted):
    image = _image(plain, 1)
    new = sorted(set(lifted.state_dict()) - set(plain.state_dict()))
    assert new and all(".lift." in name for name in new)
    with torch.no_grad():
        before = plain(image)
        assert torch.equal(lifted(image), before)
    grown = with_model_overrides(plain, ["encoder.t_depth_lift=4"], allow_new=True).eval()
    with torch.no_grad():
        nn.init.normal_(grown.encoder.decoder.lift.out.weight, std=0.1)
        after = grown(image)
    assert torch.equal(after[:, 0], before[:, 0]), "the frontal plane is not the lift's"
    assert not torch.allclose(after[:, 1], before[:, 1], atol=1e-4)
    assert not torch.allclose(after[:, 2], before[:, 2], atol=1e-4)


def test_the_lift_trains_from_its_zero_start(plain):
    model = with_model_overrides(plain, ["encoder.t_depth_lift=4"], allow_new=True).train()
    model(_image(model, 2))[:, 1:].square().mean().backward()
    assert model.encoder.decoder.lift.out.weight.grad.abs().sum() > 0


def test_bad_settings_are_refused_by_name():
    with pytest.raises(ValueError, match="t_depth_lift"):
        PriorEncoderConfig(t_depth_lift=-1)
    with pytest.raises(ValueError, match="t_depth_lift=8 needs triplane_layout='image'"):
        PriorEncoderConfig(t_depth_lift=8, triplane_layout="eg3d")
    with pytest.raises(ValueError, match=r"DepthLift expected features \[B, F, 8, 8\]"):
        DepthLift(2, 1, 8, 1)(torch.zeros(1, 2, 8, 9))


def test_growing_a_lift_needs_new_tensors_allowed(plain):
    with pytest.raises(ConfigError, match="add"):
        with_model_overrides(plain, ["encoder.t_depth_lift=4"])


def test_the_lift_can_train_at_its_own_rate(plain, lifted):
    from pe3d.losses import ImageLossConfig, ReconstructionLossConfig
    from pe3d.systems.common import OptimConfig
    from pe3d.systems.prior import PriorSystem, PriorSystemConfig

    loss = ReconstructionLossConfig(image=ImageLossConfig(perceptual="none"))
    cfg = PriorSystemConfig(loss=loss, optim=OptimConfig(lr=2e-4), lift_lr_scale=10.0)
    groups = PriorSystem(lifted, cfg).parameter_groups()
    lift_ids = {id(p) for p in lifted.encoder.decoder.lift.parameters()}
    assert len(groups) == 2 and "lr" not in groups[0] and groups[1]["lr"] == pytest.approx(2e-3)
    assert {id(p) for p in groups[1]["params"]} == lift_ids
    assert not lift_ids & {id(p) for p in groups[0]["params"]}
    assert sum(len(g["params"]) for g in groups) == len([p for p in lifted.parameters() if p.requires_grad])
    (only,) = PriorSystem(plain, cfg).parameter_groups()
    assert len(only["params"]) == len(list(plain.parameters()))
    with pytest.raises(ValueError, match="lift_lr_scale"):
        PriorSystemConfig(lift_lr_scale=0.0)
