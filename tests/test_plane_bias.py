"""encoder.t_plane_bias: a learned offset of the output planes shared by every input."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from pe3d.models.prior import PriorModel, model_config_from_yaml
from pe3d.models.prior_encoder import image_layout_to_eg3d
from pe3d.recipes.prior import with_model_overrides

MINI = Path(__file__).resolve().parents[1] / "configs" / "model" / "mini.yaml"


@pytest.fixture(scope="module")
def plain() -> PriorModel:
    torch.manual_seed(0)
    return PriorModel(model_config_from_yaml(MINI)).eval()


@pytest.fixture()
def biased(plain) -> PriorModel:
    return with_model_overrides(plain, ["encoder.t_plane_bias=true"], allow_new=True).eval()


def _image(model: PriorModel) -> torch.Tensor:
    size = model.cfg.encoder.image_size
    return torch.rand(2, 3, size, size, generator=torch.Generator().manual_seed(3))


def test_off_by_default_and_a_grown_offset_starts_at_zero(plain, biased):
    assert list(plain.encoder.plane_bias_parameters()) == []
    (bias,) = biased.encoder.plane_bias_parameters()
    enc = plain.cfg.encoder
    assert bias.shape == (1, 3 * enc.triplane_channels, enc.triplane_resolution, enc.triplane_resolution)
    assert torch.count_nonzero(bias) == 0
    image = _image(plain)
    with torch.no_grad():
        assert torch.equal(plain.encoder(image), biased.encoder(image))


def test_the_offset_is_added_cell_by_cell_in_the_image_layout(plain, biased):
    """Every input's planes move by the same offset, carried onto EG3D's axes like E_t's own output."""
    enc = plain.cfg.encoder
    c, r = enc.triplane_channels, enc.triplane_resolution
    offset = torch.randn(1, 3 * c, r, r, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        biased.encoder.decoder.plane_bias.copy_(offset)
        image = _image(plain)
        moved = biased.encoder(image) - plain.encoder(image)
    expected = image_layout_to_eg3d(offset.view(1, 3, c, r, r)).expand_as(moved)
    assert torch.allclose(moved, expected, atol=1e-5)


def test_with_a_border_the_offset_covers_the_inner_cells_and_the_border_repeats_them(plain):
    model = with_model_overrides(plain, ["encoder.t_plane_bias=true", "encoder.plane_border=2"], allow_new=True).eval()
    enc = model.cfg.encoder
    (bias,) = model.encoder.plane_bias_parameters()
    assert bias.shape[-1] == enc.triplane_resolution
    with torch.no_grad():
        bias.fill_(1.0)
        planes = model.encoder(_image(model))
    reference = with_model_overrides(plain, ["encoder.plane_border=2"]).eval()
    with torch.no_grad():
        plain_planes = reference.encoder(_image(model))
    assert planes.shape[-1] == enc.triplane_resolution + 4
    assert torch.allclose(planes - plain_planes, torch.ones_like(planes), atol=1e-5)


def test_the_offset_trains_at_its_own_rate(plain, biased):
    from pe3d.losses import ImageLossConfig, ReconstructionLossConfig
    from pe3d.systems.common import OptimConfig
    from pe3d.systems.prior import PriorSystem, PriorSystemConfig

    loss = ReconstructionLossConfig(image=ImageLossConfig(perceptual="none"))
    cfg = PriorSystemConfig(loss=loss, optim=OptimConfig(lr=2e-4), plane_bias_lr_scale=20.0)
    groups = PriorSystem(biased, cfg).parameter_groups()
    (bias,) = biased.encoder.plane_bias_parameters()
    assert len(groups) == 2 and "lr" not in groups[0] and groups[1]["lr"] == pytest.approx(4e-3)
    assert groups[1]["params"] == [bias]
    assert sum(len(g["params"]) for g in groups) == len(list(biased.parameters()))
    (only,) = PriorSystem(biased, PriorSystemConfig(loss=loss)).parameter_groups()
    assert len(only["params"]) == len(list(biased.parameters()))
    with pytest.raises(ValueError, match="plane_bias_lr_scale"):
        PriorSystemConfig(plane_bias_lr_scale=-1.0)
