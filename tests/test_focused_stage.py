"""The settings of a stage that trains one style further.

Self-distillation (``system.self_distill_weight``): an L1 term that holds the editor's triplanes to those of a
frozen copy of the editor it starts from, on the items of styles not exempt; the copy never changes, the term
starts at 0, holds the editor where it applies and changes nothing for an exempt style.
``system.train_prompt_encoder=false``: E_p stays bit-identical in distillation and adaptation while the rest trains."""

import pytest
import torch

from pe3d.losses import EditLossConfig, ImageLossConfig
from pe3d.models.editor import load_editor
from pe3d.models.prior import load_prior
from pe3d.systems.editing import AdaptSystem, DistillSystem, EditSystemConfig, prompts_from_batch
from pe3d.systems.frozen_cache import pair_keys
from pe3d.weights import shipped_path

from test_frozen_cache import _losses, _named
from test_loss_falls import _edit_batch


def _system(weight: float = 0.0, exempt=(), kind=DistillSystem, train_prompt_encoder: bool = True):
    cfg = EditSystemConfig(loss=EditLossConfig(image_3d=ImageLossConfig(perceptual="none")), num_views=1,
                           render_resolution=16, image_log_every=0, frozen_cache_mb=64.0,
                           self_distill_weight=weight, self_distill_exempt_styles=list(exempt),
                           train_prompt_encoder=train_prompt_encoder)
    return kind(load_editor(shipped_path("editor_mini")), load_prior(shipped_path("prior_mini")), cfg)


def _batch():
    return _named(_edit_batch("golden_statue", "turn the person into a golden statue"))


def _drift(system, batch) -> float:
    """Mean |triplane change| of the trained editor from the shipped one on the batch."""
    with torch.no_grad():
        prompts, keys = prompts_from_batch(batch), pair_keys(batch)
        shipped = load_editor(shipped_path("editor_mini"))
        now = system._edit(system.editor, batch["input_image"], prompts, keys)
        before = system._edit(shipped, batch["input_image"], prompts, keys)
        return (now - before).abs().mean().item()


def _train(system, batch, steps: int = 8) -> list[dict]:
    """Loss terms of a few Adam steps at a fine-tuning rate."""
    return _losses(system, [batch] * steps, lr=3e-4)


def test_config_errors_name_the_field():
    with pytest.raises(ValueError, match="self_distill_weight=-1"):
        EditSystemConfig(self_distill_weight=-1.0)
    with pytest.raises(ValueError, match="self_distill_exempt_styles"):
        EditSystemConfig(self_distill_exempt_styles=["zombie"])


def test_no_copy_without_weight():
    assert _system().initial_editor is None


def test_term_holds_the_editor_and_the_copy_stays():
    batch = _batch()
    free, held = _system(), _system(weight=20.0)
    copy_before = {k: v.clone() for k, v in held.initial_editor.state_dict().items()}
    terms_held = _train(held, batch)
    _train(free, batch)
    assert terms_held[0]["self_distill"] == pytest.approx(0.0, abs=1e-6)  # the editor is its copy at the start
    assert terms_held[-1]["self_distill"] > 0
    for key, value in held.initial_editor.state_dict().items():
        assert torch.equal(value, copy_before[key]), key
    free_drift, held_drift = _drift(free, batch), _drift(held, batch)
    assert free_drift > 0
    assert held_drift < 0.5 * free_drift, (held_drift, free_drift)


def test_an_exempt_style_trains_as_without_the_term():
    batch = _batch()
    plain = _losses(_system(), [batch] * 3)
    exempt = _losses(_system(weight=20.0, exempt=["golden_statue"]), [batch] * 3)
    for a, b in zip(plain, exempt):
        assert b.pop("self_distill") == 0.0
        assert b == pytest.approx(a, rel=1e-5, abs=1e-7)


@pytest.mark.parametrize("kind", [DistillSystem, AdaptSystem])
def test_a_frozen_prompt_encoder_stays_while_the_rest_trains(kind):
    system = _system(kind=kind, train_prompt_encoder=False)
    prompt_state = {k: v.clone() for k, v in system.editor.text_encoder.state_dict().items()}
    decoder_state = {k: v.clone() for k, v in system.editor.encoder.decoder.state_dict().items()}
    _losses(system, [_batch()] * 2)
    for key, value in system.editor.text_encoder.state_dict().items():
        assert torch.equal(value, prompt_state[key]), key
    assert any(not torch.equal(value, decoder_state[key]) for key, value in system.editor.encoder.decoder.state_dict().items())
    trained = _system(kind=kind)  # the default trains E_p (its mapper in adaptation)
    _losses(trained, [_batch()] * 2)
    assert any(not torch.equal(value, prompt_state[key]) for key, value in trained.editor.text_encoder.state_dict().items())
