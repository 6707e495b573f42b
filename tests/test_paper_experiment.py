"""configs/experiment/paper.yaml loads and builds at paper scale: config, 20 InstructPix2Pix styles, the
paper model inside a DistillSystem, and the trainer settings. Nothing is generated or trained."""

from __future__ import annotations

import dataclasses
import warnings

import pytest
import torch

from pe3d.config import ConfigError, configs_dir, load_fit_config
from pe3d.models.editor import editor_config_from_yaml
from pe3d.models.prior import PriorModel
from pe3d.recipes.editing import DistillFitConfig, build_distill_system, per_device_batch_size, style_search_dirs
from pe3d.recipes.prior import model_yaml_path
from pe3d.styles import build_generator, check_prompt_counts, discover_styles, load_named_style, parse_params
from pe3d.styles.ip2p import InstructPix2PixGenerator
from pe3d.systems.runner import build_trainer

PAPER = configs_dir() / "experiment" / "paper.yaml"


@pytest.fixture(scope="module")
def cfg() -> DistillFitConfig:
    return load_fit_config(DistillFitConfig, PAPER, [])


def test_the_paper_numbers(cfg):
    assert cfg.system.optim.lr == 5e-5
    assert cfg.global_batch_size == 32 and per_device_batch_size(32, 8) == 4
    assert cfg.trainer.max_steps == 60_000
    assert (cfg.trainer.accelerator, cfg.trainer.devices, cfg.trainer.strategy, cfg.trainer.precision) == ("gpu", 8, "ddp", "bf16-mixed")
    assert len(cfg.styles) == len(set(cfg.styles)) == 20 and cfg.pairs_per_style == 1000
    loss = cfg.system.loss  # Eq. 7: lambda 1 / 1; l_I = L2 + 2 LPIPS
    assert (loss.lambda_2d, loss.lambda_3d, loss.image_3d.l2, loss.image_3d.perceptual, loss.image_3d.perceptual_weight) == (1.0, 1.0, 1.0, "lpips", 2.0)
    with pytest.raises(ValueError, match="global_batch_size=32"):
        per_device_batch_size(32, 6)


def test_twenty_instruct_pix2pix_styles_with_8_train_and_5_test_prompts(cfg, monkeypatch):
    monkeypatch.delenv("PE3D_STYLE_PATH", raising=False)
    dirs = style_search_dirs(cfg.style_dirs)
    specs = [load_named_style(name, dirs, overrides=cfg.style_overrides) for name in [*cfg.styles, "paper_golden_statue"]]
    offsets = []
    for spec in specs:
        assert spec.generator == "instruct-pix2pix" and spec.pairs.resolution == 512 and spec.pairs.count == 1000
        assert len(spec.prompts.train) == 8 and len(spec.prompts.test) == 5
        assert check_prompt_counts(spec) == []  # 8 / 5 and no prompt in both lists
        params = parse_params(spec)
        assert isinstance(params, InstructPix2PixGenerator.Params) and params.model == "timbrooks/instruct-pix2pix"
        assert params.instruction == "{caption}" and params.source == "folder"
        offsets.append(spec.pairs.identity_offset)
    assert all(b - a >= 1000 for a, b in zip(sorted(offsets), sorted(offsets)[1:]))  # disjoint FFHQ images per style
    assert "paper_golden_statue" not in cfg.styles  # the adaptation style stays novel (paper Tab. 2)
    assert not set(cfg.styles) & set(discover_styles(entry_points=False))  # not built-in styles: found through style_dirs
    # generation needs the FFHQ folder, given at run time
    with pytest.raises(ConfigError, match=r"key 'params.dir': a folder of input portraits"):
        build_generator(specs[0])


def test_paper_model_system_and_trainer_build(cfg, tmp_path):
    model_cfg = editor_config_from_yaml(model_yaml_path(cfg.model), cfg.model_overrides)
    assert (model_cfg.prompt_encoder.text.pretrained, model_cfg.prompt_encoder.image.pretrained) == ("openai", "mae")
    # CLIP / MAE / AlexNet weights are not on the test machine: build with random prompt backbones and an
    # AlexNet file of the torchvision format (features only, which is what LPIPS reads).
    import torchvision

    alexnet = tmp_path / "alexnet-owt-7be5be79.pth"
    torch.save({f"features.{k}": v for k, v in torchvision.models.AlexNet().features.state_dict().items()}, alexnet)
    build_cfg = load_fit_config(DistillFitConfig, PAPER, ["model_overrides=[]", f"system.loss.image_3d.lpips_weights={alexnet}"])
    with torch.device("meta"), warnings.catch_warnings():  # shapes and parameter groups, without 300M random inits
        warnings.filterwarnings("ignore", message=".*copying from a non-meta parameter")  # loading into meta: no-op
        prior = PriorModel(model_cfg.prior)
        system = build_distill_system(build_cfg, prior)
    editor = system.editor
    encoder = editor.cfg.prior.encoder
    assert (encoder.image_size, encoder.triplane_resolution, 3 * encoder.triplane_channels) == (512, 256, 96)
    trainable = {name for name, p in system.named_parameters() if p.requires_grad}
    allowed = ("editor.text_encoder.", "editor.image_encoder.", "editor.cross_attention.", "editor.encoder.decoder.")
    assert trainable and all(name.startswith(allowed) for name in trainable)
    assert any(n.startswith("editor.encoder.decoder.") for n in trainable) and any(n.startswith("editor.text_encoder.") for n in trainable)
    assert system.objective is not None and sum(p.numel() for p in editor.parameters()) > 200e6

    trainer = build_trainer(dataclasses.replace(cfg.trainer, accelerator="cpu"), tmp_path / "run")  # no GPU here
    assert trainer.num_devices * trainer.num_nodes == 8 and trainer.max_steps == 60_000
    assert trainer.precision_plugin.precision == "bf16-mixed" and type(trainer.strategy).__name__ == "DDPStrategy"
    assert per_device_batch_size(cfg.global_batch_size, trainer.num_devices * trainer.num_nodes) == 4
