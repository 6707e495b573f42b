"""Random part recolouring of world views (prior training): consistent across views, background kept."""

from __future__ import annotations

import pytest
import torch

from pe3d.data.world_views import WorldViewDataset
from pe3d.world.appearance import PART_GROUPS, random_part_colours, recolour_parts
from pe3d.world.field import Part


def _views(size: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    parts = torch.zeros(2, size, size, dtype=torch.long)
    parts[:, 2:6, 2:6] = int(Part.SKIN)
    parts[:, 0, :] = int(Part.HAIR)
    parts[:, 1, :3] = int(Part.BROWS)
    rgb = torch.rand(2, 3, size, size)
    rgb[:, :, 6:] = 1.0  # background rows
    return rgb, parts


def test_recolour_changes_the_chosen_groups_only_and_keeps_shading() -> None:
    rgb, parts = _views()
    colours: list = [None] * len(PART_GROUPS)
    colours[0] = torch.tensor([0.1, 0.9, 0.2])  # skin
    colours[1] = torch.tensor([0.2, 0.3, 1.0])  # hair, brows and beard together
    out = recolour_parts(rgb, parts, colours)
    background = parts == int(Part.BACKGROUND)
    assert torch.equal(out.permute(1, 0, 2, 3)[:, background], rgb.permute(1, 0, 2, 3)[:, background])
    skin = out.permute(1, 0, 2, 3)[:, parts == int(Part.SKIN)]  # [3, N]
    assert torch.allclose(skin / skin.sum(0, keepdim=True), (colours[0] / colours[0].sum())[:, None].expand_as(skin), atol=1e-5)
    assert skin.std(dim=1).max() > 0  # shading kept: not one flat colour
    hair = out.permute(1, 0, 2, 3)[:, (parts == int(Part.HAIR)) | (parts == int(Part.BROWS))]
    assert (hair[2] >= hair[0]).all()  # blue dominates hair and brows alike
    assert torch.equal(recolour_parts(rgb, parts, [None] * len(PART_GROUPS)), rgb)
    with pytest.raises(ValueError, match="one per part group"):
        recolour_parts(rgb, parts, [None])


def test_random_part_colours_follow_the_probability() -> None:
    generator = torch.Generator().manual_seed(0)
    assert all(c is None for c in random_part_colours(generator, probability=0.0))
    assert all(c is not None and c.shape == (3,) for c in random_part_colours(generator, probability=1.0))


def test_dataset_recolours_every_view_of_an_item_alike() -> None:
    views, size = 3, 8
    parts = torch.zeros(1, views, size, size, dtype=torch.uint8)
    parts[..., 2:6, 2:6] = int(Part.SKIN)
    rgb = torch.full((1, views, 3, size, size), 255, dtype=torch.uint8)
    rgb[..., 2:6, 2:6] = 150
    bank = {"rgb": rgb, "depth": torch.ones(1, views, 1, size, size, dtype=torch.float16), "parts": parts,
            "labels": torch.zeros(1, views, 25), "index": torch.tensor([5])}
    torch.manual_seed(0)
    changed = 0
    for _ in range(8):
        item = WorldViewDataset(bank, num_targets=3, recolour_probability=1.0)[0]
        skin = item["target_image"][:, :, 3, 3]  # [K, 3]
        assert torch.allclose(skin, skin[:1].expand_as(skin))  # the same colour in every view
        assert torch.equal(item["target_image"][:, :, 0, 0], torch.ones(3, 3))  # background untouched
        changed += int(not torch.allclose(skin[0], torch.full((3,), 150 / 255)))
    assert changed >= 2  # skin is recoloured with probability 1/2 per item
    plain = WorldViewDataset(bank, num_targets=3)[0]
    assert torch.allclose(plain["target_image"][:, :, 3, 3], torch.full((3, 3), 150 / 255))
    with pytest.raises(ValueError, match="recolour_probability"):
        WorldViewDataset(bank, recolour_probability=-0.1)


def test_dataset_takes_the_frontal_view_as_input_with_its_probability() -> None:
    views, size = 6, 4
    labels = torch.arange(views, dtype=torch.float32)[:, None].expand(views, 25)[None]  # label k marks view k
    bank = {"rgb": torch.zeros(1, views, 3, size, size, dtype=torch.uint8),
            "depth": torch.ones(1, views, 1, size, size, dtype=torch.float16),
            "parts": torch.zeros(1, views, size, size, dtype=torch.uint8), "labels": labels, "index": torch.tensor([0])}
    torch.manual_seed(0)
    always = WorldViewDataset(bank, num_targets=3, frontal_input_probability=1.0)
    for _ in range(20):
        item = always[0]
        chosen = item["target_label"][:, 0].long().tolist()
        assert item["input_label"][0] == 0 and chosen[0] == 0 and len(set(chosen)) == 3  # input first, targets distinct
    never = WorldViewDataset(bank, num_targets=3)
    assert any(int(never[0]["input_label"][0]) != 0 for _ in range(20))
    with pytest.raises(ValueError, match="frontal_input_probability"):
        WorldViewDataset(bank, frontal_input_probability=1.5)
