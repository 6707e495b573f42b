"""The per-pair cache of frozen outputs (teacher triplanes, E_low / E_high features) changes no loss
value, only what is computed: a pair's frozen outputs are computed at its first step and reused after,
a key reused for other images is recomputed, and a module whose output depends on the batch is never cached."""

import copy

import pytest
import torch
from torch import nn

from pe3d.losses import EditLossConfig, ImageLossConfig
from pe3d.models.editor import load_editor
from pe3d.models.prior import load_prior
from pe3d.systems.editing import AdaptSystem, DistillSystem, EditSystemConfig
from pe3d.systems.frozen_cache import FrozenOutputCache, batch_independent, pair_keys
from pe3d.weights import shipped_path
from pe3d.world import apply_style_filter

from test_loss_falls import _edit_batch


def _named(batch: dict, style: str = "golden_statue") -> dict:
    return {**batch, "id": torch.arange(batch["input_image"].shape[0]), "style": [style] * batch["input_image"].shape[0]}


def _system(kind, cache_mb: float, depth_source: str = "input"):
    cfg = EditSystemConfig(loss=EditLossConfig(image_3d=ImageLossConfig(perceptual="none"), depth_source=depth_source),
                           num_views=1, render_resolution=16, image_log_every=0, frozen_cache_mb=cache_mb)
    return kind(load_editor(shipped_path("editor_mini")), load_prior(shipped_path("prior_mini")), cfg)


def _losses(system, batches, seed=0, lr=3e-3):
    """Loss terms of a few Adam steps, one per batch (same cameras for every system: seeded)."""
    torch.manual_seed(seed)
    optimizer = torch.optim.Adam([p for p in system.parameters() if p.requires_grad], lr=lr)
    out = []
    for batch in batches:
        optimizer.zero_grad()
        terms = system.compute_losses(batch)[0]
        terms["loss"].backward()
        optimizer.step()
        out.append({k: v.item() for k, v in terms.items()})
    return out


@pytest.mark.parametrize("kind", [AdaptSystem, DistillSystem])
def test_cached_training_gives_the_same_losses(kind):
    batch = _named(_edit_batch("golden_statue", "turn the person into a golden statue"))
    half = {k: (v[:2] if isinstance(v, (torch.Tensor, list)) else v) for k, v in batch.items()}
    batches = [half, batch, batch, half]  # first half of the pairs, then all: some hits, some misses
    plain = _system(kind, 0.0)
    cached = _system(kind, 64.0)
    expected, got = _losses(plain, batches), _losses(cached, batches)
    for step, (a, b) in enumerate(zip(expected, got)):
        assert a.keys() == b.keys()
        for key in a:
            assert b[key] == pytest.approx(a[key], rel=1e-4, abs=1e-6), (step, key)
    assert plain.frozen_cache.hits == 0 and len(plain.frozen_cache) == 0
    # 3 cached computations (teacher on edited, teacher on input, editor features) x 4 pairs, each computed once
    assert len(cached.frozen_cache) == 12
    assert cached.frozen_cache.misses == 12
    assert cached.frozen_cache.hits == 3 * (2 + 4 + 4 + 2) - 12


def test_a_reused_key_with_other_images_is_recomputed():
    batch = _named(_edit_batch("golden_statue", "turn the person into a golden statue"))
    other = {**batch, "edited_image": apply_style_filter("pop_art", batch["input_image"], torch.zeros_like(batch["input_image"][:, 0]).long())}
    system = _system(AdaptSystem, 64.0, depth_source="edited")
    with torch.no_grad():
        system.compute_losses(batch)
        torch.manual_seed(1)
        cached = system.compute_losses(other)[0]
        fresh = _system(AdaptSystem, 0.0, depth_source="edited")
        torch.manual_seed(1)
        expected = fresh.compute_losses(other)[0]
    assert cached["l3d_triplane"].item() == pytest.approx(expected["l3d_triplane"].item(), rel=1e-5)
    assert system.frozen_cache.misses == 4 * 2 + 4  # the teacher's planes of the new edits were recomputed


def test_cache_budget_and_keys(caplog):
    cache = FrozenOutputCache(max_mb=1 / 1024)  # 1 KiB: room for one 64-float entry per name
    x = torch.arange(8 * 64, dtype=torch.float32).reshape(8, 64)
    calls = []

    def compute(idx):
        calls.append(idx.tolist())
        return (x[idx] * 2,)

    cache.get("double", list(range(4)), x[:4], compute)
    assert not cache.full and not caplog.records  # 4 of 256 bytes fit: no warning yet
    out = cache.get("double", list(range(8)), x, compute)[0]
    assert torch.equal(out, x * 2)
    assert cache.bytes <= 1024 and len(cache) == 4  # 4 of 256 bytes fit
    # the first item that does not fit is said once, naming the knob
    full = [r.getMessage() for r in caplog.records if "cache full" in r.getMessage()]
    assert cache.full and len(full) == 1 and "system.frozen_cache_mb" in full[0] and "(4 pairs kept)" in full[0], full
    out = cache.get("double", list(range(8)), x, compute)[0]
    assert torch.equal(out, x * 2) and calls[-1] == [4, 5, 6, 7]
    assert len([r for r in caplog.records if "cache full" in r.getMessage()]) == 1
    assert torch.equal(cache.get("double", None, x, compute)[0], x * 2) and calls[-1] == list(range(8))
    assert cache.summary() == "frozen outputs of 4 pairs kept (0.0 MB), 40% of lookups reused"  # 8 hits of 20
    assert FrozenOutputCache(1).summary() == ""
    with pytest.raises(ValueError, match="max_mb"):
        FrozenOutputCache(-1)
    with pytest.raises(ValueError, match="3 keys for a batch of 8"):
        cache.get("double", [0, 1, 2], x, compute)
    assert pair_keys({"id": torch.tensor([3, 4]), "style": ["a", "b"]}) == [("a", 3), ("b", 4)]
    assert pair_keys({"input_image": x}) is None


def test_batch_dependent_modules_are_not_cached():
    assert batch_independent(nn.Sequential(nn.Conv2d(3, 3, 1), nn.GroupNorm(1, 3), nn.Dropout(0.0)))
    assert not batch_independent(nn.Sequential(nn.Conv2d(3, 3, 1), nn.BatchNorm2d(3)))
    assert not batch_independent(nn.Sequential(nn.Linear(3, 3), nn.Dropout(0.1)))
    system = _system(AdaptSystem, 64.0)
    assert system._image_features_frozen()
    system.editor.encoder.low = nn.Sequential(system.editor.encoder.low, nn.Dropout(0.5))
    assert not system._image_features_frozen()
    trained = _system(AdaptSystem, 64.0)
    next(trained.editor.encoder.high.parameters()).requires_grad_(True)
    assert not trained._image_features_frozen()
