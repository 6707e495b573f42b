"""encoder.plane_border: planes that reach beyond the input frame, each cell keeping its size and place."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch

from pe3d.models.prior import PriorModel, model_config_from_yaml, renderer_config
from pe3d.recipes.prior import with_model_overrides

MINI = Path(__file__).resolve().parents[1] / "configs" / "model" / "mini.yaml"
BORDER = 6


@pytest.fixture(scope="module")
def plain() -> PriorModel:
    torch.manual_seed(0)
    return PriorModel(model_config_from_yaml(MINI)).eval()


@pytest.fixture(scope="module")
def bordered(plain) -> PriorModel:
    return with_model_overrides(plain, [f"encoder.plane_border={BORDER}"]).eval()


def test_border_adds_no_weights_and_widens_the_box(plain, bordered):
    assert set(plain.state_dict()) == set(bordered.state_dict())
    r, b = plain.cfg.encoder.triplane_resolution, BORDER
    assert bordered.cfg.encoder.plane_resolution == r + 2 * b
    box = plain.renderer.config.ray_march.box_warp
    assert bordered.renderer.config.ray_march.box_warp == pytest.approx(box * (r + 2 * b) / r)
    assert bordered.cfg.renderer.ray_march.box_warp == box, "the config keeps the frame's cube; the renderer grows"


def test_bordered_planes_repeat_the_edges_and_keep_the_interior(plain, bordered):
    image = torch.rand(2, 3, plain.cfg.encoder.image_size, plain.cfg.encoder.image_size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        inner, outer = plain(image), bordered(image)
    b, r = BORDER, inner.shape[-1]
    assert outer.shape[-2:] == (r + 2 * b, r + 2 * b)
    assert torch.equal(outer[..., b:-b, b:-b], inner)
    assert torch.equal(outer[..., :b, b:-b], inner[..., :1, :].expand(-1, -1, -1, b, -1))
    assert torch.equal(outer[..., -1, -1], inner[..., -1, -1])


def test_the_field_inside_the_frame_is_unchanged(plain, bordered):
    """A cell keeps its size and place: inside the frame's cube both models decode the same field."""
    image = torch.rand(1, 3, plain.cfg.encoder.image_size, plain.cfg.encoder.image_size, generator=torch.Generator().manual_seed(2))
    half = plain.renderer.config.ray_march.box_warp / 2
    inside = (torch.rand(1, 500, 3, generator=torch.Generator().manual_seed(3)) * 2 - 1) * half * 0.97
    beyond = inside.clone()
    beyond[..., 1] = -half * 1.15  # below the frame: zero features for the plain model, the border's for the other
    with torch.no_grad():
        a, b = plain.renderer.query_field(plain(image), inside), bordered.renderer.query_field(bordered(image), inside)
        assert torch.allclose(a.sigma, b.sigma, atol=1e-5) and torch.allclose(a.features, b.features, atol=1e-5)
        a, b = plain.renderer.query_field(plain(image), beyond), bordered.renderer.query_field(bordered(image), beyond)
        assert not torch.allclose(a.sigma, b.sigma, atol=1e-3)


def test_border_is_refused_where_it_cannot_work(plain):
    cfg = plain.cfg
    with pytest.raises(ValueError, match="plane_border"):
        replace(cfg.encoder, plane_border=-1)
    eg3d = replace(cfg, encoder=replace(cfg.encoder, plane_border=2), eg3d_renderer=object())
    with pytest.raises(ValueError, match="EG3D"):
        renderer_config(eg3d)
