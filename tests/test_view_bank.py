"""``EditSystemConfig.view_bank``: each pair's ``L3d`` views come from a bank fixed per pair, the frozen
teacher renders every view of a pair once (kept in the frozen-output cache), and the views it returns are
exactly the teacher's renders of the cameras and ray patches the editor is rendered at."""

import pytest
import torch

from pe3d.losses import EditLossConfig, ImageLossConfig
from pe3d.models.editor import load_editor
from pe3d.models.prior import load_prior
from pe3d.systems.common import DilatedRays
from pe3d.systems.editing import AdaptSystem, EditSystemConfig
from pe3d.systems.frozen_cache import FrozenOutputCache
from pe3d.systems.view_bank import ViewBank
from pe3d.weights import shipped_path

from test_frozen_cache import _named
from test_loss_falls import _edit_batch


def _batch() -> dict:
    return _named(_edit_batch("golden_statue", "turn the person into a golden statue"))


def test_per_view_offsets_render_the_pixels_of_the_full_view():
    prior = load_prior(shipped_path("prior_mini")).eval()
    batch = _batch()
    with torch.no_grad():
        planes = prior(batch["input_image"][:2])
        labels = batch["label"][:2]
        full = DilatedRays(16).render(prior.renderer, planes, labels)
        offsets = torch.tensor([[1, 2], [3, 0]])
        patches = DilatedRays(16, 4, offsets=offsets).render(prior.renderer, planes, labels)
    assert patches.image.shape == (2, 3, 4, 4) and patches.depth.shape == (2, 1, 4, 4)
    for i, (oy, ox) in enumerate(offsets.tolist()):
        for field in ("image", "depth", "weights"):
            expected = getattr(full, field)[i, :, oy::4, ox::4]
            got = getattr(patches, field)[i]
            if field == "depth":  # the depth of a (nearly) transparent ray has no meaning; the full render's
                solid = full.weights[i, :, oy::4, ox::4] > 0.01  # empty-ray probes leave it at the far bound
                assert solid.sum() > 4
                expected, got = expected[solid], got[solid]
            assert torch.allclose(got, expected, atol=1e-3), (i, field)
    with pytest.raises(ValueError, match="one offset per view"):
        DilatedRays(16, 4, offsets=offsets).crop(batch["edited_image"])
    with pytest.raises(ValueError, match="3 ray offsets for 2 views"):
        DilatedRays(16, 4, offsets=torch.zeros(3, 2).long()).indices(2)


def test_a_pairs_views_are_rendered_once_and_returned_as_drawn():
    prior = load_prior(shipped_path("prior_mini")).eval()
    batch = _batch()
    keys = [("golden_statue", i) for i in range(4)]
    torch.manual_seed(0)
    bank = ViewBank(5, 16, 4, yaw_std=0.4, pitch_std=0.15)
    cache = FrozenOutputCache(16.0)
    calls, bank_calls = [], []  # batch sizes of every render / of the bank's renders
    hook = prior.renderer.register_forward_hook(lambda module, args, out: calls.append(args[0].shape[0]))
    with torch.no_grad():
        planes = prior(batch["edited_image"])
        for step in range(3):
            slots = bank.draw(keys, 2)
            assert slots.shape == (4, 2) and all(len(set(row)) == 2 for row in slots.tolist())
            start = len(calls)
            got = bank.frozen_renders(cache, "teacher", keys, batch["edited_image"], planes, slots, prior.renderer)
            bank_calls += calls[start:]
            labels, rays = bank.select(keys, slots, planes)
            expected = rays.render(prior.renderer, planes.repeat_interleave(2, 0), labels)
            # batched with other views, a ray's samples move by float noise: images within 1e-4 here; the depth of a
            # nearly empty ray (a ratio of tiny weights) by up to 0.16, so depth is compared where L3d reads it
            # (opacity > 0.5). Another view's render would be off by far more.
            for field in ("image", "weights"):
                assert torch.allclose(getattr(got, field), getattr(expected, field), atol=1e-3), (step, field)
            seen = expected.weights > 0.5
            assert seen.any() and torch.allclose(got.depth[seen], expected.depth[seen], atol=1e-3), step
    hook.remove()
    assert bank_calls == [4 * 5]  # every view of the 4 pairs at the first step, none after
    assert bank.views(keys[0])[0] is bank.views(keys[0])[0]  # fixed per pair
    with pytest.raises(ValueError, match="3 views per step from a bank of 2"):
        ViewBank(2, 16, 4, 0.4, 0.15).draw(keys, 3)


def _system(view_bank: int, cache_mb: float = 64.0) -> AdaptSystem:
    cfg = EditSystemConfig(loss=EditLossConfig(image_3d=ImageLossConfig(perceptual="none"), depth_source="input"),
                           num_views=2, render_resolution=16, view_ray_stride=4, image_log_every=0,
                           frozen_cache_mb=cache_mb, view_bank=view_bank)
    return AdaptSystem(load_editor(shipped_path("editor_mini")), load_prior(shipped_path("prior_mini")), cfg)


def _teacher_render_calls(system: AdaptSystem, batch: dict, steps: int) -> int:
    calls = []
    hook = system.teacher.renderer.register_forward_hook(lambda *_: calls.append(1))
    try:
        for _ in range(steps):
            terms = system.compute_losses(batch)[0]
            assert torch.isfinite(terms["loss"]) and terms["l3d_depth"] > 0
    finally:
        hook.remove()
    return len(calls)


def test_training_with_a_view_bank_renders_the_teacher_once_per_pair():
    batch = _batch()
    banked = _system(view_bank=4).train()
    # the teacher's views of the edited and of the input image (depth), all 4 views of each pair, at step 1 only
    assert _teacher_render_calls(banked, batch, 3) == 2
    assert len(banked.view_bank._views) == 4
    assert _teacher_render_calls(_system(view_bank=0).train(), batch, 3) == 2 * 3  # fresh views: every step
    assert _teacher_render_calls(_system(view_bank=4, cache_mb=0.0).train(), batch, 2) == 2 * 2  # no cache: no bank
    assert _teacher_render_calls(banked.eval(), batch, 2) == 2 * 2  # validation draws fresh full views
