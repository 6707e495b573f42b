"""Tests of the prompt encoders ``E_p`` (pe3d.models.prompt_encoders): tiny towers on CPU, weight
loading from local files in the formats that open_clip / timm / MAE distribute, and paper-scale shapes."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before open_clip/timm import huggingface_hub

import time
import warnings
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from pe3d.models.prompt_encoders import (
    ClipTextPromptEncoder,
    PromptEncoderConfig,
    PromptTokens,
    StateDictMismatchError,
    TimmImagePromptEncoder,
    TokenMapper,
    build_prompt_encoder,
)

TINY_TEXT = dict(width=64, layers=2, heads=2, context_length=32, embed_dim=32)
TINY_IMAGE = dict(img_size=64, patch_size=16, embed_dim=64, depth=2, num_heads=2)
N_IMAGE_TOKENS = 1 + (64 // 16) ** 2


def text_cfg(**kw) -> PromptEncoderConfig:
    base = dict(kind="text", arch="ViT-B-32", tiny=dict(TINY_TEXT), out_dim=48, max_length=32)
    base.update(kw)
    return PromptEncoderConfig(**base)


def image_cfg(**kw) -> PromptEncoderConfig:
    base = dict(kind="image", arch="vit_base_patch16_224.mae", tiny=dict(TINY_IMAGE), out_dim=48)
    base.update(kw)
    return PromptEncoderConfig(**base)


def build(cfg: PromptEncoderConfig, seed: int = 0):
    torch.manual_seed(seed)
    return build_prompt_encoder(cfg).eval()


@pytest.fixture(scope="module")
def text_enc() -> ClipTextPromptEncoder:
    return build(text_cfg())


@pytest.fixture(scope="module")
def image_enc() -> TimmImagePromptEncoder:
    return build(image_cfg())


# ---------------------------------------------------------------------------------------------
# shapes, determinism, input errors


def test_text_shapes_and_mask(text_enc):
    prompts = ["bronze statue", "a pixar style portrait of a person", "x"]
    with torch.no_grad():
        out = text_enc.encode(prompts)
    assert isinstance(out, PromptTokens)
    assert out.tokens.shape == (3, 32, 48) and out.tokens.dtype == torch.float32
    assert out.mask.shape == (3, 32) and out.mask.dtype == torch.bool
    tok = text_enc.tokenizer
    lengths = [len(tok.encode(p)) + 2 for p in prompts]
    assert out.mask.sum(1).tolist() == lengths
    # mask is a prefix: valid tokens first
    for row, n in zip(out.mask, lengths):
        assert row[:n].all() and not row[n:].any()
    assert torch.isfinite(out.tokens).all()
    assert text_enc.out_dim == 48 and text_enc.backbone_dim == 64


def test_text_determinism_and_batch_independence(text_enc):
    with torch.no_grad():
        a = text_enc.encode(["bronze statue", "bronze statue", "golden statue"]).tokens
        single = text_enc.encode("bronze statue").tokens
    assert torch.equal(a[0], a[1])
    assert not torch.allclose(a[0], a[2])
    torch.testing.assert_close(single[0], a[0], rtol=1e-5, atol=1e-5)


def test_text_truncation_warns(text_enc):
    long_prompt = " ".join(["word"] * 50)
    with pytest.warns(UserWarning, match=r"52 tokens .*max_length=32"):
        with torch.no_grad():
            out = text_enc.encode([long_prompt, "short"])
    assert out.mask[0].all()
    with pytest.warns(UserWarning, match="truncated"):
        ids, _ = text_enc.tokenize([long_prompt])
    assert ids[0, -1].item() == text_enc.tokenizer.eot_token_id
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        text_enc.tokenize(["short prompt"])  # no warning


@pytest.mark.parametrize("bad", [[""], ["ok", "   "], []])
def test_text_empty_prompt_raises(text_enc, bad):
    with pytest.raises(ValueError, match="empty"):
        text_enc.encode(bad)


def test_text_non_str_prompt_raises(text_enc):
    with pytest.raises(TypeError, match="prompt 1"):
        text_enc.encode(["ok", 3])


def test_text_matches_open_clip_encode_text(text_enc):
    """Our manual forward (sliced causal mask, all tokens) reproduces open_clip's pooled embedding."""
    import open_clip
    from open_clip.model import CLIP, CLIPTextCfg, CLIPVisionCfg

    prompts = ["bronze statue", "a watercolor painting of a face"]
    clip = CLIP(32, CLIPVisionCfg(layers=1, width=32, head_width=16, patch_size=16, image_size=32),
                CLIPTextCfg(**{k: v for k, v in TINY_TEXT.items() if k != "embed_dim"})).eval()
    text_enc.backbone.load_state_dict(
        {k: v for k, v in clip.state_dict().items() if not k.startswith(("visual.", "logit_"))}
    )
    ids = open_clip.get_tokenizer("ViT-B-32")(prompts, context_length=32)
    with torch.no_grad():
        ref = clip.encode_text(ids)
        feats, mask = text_enc._encode_backbone(prompts)
        ours = text_enc.pooled_projection(feats, mask)
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5)


def test_image_shapes_resize_and_determinism(image_enc):
    x = torch.rand(2, 3, 40, 56)
    with torch.no_grad():
        out = image_enc.encode(x)
        again = image_enc.encode(x)
        other = image_enc.encode(torch.rand(2, 3, 40, 56))
    assert out.tokens.shape == (2, N_IMAGE_TOKENS, 48)
    assert out.mask.shape == (2, N_IMAGE_TOKENS) and out.mask.all()
    assert torch.equal(out.tokens, again.tokens)
    assert not torch.allclose(out.tokens, other.tokens)
    assert image_enc.img_size == (64, 64)


@pytest.mark.parametrize(
    "x, match",
    [
        (torch.rand(2, 3, 64, 64) * 2 - 1, r"\[0, 1\]"),
        (torch.rand(2, 4, 64, 64), r"\[B, 3, H, W\]"),
        (torch.rand(3, 64, 64), r"\[B, 3, H, W\]"),
        (torch.randint(0, 255, (1, 3, 64, 64), dtype=torch.uint8), "float"),
    ],
)
def test_image_bad_inputs(image_enc, x, match):
    with pytest.raises(ValueError, match=match):
        image_enc.encode(x)


# ---------------------------------------------------------------------------------------------
# train modes


@pytest.mark.parametrize("make", [text_cfg, image_cfg], ids=["text", "image"])
def test_mapper_mode_trains_only_mapper(make):
    enc = build(make(train="mapper"))
    names = [n for n, _ in enc.named_trainable_parameters()]
    assert names and all(n.startswith("mapper.") for n in names)
    assert not any(p.requires_grad for p in enc.backbone.parameters())
    enc.train()
    assert enc.training and enc.mapper.training and not enc.backbone.training
    prompts = ["bronze statue"] if enc.kind == "text" else torch.rand(1, 3, 64, 64)
    enc.encode(prompts).tokens.square().mean().backward()
    for n, p in enc.named_parameters():
        assert (p.grad is not None) == n.startswith("mapper."), n


@pytest.mark.parametrize("make", [text_cfg, image_cfg], ids=["text", "image"])
def test_full_mode_every_trainable_parameter_gets_a_gradient(make):
    enc = build(make(train="full")).train()
    assert enc.backbone.training
    trainable = dict(enc.named_trainable_parameters())
    assert any(n.startswith("backbone.") for n in trainable)
    prompts = ["bronze statue", "pixar"] if enc.kind == "text" else torch.rand(2, 3, 64, 64)
    # the mlp mapper's last layer starts at zero: perturb it so gradients reach the layers before
    torch.nn.init.normal_(enc.mapper.mlp[-1].weight, std=0.02)
    enc.encode(prompts).tokens.square().mean().backward()
    missing = [n for n, p in trainable.items() if p.grad is None]
    assert not missing, missing
    if enc.kind == "text":  # pooled projection is kept for loading but never trained
        assert "backbone.text_projection" not in trainable


def test_mlp_mapper_starts_as_identity():
    m = TokenMapper(16, 16, "mlp")
    x = torch.randn(2, 5, 16)
    assert torch.equal(m(x), x)
    assert TokenMapper(16, 8, "linear")(x).shape == (2, 5, 8)
    with pytest.raises(ValueError, match="width == out_dim"):
        TokenMapper(16, 8, "none")


def test_config_validation():
    with pytest.raises(ValueError, match="kind"):
        PromptEncoderConfig(kind="audio")
    with pytest.raises(ValueError, match="train"):
        PromptEncoderConfig(train="lora")
    with pytest.raises(ValueError, match="mapper='none'"):
        PromptEncoderConfig(train="mapper", mapper="none")
    with pytest.raises(ValueError, match="unknown prompt_encoder key"):
        build_prompt_encoder(dict(kind="text", out_dimm=3))
    with pytest.raises(ValueError, match="tiny key"):
        build_prompt_encoder(text_cfg(tiny=dict(TINY_TEXT, depth=2)))
    with pytest.raises(ValueError, match="max_length"):
        build_prompt_encoder(text_cfg(max_length=64))
    with pytest.raises(ValueError, match="unknown open_clip model"):
        build_prompt_encoder(text_cfg(arch="ViT-Q-99"))
    assert PromptEncoderConfig(kind="image").arch == "vit_base_patch16_224.mae"
    assert PromptEncoderConfig(kind="text").arch == "ViT-L-14"


def test_yaml_snippet_builds():
    """The mini YAML handed to configs/model/*.yaml loads through OmegaConf and builds."""
    from omegaconf import OmegaConf

    yaml = """
    prompt_encoder:
      text: {kind: text, arch: ViT-B-32, pretrained: null, out_dim: 64, train: full, mapper: mlp,
             max_length: 32, tiny: {width: 64, layers: 2, heads: 2, context_length: 32, embed_dim: 64}}
      image: {kind: image, arch: vit_base_patch16_224.mae, pretrained: null, out_dim: 64, train: full,
              mapper: mlp, tiny: {img_size: 64, patch_size: 16, embed_dim: 64, depth: 2, num_heads: 2}}
    """
    conf = OmegaConf.create(yaml).prompt_encoder
    for kind in ("text", "image"):
        typed = OmegaConf.merge(OmegaConf.structured(PromptEncoderConfig), conf[kind])
        enc = build_prompt_encoder(OmegaConf.to_object(typed))
        assert enc.kind == kind and enc.out_dim == 64


# ---------------------------------------------------------------------------------------------
# loading weights from local files


def _save(sd: dict, path: Path, fmt: str, wrap: bool = False) -> Path:
    sd = {k: v.detach().clone().contiguous() for k, v in sd.items()}
    if fmt == "safetensors":
        save_file(sd, str(path))
    else:
        torch.save({"state_dict": {f"module.{k}": v for k, v in sd.items()}} if wrap else sd, str(path))
    return path


def _prompts(kind: str):
    torch.manual_seed(123)
    return ["bronze statue", "a pixar style face"] if kind == "text" else torch.rand(2, 3, 64, 64)


@pytest.mark.parametrize("fmt", ["safetensors", "bin", "pt-wrapped"])
@pytest.mark.parametrize("make", [text_cfg, image_cfg], ids=["text", "image"])
def test_backbone_file_round_trip(tmp_path, make, fmt):
    width = TINY_TEXT["width"] if make is text_cfg else TINY_IMAGE["embed_dim"]
    src = build(make(mapper="none", out_dim=width), seed=0)
    suffix = {"safetensors": ".safetensors", "bin": ".bin", "pt-wrapped": ".pt"}[fmt]
    path = _save(src.backbone.state_dict(), tmp_path / f"w{suffix}", fmt.split("-")[0], wrap=fmt == "pt-wrapped")
    prompts = _prompts(src.kind)
    fresh = build(make(mapper="none", out_dim=width), seed=1)
    loaded = build(make(mapper="none", out_dim=width, pretrained=str(path)), seed=1)
    with torch.no_grad():
        ref, got, other = src.encode(prompts), loaded.encode(prompts), fresh.encode(prompts)
    assert torch.equal(ref.tokens, got.tokens) and torch.equal(ref.mask, got.mask)
    assert not torch.allclose(ref.tokens, other.tokens)


@pytest.mark.parametrize("make", [text_cfg, image_cfg], ids=["text", "image"])
def test_missing_file_names_the_path(tmp_path, make):
    path = tmp_path / "nowhere" / "weights.safetensors"
    with pytest.raises(FileNotFoundError, match="nowhere"):
        build_prompt_encoder(make(pretrained=str(path)))


@pytest.mark.parametrize(
    "make, tag", [(text_cfg, "openai"), (image_cfg, "mae")], ids=["text", "image"]
)
def test_missing_tag_names_every_place_looked(tmp_path, make, tag):
    with pytest.raises(FileNotFoundError) as info:
        build_prompt_encoder(make(pretrained=tag, cache_dir=str(tmp_path)))
    msg = str(info.value)
    assert "never downloads" in msg and str(tmp_path) in msg
    assert msg.count(str(tmp_path)) >= 2  # HF-cache layout and flat file
    with pytest.raises(ValueError, match="tag"):
        build_prompt_encoder(make(pretrained="no_such_tag", cache_dir=str(tmp_path)))
    with pytest.raises(FileNotFoundError, match="someorg/somemodel"):
        build_prompt_encoder(make(pretrained="hf-hub:someorg/somemodel", cache_dir=str(tmp_path)))


def _fake_hf_cache(cache: Path, repo: str, filename: str) -> Path:
    """Create the Hugging Face hub cache layout for ``repo`` and return where ``filename`` goes."""
    root = cache / f"models--{repo.replace('/', '--')}"
    (root / "refs").mkdir(parents=True)
    (root / "refs" / "main").write_text("0" * 40)
    snap = root / "snapshots" / ("0" * 40)
    snap.mkdir(parents=True)
    return snap / filename


def test_image_tag_resolves_from_local_hf_cache(tmp_path):
    src = build(image_cfg(mapper="none", out_dim=64), seed=0)
    target = _fake_hf_cache(tmp_path, "timm/vit_base_patch16_224.mae", "model.safetensors")
    _save(src.backbone.state_dict(), target, "safetensors")
    loaded = build(image_cfg(mapper="none", out_dim=64, pretrained="mae", cache_dir=str(tmp_path)), seed=1)
    x = _prompts("image")
    with torch.no_grad():
        assert torch.equal(src.encode(x).tokens, loaded.encode(x).tokens)


def test_image_loads_official_mae_checkpoint_layout(tmp_path):
    """``{'model': encoder + decoder}`` as in facebookresearch/mae ``mae_visualize_*.pth``."""
    src = build(image_cfg(mapper="none", out_dim=64), seed=0)
    sd = dict(src.backbone.state_dict())
    sd["mask_token"] = torch.zeros(1, 1, 32)
    sd["decoder_embed.weight"] = torch.zeros(32, 64)
    torch.save({"model": sd}, tmp_path / "mae.pth")
    loaded = build(image_cfg(mapper="none", out_dim=64, pretrained=str(tmp_path / "mae.pth")), seed=1)
    x = _prompts("image")
    with torch.no_grad():
        assert torch.equal(src.encode(x).tokens, loaded.encode(x).tokens)


@pytest.mark.parametrize("make", [text_cfg, image_cfg], ids=["text", "image"])
def test_wrong_keys_file_lists_keys(tmp_path, make):
    path = tmp_path / "wrong.safetensors"
    save_file({"foo.weight": torch.zeros(3, 3), "bar": torch.zeros(2)}, str(path))
    with pytest.raises(StateDictMismatchError) as info:
        build_prompt_encoder(make(pretrained=str(path)))
    msg = str(info.value)
    assert str(path) in msg and "foo" in msg and "bar" in msg and "missing keys" in msg
    wanted = "token_embedding.weight" if make is text_cfg else "patch_embed.proj.weight"
    assert wanted in msg and wanted in info.value.missing


def test_text_extra_layer_is_unexpected_and_shape_mismatch_reported(tmp_path):
    deeper = build(text_cfg(tiny=dict(TINY_TEXT, layers=3)))
    _save(deeper.backbone.state_dict(), tmp_path / "deep.bin", "bin")
    with pytest.raises(StateDictMismatchError, match=r"unexpected keys .*transformer\.resblocks\.2\."):
        build_prompt_encoder(text_cfg(pretrained=str(tmp_path / "deep.bin")))
    wider = build(text_cfg(tiny=dict(TINY_TEXT, width=32)))
    _save(wider.backbone.state_dict(), tmp_path / "wide.bin", "bin")
    with pytest.raises(StateDictMismatchError, match=r"shape mismatch for token_embedding\.weight: model \[49408, 64\]"):
        build_prompt_encoder(text_cfg(pretrained=str(tmp_path / "wide.bin")))


def test_non_state_dict_file_is_refused(tmp_path):
    path = tmp_path / "model.pt"
    torch.save({"model": TokenMapper(4, 4)}, str(path))  # a pickled module, not tensors
    with pytest.raises(ValueError, match=r"model\.pt"):
        build_prompt_encoder(text_cfg(pretrained=str(path)))


@pytest.mark.parametrize("custom_text", [False, True], ids=["CLIP", "CustomTextCLIP"])
@pytest.mark.parametrize("fmt", ["bin", "safetensors"])
def test_text_loads_full_open_clip_checkpoint(tmp_path, custom_text, fmt):
    """A full open_clip CLIP state dict (as in ``open_clip_pytorch_model.bin``) loads its text tower."""
    import open_clip
    from open_clip.model import CLIP, CLIPTextCfg, CLIPVisionCfg, CustomTextCLIP

    torch.manual_seed(7)
    cls = CustomTextCLIP if custom_text else CLIP
    clip = cls(32, CLIPVisionCfg(layers=1, width=32, head_width=16, patch_size=16, image_size=32),
               CLIPTextCfg(**{k: v for k, v in TINY_TEXT.items() if k != "embed_dim"})).eval()
    sd = clip.state_dict()
    assert any(k.startswith("visual.") for k in sd) and "logit_scale" in sd
    name = "open_clip_model.safetensors" if fmt == "safetensors" else "open_clip_pytorch_model.bin"
    path = _save(sd, tmp_path / name, fmt)
    enc = build(text_cfg(pretrained=str(path)), seed=3)
    prompts = ["bronze statue", "a watercolor painting of a face"]
    ids = open_clip.get_tokenizer("ViT-B-32")(prompts, context_length=32)
    with torch.no_grad():
        feats, mask = enc._encode_backbone(prompts)
        torch.testing.assert_close(enc.pooled_projection(feats, mask), clip.encode_text(ids), rtol=1e-5, atol=1e-5)


def test_text_tag_resolves_from_local_hf_cache_with_quick_gelu(tmp_path):
    """``pretrained: openai`` finds open_clip's HF file in a local cache and switches on QuickGELU."""
    src = build(text_cfg(quick_gelu=True, mapper="none", out_dim=64), seed=0)
    target = _fake_hf_cache(tmp_path, "timm/vit_base_patch32_clip_224.openai", "open_clip_pytorch_model.bin")
    _save(src.backbone.state_dict(), target, "bin")
    loaded = build(text_cfg(pretrained="openai", cache_dir=str(tmp_path), mapper="none", out_dim=64), seed=1)
    assert loaded.quick_gelu
    with torch.no_grad():
        assert torch.equal(src.encode(["statue"]).tokens, loaded.encode(["statue"]).tokens)


# ---------------------------------------------------------------------------------------------
# paper-scale configs (random weights)


def test_paper_scale_encoders_forward():
    """CLIP ViT-L/14 text tower (768-d) and MAE ViT-B/16 (768-d) with random weights, batch 1."""
    start = time.perf_counter()
    text = build_prompt_encoder(PromptEncoderConfig(kind="text", arch="ViT-L-14", out_dim=768)).eval()
    image = build_prompt_encoder(PromptEncoderConfig(kind="image", arch="vit_base_patch16_224.mae", out_dim=768)).eval()
    with torch.no_grad():
        t = text.encode(["a bronze statue"])
        i = image.encode(torch.rand(1, 3, 512, 512))
    assert t.tokens.shape == (1, 77, 768) and t.mask.sum().item() == 5  # <start> a bronze statue <end>
    assert i.tokens.shape == (1, 197, 768) and i.mask.all()
    assert text.backbone_dim == 768 and image.backbone_dim == 768
    n_text = sum(p.numel() for p in text.backbone.parameters())
    n_image = sum(p.numel() for p in image.backbone.parameters())
    assert 120e6 < n_text < 125e6 and 85e6 < n_image < 87e6
    assert time.perf_counter() - start < 60
