"""What the GPU stage of the prior (tools/gpu_prior_runs.py) relies on: world banks rendered in several
processes equal those rendered in one, the trainer's float32 matrix-product precision is a checked
setting, and the tool's runs are valid ``pe3d fit prior`` configurations that build and step."""

import importlib.util
from pathlib import Path

import pytest
import torch

from pe3d.config import ConfigError
from pe3d.data.world_views import WorldViewsConfig, render_bank
from pe3d.systems.runner import TrainerConfig, build_trainer

ROOT = Path(__file__).resolve().parents[1]


def _tool():
    spec = importlib.util.spec_from_file_location("gpu_prior_runs", ROOT / "tools" / "gpu_prior_runs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bank_rendered_by_worker_processes_equals_one_process():
    cfg = WorldViewsConfig(split="train", count=5, views=2, resolution=32, supersample=1)
    one = render_bank(cfg, progress=False)
    many = render_bank(cfg, progress=False, workers=2)
    assert set(one) == set(many)
    for key in one:
        assert torch.equal(one[key], many[key]), key
    assert many["index"].tolist() == one["index"].tolist() and len(one["index"]) == 5


def test_matmul_precision_is_applied_and_checked(tmp_path):
    before = torch.get_float32_matmul_precision()
    try:
        build_trainer(TrainerConfig(matmul_precision="high", logger="none", progress=False), tmp_path)
        assert torch.get_float32_matmul_precision() == "high"
        build_trainer(TrainerConfig(logger="none", progress=False), tmp_path)  # the default leaves it alone
        assert torch.get_float32_matmul_precision() == "high"
        with pytest.raises(ConfigError, match="trainer.matmul_precision.*'fast'"):
            build_trainer(TrainerConfig(matmul_precision="fast", logger="none"), tmp_path)
    finally:
        torch.set_float32_matmul_precision(before)


@pytest.mark.parametrize("name", ["wide", "vit"])
def test_gpu_runs_from_scratch_build_and_take_a_step(name):
    """Each from-scratch design of the tool is a valid config whose model renders the mini triplane shape."""
    from pe3d.recipes.prior import build_prior_model, load_prior_fit_config

    tool = _tool()
    cfg = load_prior_fit_config(None, tool.run_overrides(name, smoke=True))
    assert cfg.batch_size == 2 and cfg.system.ray_stride == 4 and cfg.recolour_probability == 0.5
    model = build_prior_model(cfg)
    planes = model.encoder(torch.rand(1, 3, 64, 64))
    assert planes.shape == (1, 3, 16, 64, 64)
    planes.mean().backward()
    assert all(p.grad is not None for p in model.encoder.parameters() if p.requires_grad)


def test_gpu_runs_reject_unknown_names(tmp_path, monkeypatch, capsys):
    tool = _tool()
    monkeypatch.setattr("sys.argv", ["gpu_prior_runs.py", "--out", str(tmp_path), "--minutes", "1", "--runs", "wide,nope"])
    with pytest.raises(SystemExit, match="unknown \\['nope'\\]"):
        tool.main()
