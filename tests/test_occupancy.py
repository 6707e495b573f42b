"""The world's signed-distance samples (pe3d.data.occupancy) and the occupancy term of prior training."""

from __future__ import annotations

import pytest
import torch

from pe3d.config import ConfigError
from pe3d.data.occupancy import OccupancySamplesConfig, load_or_build_occupancy, occupancy_samples
from pe3d.data.world_views import WorldViewDataset, WorldViewsConfig, render_bank
from pe3d.losses import ImageLossConfig, ReconstructionLossConfig, occupancy_loss
from pe3d.models.prior import load_prior
from pe3d.residual_region import cell_opacity
from pe3d.systems.prior import PriorSystem, PriorSystemConfig
from pe3d.weights import shipped_path

BOX = 0.6333  # the mini prior's triplane box (configs/model/mini.yaml)


@pytest.fixture(scope="module")
def bank():
    return render_bank(WorldViewsConfig(count=3, views=2, resolution=64, supersample=1), progress=False)


def test_samples_lie_on_the_heads_and_in_the_box(bank):
    samples = occupancy_samples(bank, BOX, OccupancySamplesConfig(points=512, near_surface=0.5, noise=0.0), progress=False)
    assert samples["points"].shape == (3, 512, 3) and samples["sdf"].shape == (3, 512)
    assert float(samples["points"].abs().max()) <= BOX / 2 + 1e-3
    near, uniform = samples["sdf"][:, :256].float(), samples["sdf"][:, 256:].float()
    # un-jittered surface points of the depth maps are on the true surface (the frames agree) to a tenth of a cell
    assert float(near.abs().median()) < 0.1 * BOX / 64, float(near.abs().median())
    assert 0.02 < float((uniform < 0).float().mean()) < 0.6  # some of the box is inside a head, most is not
    jittered = occupancy_samples(bank, BOX, OccupancySamplesConfig(points=512, noise=0.02), progress=False)
    assert float(jittered["sdf"][:, :256].float().abs().median()) > 2 * float(near.abs().median())


def test_samples_are_cached_by_their_settings(bank, tmp_path):
    cfg = OccupancySamplesConfig(points=64)
    first = load_or_build_occupancy(bank, BOX, cfg, 0, cache_dir=tmp_path, progress=False)
    files = list((tmp_path / "world").glob("occupancy-*.safetensors"))
    assert len(files) == 1
    assert torch.equal(load_or_build_occupancy(bank, BOX, cfg, 0, cache_dir=tmp_path, progress=False)["points"], first["points"])
    load_or_build_occupancy(bank, BOX, OccupancySamplesConfig(points=64, noise=0.02), 0, cache_dir=tmp_path, progress=False)
    assert len(list((tmp_path / "world").glob("occupancy-*.safetensors"))) == 2


def test_bad_settings_are_refused(bank):
    with pytest.raises(ValueError, match="occupancy.points"):
        OccupancySamplesConfig(points=-1)
    with pytest.raises(ValueError, match="near_surface"):
        OccupancySamplesConfig(points=8, near_surface=1.5)
    samples = occupancy_samples(bank, BOX, OccupancySamplesConfig(points=16), progress=False)
    with pytest.raises(ValueError, match="identities"):
        WorldViewDataset({k: v[:2] for k, v in bank.items()}, num_targets=1, occupancy=samples)


def test_the_term_teaches_the_field_where_the_head_is(bank):
    """A few steps of the occupancy term alone raise the shipped prior's opacity inside the true surface and lower it
    outside (so its sign convention is right), and the dataset hands each item its own identity's samples."""
    torch.manual_seed(0)
    samples = occupancy_samples(bank, BOX, OccupancySamplesConfig(points=2048, noise=0.01), progress=False)
    data = WorldViewDataset(bank, num_targets=1, random_views=False, occupancy=samples, occupancy_per_item=2048)
    batch = torch.utils.data.default_collate([data[i] for i in range(3)])
    assert batch["occupancy_points"].shape == (3, 2048, 3) and batch["occupancy_sdf"].shape == (3, 2048)
    prior = load_prior(shipped_path("prior_mini"))
    cell = BOX / 64

    def separation():
        with torch.no_grad():
            opacity = cell_opacity(prior.renderer, prior(batch["input_image"]), batch["occupancy_points"], cell).squeeze(-1)
        sdf = batch["occupancy_sdf"]
        return float(opacity[sdf < -cell].mean() - opacity[sdf > cell].mean())

    before = separation()
    optimizer = torch.optim.Adam(prior.parameters(), lr=3e-4)
    for _ in range(6):
        optimizer.zero_grad()
        occupancy_loss(prior.renderer, prior(batch["input_image"]), batch["occupancy_points"], batch["occupancy_sdf"]).backward()
        optimizer.step()
    assert separation() > before + 0.03, (separation(), before)


def test_the_system_reports_the_term_and_needs_the_samples(bank):
    samples = occupancy_samples(bank, BOX, OccupancySamplesConfig(points=256), progress=False)
    loss_cfg = ReconstructionLossConfig(image=ImageLossConfig(perceptual="none"), occupancy=0.5)
    system = PriorSystem(load_prior(shipped_path("prior_mini")), PriorSystemConfig(loss=loss_cfg))
    with_samples = WorldViewDataset(bank, num_targets=1, random_views=False, occupancy=samples, occupancy_per_item=128)
    terms = system.compute_losses(torch.utils.data.default_collate([with_samples[i] for i in range(2)]))[0]
    assert 0 < float(terms["occupancy"].detach()) < 5
    plain = WorldViewDataset(bank, num_targets=1, random_views=False)
    with pytest.raises(ValueError, match="occupancy.points"):
        system.compute_losses(torch.utils.data.default_collate([plain[i] for i in range(2)]))


def test_fit_prior_refuses_the_term_without_samples(tmp_path):
    from pe3d.recipes.prior import build_prior_model, build_world_loaders, load_prior_fit_config

    cfg = load_prior_fit_config(None, ["system.loss.occupancy=1.0", "data.count=2", "data.views=2", "data.resolution=16",
                                       f"out={tmp_path}"])
    with pytest.raises(ConfigError, match="occupancy.points"):
        build_world_loaders(cfg, build_prior_model(cfg))
