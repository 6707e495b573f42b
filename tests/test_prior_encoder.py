"""Prior encoder (E_low, E_high, E_t) and prompt cross-attention: shapes, determinism, gradients, configs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from pe3d.models import (
    PriorEncoder,
    PriorEncoderConfig,
    PromptCrossAttention,
    PromptCrossAttentionConfig,
)
from pe3d.config import ConfigError, load_structured
from pe3d.models.editor import editor_config_from_yaml


def load_model_yaml(path):
    cfg = editor_config_from_yaml(path)
    return {"encoder": cfg.prior.encoder, "cross_attention": cfg.cross_attention}

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs" / "model"


@pytest.fixture(scope="module")
def mini_cfgs() -> dict:
    return load_model_yaml(CONFIG_DIR / "mini.yaml")


def build_mini(mini_cfgs: dict, seed: int = 0) -> PriorEncoder:
    torch.manual_seed(seed)
    return PriorEncoder(mini_cfgs["encoder"])


def images(cfg: PriorEncoderConfig, batch: int = 2, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(batch, 3, cfg.image_size, cfg.image_size, generator=g)


# --- prior encoder -------------------------------------------------------------------

def test_mini_shapes(mini_cfgs: dict) -> None:
    cfg = mini_cfgs["encoder"]
    model = build_mini(mini_cfgs)
    x = images(cfg)
    f_h, f_g = model.encode_high(x), model.encode_low(x)
    s = cfg.fusion_resolution
    assert f_h.shape == (2, model.high_feature_channels, s, s)
    assert f_g.shape == (2, model.low_feature_channels, s, s)
    assert model.feature_resolution == s
    planes = model(x)
    r = cfg.triplane_resolution
    assert planes.shape == (2, 3, cfg.triplane_channels, r, r)
    assert torch.isfinite(planes).all()
    assert torch.equal(model.decode(f_h, f_g, x), planes)


def test_mini_determinism(mini_cfgs: dict) -> None:
    a, b = build_mini(mini_cfgs, seed=3), build_mini(mini_cfgs, seed=3)
    for (na, pa), (nb, pb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert na == nb and torch.equal(pa, pb), na
    x = images(mini_cfgs["encoder"])
    out = a(x)
    assert torch.equal(out, b(x))
    assert torch.equal(out, a(x))
    c = build_mini(mini_cfgs, seed=4)
    assert not torch.equal(out, c(x))


def test_mini_save_load_roundtrip(mini_cfgs: dict, tmp_path: Path) -> None:
    a, b = build_mini(mini_cfgs, seed=0), build_mini(mini_cfgs, seed=1)
    torch.save(a.state_dict(), tmp_path / "enc.pt")
    b.load_state_dict(torch.load(tmp_path / "enc.pt", weights_only=True), strict=True)
    x = images(mini_cfgs["encoder"])
    assert torch.equal(a(x), b(x))


def test_mini_gradients_flow(mini_cfgs: dict) -> None:
    model = build_mini(mini_cfgs)
    x = images(mini_cfgs["encoder"]).requires_grad_(True)
    model(x).square().mean().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, f"no gradient for {name}"
        assert torch.isfinite(p.grad).all(), name
    for part in (model.low, model.high, model.decoder):
        assert any(p.grad.abs().sum() > 0 for p in part.parameters())
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_norm_parameters_are_inside_e_t(mini_cfgs: dict) -> None:
    model = build_mini(mini_cfgs)
    norm = list(model.norm_parameters())
    assert norm, "E_t must hold normalization parameters"
    e_t = {id(p) for p in model.decoder.parameters()}
    assert all(id(p) in e_t for p in norm)
    outside = {id(p) for p in model.low.parameters()} | {id(p) for p in model.high.parameters()}
    assert not any(id(p) in outside for p in norm)
    norm_modules = [m for m in model.decoder.modules() if isinstance(m, (torch.nn.LayerNorm, torch.nn.GroupNorm))]
    assert any(isinstance(m, torch.nn.LayerNorm) for m in norm_modules)
    assert len(norm) == 2 * len(norm_modules)  # weight and bias each
    assert sum(p.numel() for p in norm) < 0.05 * sum(p.numel() for p in model.decoder.parameters())


def test_input_size_is_checked(mini_cfgs: dict) -> None:
    model = build_mini(mini_cfgs)
    s = mini_cfgs["encoder"].image_size
    with pytest.raises(ValueError, match=rf"expected an image of shape \[B, 3, {s}, {s}\], got \[1, 3, 48, 48\]"):
        model(torch.rand(1, 3, 48, 48))
    with pytest.raises(ValueError, match="got"):
        model(torch.rand(1, 4, s, s))
    with pytest.raises(TypeError, match="float"):
        model(torch.zeros(1, 3, s, s, dtype=torch.uint8))


def test_config_errors_name_the_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"encoder\.low_vit_dimm"):
        load_structured(PriorEncoderConfig, [{"encoder": {"low_vit_dimm": 3}}], select="encoder")
    with pytest.raises(ValueError, match="t_vit_heads"):
        load_structured(PriorEncoderConfig, [{"t_vit_heads": 3}])
    with pytest.raises(ValueError, match="high_widths"):
        PriorEncoderConfig(high_widths=[8, 8])
    bad = tmp_path / "bad.yaml"
    bad.write_text("encoder: {}\nrenderr: {}\n")
    with pytest.raises(ConfigError, match="renderr"):
        load_model_yaml(bad)


@pytest.mark.parametrize("path", sorted(CONFIG_DIR.glob("*.yaml")), ids=lambda p: p.name)
def test_model_yamls_load_and_build(path: Path) -> None:
    cfgs = load_model_yaml(path)
    enc = PriorEncoder(cfgs["encoder"])
    xattn = PromptCrossAttention(cfgs["cross_attention"])
    assert cfgs["cross_attention"].feature_channels == enc.high_feature_channels
    assert enc.feature_resolution % cfgs["cross_attention"].stride == 0
    assert isinstance(xattn, torch.nn.Module)


def test_paper_scale_forward() -> None:
    """Paper module sizes at the paper input size, 512^2 -> [1, 3, 32, 256, 256] (about 5 s on 2 cores)."""
    cfgs = load_model_yaml(CONFIG_DIR / "paper.yaml")
    cfg = cfgs["encoder"]
    assert (cfg.image_size, cfg.triplane_resolution, cfg.triplane_channels) == (512, 256, 32)
    torch.manual_seed(0)
    model = PriorEncoder(cfg).eval()
    xattn = PromptCrossAttention(cfgs["cross_attention"]).eval()
    n_params = sum(p.numel() for p in model.parameters())
    assert 50e6 < n_params < 80e6
    x = images(cfg, batch=1)
    with torch.no_grad():
        f_h, f_g = model.encode_high(x), model.encode_low(x)
        assert f_h.shape == (1, 128, 128, 128) and f_g.shape == (1, 128, 128, 128)
        f_a = xattn(f_h, torch.randn(1, 197, 768))
        assert torch.equal(f_a, f_h)
        planes = model.decode(f_a, f_g)
    assert planes.shape == (1, 3, 32, 256, 256)
    assert torch.isfinite(planes).all()


# --- prompt cross-attention --------------------------------------------------------------

def mini_xattn(mini_cfgs: dict, seed: int = 0) -> PromptCrossAttention:
    torch.manual_seed(seed)
    return PromptCrossAttention(mini_cfgs["cross_attention"])


def xattn_inputs(cfg: PromptCrossAttentionConfig, batch: int = 2, size: int = 32, length: int = 5):
    g = torch.Generator().manual_seed(7)
    f_high = torch.randn(batch, cfg.feature_channels, size, size, generator=g)
    prompt = torch.randn(batch, length, cfg.prompt_dim, generator=g)
    return f_high, prompt


def perturb_output(block: PromptCrossAttention) -> None:
    with torch.no_grad():
        block.out_proj.weight.normal_(0.0, 0.1)
        block.out_proj.bias.normal_(0.0, 0.1)


@pytest.mark.parametrize("upsample", ["pixel_shuffle", "bilinear"])
def test_cross_attention_zero_init_is_identity(mini_cfgs: dict, upsample: str) -> None:
    cfg = PromptCrossAttentionConfig(**{**vars(mini_cfgs["cross_attention"]), "upsample": upsample})
    block = PromptCrossAttention(cfg)
    f_high, prompt = xattn_inputs(cfg)
    mask = torch.tensor([[True, True, False, True, False], [False] * 5])
    assert torch.equal(block(f_high, prompt), f_high)
    assert torch.equal(block(f_high, prompt, mask), f_high)


def test_cross_attention_gradient_reaches_output_projection(mini_cfgs: dict) -> None:
    block = mini_xattn(mini_cfgs)
    f_high, prompt = xattn_inputs(block.config)
    out = block(f_high, prompt)
    (out * torch.randn_like(out)).sum().backward()
    assert block.out_proj.weight.grad is not None and block.out_proj.weight.grad.abs().sum() > 0
    assert block.out_proj.bias.grad.abs().sum() > 0
    with torch.no_grad():
        for p in block.parameters():
            p -= 0.1 * p.grad
    assert not torch.equal(block(f_high, prompt), f_high)


def test_cross_attention_mask(mini_cfgs: dict) -> None:
    block = mini_xattn(mini_cfgs)
    perturb_output(block)
    f_high, prompt = xattn_inputs(block.config)
    mask = torch.tensor([[True, True, False, True, False], [True, False, False, False, False]])
    out = block(f_high, prompt, mask)
    assert out.shape == f_high.shape
    changed = prompt.clone()
    changed[~mask] = 100.0  # padding tokens must not matter
    assert torch.allclose(block(f_high, changed, mask), out, atol=1e-6)
    assert not torch.allclose(block(f_high, changed), out, atol=1e-3)
    full = torch.ones(2, 5, dtype=torch.bool)
    assert torch.allclose(block(f_high, prompt, full), block(f_high, prompt), atol=1e-6)
    empty = torch.tensor([[False] * 5, [True] * 5])
    out_empty = block(f_high, prompt, empty)
    assert torch.equal(out_empty[0], f_high[0])  # no prompt tokens: no edit
    assert torch.isfinite(out_empty).all() and not torch.equal(out_empty[1], f_high[1])


def test_cross_attention_shape_errors(mini_cfgs: dict) -> None:
    block = mini_xattn(mini_cfgs)
    cfg = block.config
    f_high, prompt = xattn_inputs(cfg)
    with pytest.raises(ValueError, match=rf"f_high \[B, {cfg.feature_channels}, H, W\]"):
        block(f_high[:, :-1], prompt)
    with pytest.raises(ValueError, match=rf"prompt_tokens \[2, L, {cfg.prompt_dim}\]"):
        block(f_high, prompt[..., :-1])
    with pytest.raises(ValueError, match="prompt_tokens"):
        block(f_high, prompt[:1])
    with pytest.raises(ValueError, match="bool prompt_mask"):
        block(f_high, prompt, torch.ones(2, 5))
    with pytest.raises(ValueError, match="bool prompt_mask"):
        block(f_high, prompt, torch.ones(2, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="divisible by stride"):
        block(f_high[..., :31, :31], prompt)


def test_cross_attention_in_the_encoder(mini_cfgs: dict) -> None:
    """encode_high -> cross-attention -> decode equals the plain prior while the block is untrained."""
    model, block = build_mini(mini_cfgs), mini_xattn(mini_cfgs)
    x = images(mini_cfgs["encoder"])
    prompt = torch.randn(2, 7, block.config.prompt_dim)
    f_a = block(model.encode_high(x), prompt)
    assert torch.equal(model.decode(f_a, model.encode_low(x), x), model(x))
