"""Editor core and the two editing systems on tiny CPU configs."""

import copy
import dataclasses

import pytest
import torch

from pe3d.config import configs_dir
from pe3d.devices import inference_memory_layout
from pe3d.models.editor import EditorCore, Prompts, editor_config_from_yaml, load_editor, save_editor
from pe3d.models.prior import PriorModel
from pe3d.systems.editing import AdaptSystem, DistillSystem, EditSystemConfig
from pe3d.losses import EditLossConfig, ImageLossConfig

TINY = [
    "renderer.ray_march.depth_resolution=6",
    "renderer.ray_march.depth_resolution_importance=6",
]


def build(overrides=()):
    torch.manual_seed(0)
    cfg = editor_config_from_yaml(configs_dir() / "model" / "mini.yaml", [*TINY, *overrides])
    prior = PriorModel(cfg.prior)
    editor = EditorCore.from_prior(prior, cfg.cross_attention, cfg.prompt_encoder)
    return prior.eval(), editor.eval()


def batch(b=2, size=64):
    gen = torch.Generator().manual_seed(1)
    from pe3d.geometry import label_from_yaw_pitch

    return {
        "input_image": torch.rand(b, 3, size, size, generator=gen),
        "edited_image": torch.rand(b, 3, size, size, generator=gen),
        "label": label_from_yaw_pitch([0.0] * b, [0.0] * b),
        "prompt": ["turn into bronze", "make the hair blue"][:b],
        "reference": torch.rand(b, 3, size, size, generator=gen),
        "has_reference": torch.tensor([False, True])[:b],
    }


def test_untrained_editor_reproduces_prior_exactly():
    prior, editor = build()
    data = batch()
    with torch.no_grad():
        expected = prior(data["input_image"])
        for prompts in (Prompts(texts=data["prompt"]), Prompts(images=data["reference"]),
                        Prompts(texts=["a", None], images=data["reference"], has_image=torch.tensor([False, True]))):
            assert torch.equal(editor(data["input_image"], prompts), expected)


def test_prompts_change_the_triplane_once_cross_attention_is_trained():
    _, editor = build()
    with torch.no_grad():
        for p in editor.cross_attention.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    data = batch()
    with torch.no_grad():
        a = editor(data["input_image"], Prompts(texts=["bronze statue", "bronze statue"]))
        b = editor(data["input_image"], Prompts(texts=["pencil sketch", "pencil sketch"]))
    assert not torch.allclose(a, b)


def test_text_tokens_are_remembered_at_inference_until_the_weights_change():
    _, editor = build()
    calls = []
    encode = editor.text_encoder.encode
    editor.text_encoder.encode = lambda texts: calls.append(list(texts)) or encode(texts)
    texts = ["bronze statue"]
    with torch.no_grad():
        first = editor.encode_prompts(Prompts(texts=texts))[0]
        again = editor.encode_prompts(Prompts(texts=texts))[0]
        assert len(calls) == 1 and torch.equal(first, again)
        editor.encode_prompts(Prompts(texts=["pencil sketch"]))
        assert len(calls) == 2
        for p in editor.text_encoder.mapper.parameters():  # an adapter loaded in place
            p.add_(0.5)
        changed = editor.encode_prompts(Prompts(texts=texts))[0]
        assert len(calls) == 3 and not torch.allclose(changed, first)
    editor.encode_prompts(Prompts(texts=texts))  # gradients on: never from the cache
    assert len(calls) == 4
    editor.train()
    with torch.no_grad():
        editor.encode_prompts(Prompts(texts=texts))
    assert len(calls) == 5


def test_missing_prompt_is_a_clear_error():
    _, editor = build()
    with pytest.raises(ValueError, match="neither a text nor an image"):
        editor(torch.rand(2, 3, 64, 64), Prompts(texts=["a", None]))
    with pytest.raises(ValueError, match="no prompt"):
        editor(torch.rand(1, 3, 64, 64), Prompts(texts=[None]))


def _system_config():
    return EditSystemConfig(
        loss=EditLossConfig(image_3d=ImageLossConfig(perceptual="ssim", perceptual_weight=0.5)),
        num_views=1,
        render_resolution=8,
        image_log_every=0,
    )


@pytest.mark.parametrize("system_cls", [DistillSystem, AdaptSystem])
def test_only_selected_parameters_train_and_frozen_ones_stay_bit_identical(system_cls):
    prior, editor = build()
    system = system_cls(editor, copy.deepcopy(prior), _system_config())
    trainable = {n for n, p in system.named_parameters() if p.requires_grad}
    if system_cls is AdaptSystem:
        norm_ids = {id(p) for p in editor.encoder.norm_parameters()}
        encoder_trainable = {n for n, p in editor.encoder.named_parameters() if p.requires_grad}
        assert encoder_trainable and all(id(dict(editor.encoder.named_parameters())[n]) in norm_ids for n in encoder_trainable)
        assert not any(n.startswith("editor.cross_attention") for n in trainable)
    else:
        assert any(n.startswith("editor.cross_attention") for n in trainable)
        assert any(n.startswith("editor.encoder.decoder") for n in trainable)
    assert not any(n.startswith(("teacher.", "editor.renderer", "editor.encoder.low", "editor.encoder.high")) for n in trainable)
    assert any(n.startswith(("editor.text_encoder", "editor.image_encoder")) for n in trainable)

    before = {n: p.detach().clone() for n, p in system.named_parameters()}
    optimizer = torch.optim.Adam([p for p in system.parameters() if p.requires_grad], lr=1e-2)
    got_grad = set()
    for _ in range(2):
        optimizer.zero_grad()
        terms, _ = system.compute_losses(batch())
        terms["loss"].backward()
        got_grad |= {n for n, p in system.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
        optimizer.step()
    assert got_grad <= trainable
    changed = {n for n, p in system.named_parameters() if not torch.equal(p, before[n])}
    assert changed and changed <= trainable
    frozen_same = all(torch.equal(p, before[n]) for n, p in system.named_parameters() if n not in trainable)
    assert frozen_same


def test_editor_save_load_roundtrip(tmp_path):
    _, editor = build()
    path = save_editor(editor, tmp_path / "editor.safetensors")
    loaded = load_editor(path).eval()
    assert loaded.encoder.low.stem[0].conv.weight.is_contiguous(memory_format=torch.channels_last)  # loaded for inference
    saved = editor.state_dict()
    assert all(torch.equal(value, saved[key]) for key, value in loaded.state_dict().items())
    inference_memory_layout(editor)  # the same memory layout gives the same bits
    data = batch()
    prompts = Prompts(texts=data["prompt"])
    with torch.no_grad():
        assert torch.equal(editor(data["input_image"], prompts), loaded(data["input_image"], prompts))


def test_editor_from_a_wider_prior_takes_its_feature_channels():
    """A prior with a 64-wide E_high (the GPU-trained design) makes an editor from the mini YAML (32 there)."""
    torch.manual_seed(0)
    cfg = editor_config_from_yaml(configs_dir() / "model" / "mini.yaml", TINY)
    assert cfg.cross_attention.feature_channels == 32
    wide = editor_config_from_yaml(configs_dir() / "model" / "mini.yaml", [*TINY, "encoder.high_widths=[64,64,64]",
                                                                           "cross_attention.feature_channels=64"])
    prior = PriorModel(wide.prior).eval()
    editor = EditorCore.from_prior(prior, cfg.cross_attention, cfg.prompt_encoder).eval()
    assert editor.cfg.cross_attention.feature_channels == 64 and cfg.cross_attention.feature_channels == 32
    data = batch()
    with torch.no_grad():
        planes = editor(data["input_image"], Prompts(texts=data["prompt"]))
        assert torch.allclose(planes, prior.encoder(data["input_image"]), atol=1e-5)
    with pytest.raises(ValueError, match="feature_channels=32 but the encoder's E_high gives 64"):
        EditorCore(dataclasses.replace(editor.cfg, cross_attention=cfg.cross_attention))


def _perturbed(module, scale=0.05, seed=3):
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * scale)


def test_residual_editor_starts_as_the_prior_and_trains_only_its_edit():
    """A residual editor (prior's E_t frozen as the base + an E_t edit with a zero output layer) renders the
    prior for every prompt until trained; distillation trains the edit branch and never the base."""
    prior, plain = build()
    _perturbed(plain.cross_attention)
    _perturbed(plain.encoder.decoder)  # a "trained" editor whose own reconstruction differs from its prior's
    data = batch()
    prompts = Prompts(texts=data["prompt"])
    with torch.no_grad():
        expected = prior(data["input_image"])
        assert not torch.allclose(plain(data["input_image"], prompts), expected, atol=1e-3)
        editor = plain.as_residual(prior).eval()
        assert editor.cfg.residual and torch.allclose(editor(data["input_image"], prompts), expected, atol=1e-6)
        assert torch.allclose(editor.reconstruct(data["input_image"]), expected, atol=1e-6)
    # the edit branch keeps what the plain editor learned, except its zeroed output layer
    kept = {k: v for k, v in plain.encoder.decoder.state_dict().items() if not k.startswith("out.")}
    assert all(torch.equal(v, editor.encoder.decoder.state_dict()[k]) for k, v in kept.items())
    # adaptation trains the edit's output layer too (norms alone span only the distilled edits); the plain editor's
    # norm-only set stays as it was
    out_layer = {id(p) for p in editor.encoder.decoder.out.parameters()}
    assert out_layer <= {id(p) for p in editor.adaptation_parameters()}
    assert not out_layer & {id(p) for p in editor.base_decoder.parameters()}
    assert not {id(p) for p in plain.encoder.decoder.out.parameters()} & {id(p) for p in plain.adaptation_parameters()}
    with pytest.raises(ValueError, match="residual already"):
        editor.as_residual(prior)
    with pytest.raises(ValueError, match="not residual"):
        plain.base_planes(None, None, data["input_image"])

    system = DistillSystem(editor.train(), prior, _system_config())
    trainable = {id(p) for p in system.trainable_parameters()}
    assert not any(id(p) in trainable or p.requires_grad for p in editor.base_decoder.parameters())
    base_before = copy.deepcopy(editor.base_decoder.state_dict())
    out_before = editor.encoder.decoder.out.weight.clone()
    optim = torch.optim.Adam([p for p in editor.parameters() if p.requires_grad], lr=1e-3)
    for _ in range(2):
        loss = system.compute_losses(data)[0]["loss"]
        optim.zero_grad()
        loss.backward()
        optim.step()
    assert all(torch.equal(v, editor.base_decoder.state_dict()[k]) for k, v in base_before.items())
    assert not torch.equal(editor.encoder.decoder.out.weight, out_before)  # the edit branch learns
    with torch.no_grad():
        assert not torch.allclose(editor.eval()(data["input_image"], prompts), expected, atol=1e-4)


def test_residual_editor_from_the_model_yaml_saves_and_loads(tmp_path):
    cfg = editor_config_from_yaml(configs_dir() / "model" / "mini.yaml", [*TINY, "residual=true"])
    assert cfg.residual
    torch.manual_seed(0)
    prior = PriorModel(cfg.prior).eval()
    editor = EditorCore.from_prior(prior, cfg.cross_attention, cfg.prompt_encoder, residual=True).eval()
    _perturbed(editor.encoder.decoder)
    data = batch()
    path = save_editor(editor, tmp_path / "residual.safetensors")
    loaded = load_editor(path).eval()
    assert loaded.cfg.residual and loaded.base_decoder is not None
    with torch.no_grad():
        prompts = Prompts(texts=data["prompt"])
        assert torch.allclose(loaded(data["input_image"], prompts), editor(data["input_image"], prompts), atol=1e-5)
        # the base is the prior's E_t (not the perturbed edit branch): the reconstruction is the prior's
        assert torch.allclose(loaded.reconstruct(data["input_image"]), prior(data["input_image"]), atol=1e-5)
    # a continued prior's E_t becomes the base with the other frozen parts
    _perturbed(prior.encoder.decoder, seed=5)
    changed = loaded.take_prior_parts(prior)
    assert any(name.startswith("base_decoder.") for name in changed)
    assert not any(name.startswith("encoder.decoder.") for name in changed)
    with torch.no_grad():
        assert torch.allclose(loaded.reconstruct(data["input_image"]), prior(data["input_image"]), atol=1e-5)
