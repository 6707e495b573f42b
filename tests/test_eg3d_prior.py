"""Prior training from an EG3D teacher (Live3D's recipe) with a tiny random EG3D imported through the importer."""

import csv

import pytest
import torch

from eg3d_helpers import write_network_pickle
from pe3d.config import ConfigError, configs_dir, load_structured
from pe3d.data.eg3d_views import EG3DTeacherDataset, TeacherConfig
from pe3d.eg3d import TriPlaneGenerator, load_eg3d_config
from pe3d.eg3d.importer import import_eg3d, load_eg3d
from pe3d.losses import ImageLossConfig, ReconstructionLossConfig
from pe3d.models.prior import PriorModel, load_prior
from pe3d.recipes.prior import PriorFitConfig, build_eg3d_loaders, build_prior_model, fit_prior
from pe3d.systems.prior import PriorSystem, PriorSystemConfig

FAST_STUDENT = ["renderer.ray_march.depth_resolution=8", "renderer.ray_march.depth_resolution_importance=8"]


@pytest.fixture(scope="module")
def teacher_file(tmp_path_factory):
    """A tiny random EG3D, written as an NVlabs network pickle and imported with ``import_eg3d``."""
    folder = tmp_path_factory.mktemp("teacher")
    torch.manual_seed(0)
    # triplanes of the student's shape (3 x 16 x 32^2), so the triplane loss applies
    overrides = ["rendering.depth_resolution=8", "rendering.depth_resolution_importance=8"]
    generator = TriPlaneGenerator(load_eg3d_config("tiny", overrides))
    with torch.no_grad():
        generator.decoder.net[2].bias[0] = 2.0  # denser than at random init, so the views have foreground
    return import_eg3d(write_network_pickle(generator, folder / "tiny.pkl"), folder / "tiny.safetensors")


def _config(teacher_file, *extra: str, model: tuple[str, ...] = ()) -> PriorFitConfig:
    recipe = load_structured(PriorFitConfig, [configs_dir() / "prior" / "eg3d_tiny.yaml"]).model_overrides
    model_overrides = "[" + ",".join([*recipe, *FAST_STUDENT, *model]) + "]"
    return load_structured(PriorFitConfig, [configs_dir() / "prior" / "eg3d_tiny.yaml"],
                           [f"teacher.checkpoint={teacher_file}", f"model_overrides={model_overrides}", "batch_size=2", *extra])


def test_teacher_batches_match_what_the_prior_system_consumes(teacher_file):
    cfg = TeacherConfig(kind="eg3d", checkpoint=str(teacher_file))
    data = EG3DTeacherDataset(load_eg3d(teacher_file), cfg, batch_size=2, num_targets=3, target_resolution=8,
                              input_resolution=32, length=4, seed=5, include_planes=True)
    batch = data[1]
    shapes = {k: tuple(v.shape) for k, v in batch.items()}
    assert shapes == {
        "input_image": (2, 3, 32, 32), "input_label": (2, 25), "target_label": (2, 3, 25), "target_image": (2, 3, 3, 8, 8),
        "target_depth": (2, 3, 1, 8, 8), "target_mask": (2, 3, 1, 8, 8), "teacher_planes": (2, 3, 16, 32, 32),
    }
    assert torch.equal(batch["target_label"][:, 0], batch["input_label"])
    assert 0 <= batch["input_image"].min() and batch["input_image"].max() <= 1 and batch["target_mask"].mean() > 0.5
    z, cond, labels = data.sample_inputs(1)
    z2, _, labels2 = data.sample_inputs(1)
    assert torch.equal(z, z2) and torch.equal(labels, labels2) and not torch.equal(z, data.sample_inputs(2)[0])
    assert torch.equal(batch["target_label"], labels)


def test_student_starts_from_the_teacher_decoder_and_gets_triplane_targets(teacher_file):
    cfg = _config(teacher_file)
    model = build_prior_model(cfg)
    train, _ = build_eg3d_loaders(cfg, model)
    teacher = load_eg3d(teacher_file)
    assert torch.allclose(model.renderer.decoder.net[0].weight, teacher.decoder.net[0].effective_weight())
    assert "teacher_planes" in train.dataset[0]


def test_a_triplane_or_decoder_that_cannot_follow_the_teacher_is_an_error_unless_allowed(teacher_file, caplog):
    shapes = ("encoder.triplane_channels=8", "renderer.decoder.in_channels=8")  # 3 x 8 x 32^2, not the teacher's 3 x 16 x 32^2
    other = _config(teacher_file, model=shapes)
    with pytest.raises(ConfigError, match=r"teacher\.triplane_loss=auto"):
        build_eg3d_loaders(other, build_prior_model(other))
    other = _config(teacher_file, "teacher.triplane_loss=auto", model=shapes)
    with pytest.raises(ConfigError, match=r"teacher\.init_decoder=false"):
        build_eg3d_loaders(other, build_prior_model(other))
    other = _config(teacher_file, "teacher.triplane_loss=auto", "teacher.init_decoder=false", model=shapes)
    student = build_prior_model(other)
    before = student.renderer.decoder.net[0].weight.detach().clone()
    with caplog.at_level("WARNING", logger="pe3d.recipes.prior"):
        loader = build_eg3d_loaders(other, student)[0]
    assert "teacher_planes" not in loader.dataset[0]
    assert torch.equal(student.renderer.decoder.net[0].weight, before)
    assert any("without the triplane loss" in record.getMessage() for record in caplog.records)


def test_prior_loss_falls_with_an_eg3d_teacher(teacher_file):
    torch.manual_seed(0)
    cfg = _config(teacher_file)
    model = build_prior_model(cfg)
    batch = build_eg3d_loaders(cfg, model)[0].dataset[0]
    system = PriorSystem(model, PriorSystemConfig(loss=ReconstructionLossConfig(image=ImageLossConfig(perceptual="none"))))
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses, triplane = [], []
    for _ in range(10):
        optimizer.zero_grad()
        terms = system.compute_losses(batch)[0]
        terms["loss"].backward()
        optimizer.step()
        losses.append(terms["loss"].item())
        triplane.append(terms["triplane"].item())
    assert all(torch.isfinite(torch.tensor(losses)))
    assert losses[-1] < 0.8 * losses[0] and triplane[-1] < triplane[0], (losses, triplane)


def test_fit_prior_from_an_eg3d_teacher_through_the_recipe(teacher_file, tmp_path):
    cfg = _config(teacher_file, f"out={tmp_path}", "trainer.max_steps=3", "trainer.logger=csv", "trainer.progress=false",
                  "trainer.log_every_n_steps=1", "teacher.device=cpu")
    weights = fit_prior(cfg)
    with open(tmp_path / "logs" / "metrics.csv") as handle:
        rows = [row for row in csv.DictReader(handle) if row.get("train/triplane")]
    assert len(rows) == 3 and all(float(r["train/loss"]) >= 0 and float(r["train/triplane"]) > 0 for r in rows)
    model = load_prior(weights)
    assert isinstance(model, PriorModel) and model.cfg.renderer.ray_march.background is None
    with torch.no_grad():
        assert model(torch.rand(1, 3, 64, 64)).shape == (1, 3, 16, 32, 32)
