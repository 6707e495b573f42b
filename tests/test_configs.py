"""Every shipped YAML loads into its typed schema; the paper-scale editor builds and runs a forward."""

from pathlib import Path

import pytest
import torch

from pe3d.config import ConfigError, configs_dir, load_structured
from pe3d.models.editor import EditorCore, Prompts, editor_config_from_yaml
from pe3d.recipes.editing import DistillFitConfig
from pe3d.recipes.prior import PriorFitConfig
from pe3d.styles.discovery import discover_styles, load_named_style

SCHEMAS = {"prior": PriorFitConfig, "distill": DistillFitConfig}


@pytest.mark.parametrize("path", sorted(p for k in SCHEMAS for p in (configs_dir() / k).glob("*.yaml")), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_recipe_yamls_load(path: Path):
    cfg = load_structured(SCHEMAS[path.parent.name], [path])
    assert cfg.trainer.max_steps > 0


@pytest.mark.parametrize("path", sorted((configs_dir() / "model").glob("*.yaml")), ids=lambda p: p.name)
def test_model_yamls_give_consistent_editor_configs(path: Path):
    cfg = editor_config_from_yaml(path)
    encoders = [e for e in (cfg.prompt_encoder.text, cfg.prompt_encoder.image) if e is not None]  # threedpe: images only
    assert encoders and all(e.out_dim == cfg.cross_attention.prompt_dim for e in encoders)
    eg3d = cfg.prior.eg3d_renderer  # set when the prior renders with EG3D's renderer (threedpe.yaml)
    channels = eg3d.triplane_channels if eg3d is not None else cfg.prior.renderer.decoder.in_channels
    assert channels == cfg.prior.encoder.triplane_channels


SHIPPED_STYLES = ["anime_eyes", "blue_hair", "bronze_statue", "golden_statue", "marble_statue", "pencil_sketch", "pop_art", "zombie"]


def test_every_shipped_style_loads_with_the_paper_prompt_split():
    assert set(SHIPPED_STYLES) <= set(discover_styles())
    for name in SHIPPED_STYLES:
        spec = load_named_style(name)
        assert len(spec.prompts.train) == 8 and len(spec.prompts.test) == 5


def test_override_with_wrong_type_names_the_key():
    with pytest.raises(ConfigError, match=r"trainer\.max_steps"):
        load_structured(PriorFitConfig, [], ["trainer.max_steps=many"])


@pytest.mark.slow
def test_paper_scale_editor_forward_and_render():
    """512^2 input -> 256^2 x 96-channel triplane -> 128^2 neural render -> 512^2 super-resolved image."""
    torch.manual_seed(0)
    cfg = editor_config_from_yaml(configs_dir() / "model" / "paper.yaml")
    editor = EditorCore(cfg).eval()
    from pe3d.geometry import label_from_yaw_pitch

    with torch.no_grad():
        planes = editor(torch.rand(1, 3, 512, 512), Prompts(texts=["turn the person into a bronze statue"]))
        assert planes.shape == (1, 3, 32, 256, 256)
        out = editor.render(planes, label_from_yaw_pitch([0.3], [0.0]))
    assert out.image.shape == (1, 3, 128, 128) and out.image_sr.shape == (1, 3, 512, 512)
    assert torch.isfinite(out.image_sr).all() and torch.isfinite(out.depth).all()
