"""The paper's metrics (pe3d.metrics): identity, CLIP, view consistency, ground truth, timing.

Real faces: ``skimage.data.astronaut()`` (Eileen Collins) and matplotlib's sample photo of
Grace Hopper, two different people in real photographs that ship with installed packages.
"""

from __future__ import annotations

import math
import shutil
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from pe3d.metrics import (
    IRSE50,
    ClipScore,
    GroundTruthViews,
    IdentitySimilarity,
    MetricWeightsMissing,
    TimePerImage,
    ViewConsistency,
    build_world_targets,
    face_boxes,
    load_arcface,
)
from pe3d.metrics.arcface import arcface_from_state_dict
from pe3d.models.prompt_base import StateDictMismatchError

SIZE = 192  # faces of ~36 px (astronaut) and ~70 px (Grace Hopper): quick to detect, large enough to embed


def _tensor(image: np.ndarray) -> torch.Tensor:
    """``[H, W, 3]`` uint8 -> ``[1, 3, SIZE, SIZE]`` float in [0, 1]."""
    x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float()[None] / 255.0
    return F.interpolate(x, size=(SIZE, SIZE), mode="area")


@pytest.fixture(scope="module")
def astronaut() -> torch.Tensor:
    from skimage.data import astronaut

    return _tensor(astronaut())


@pytest.fixture(scope="module")
def grace_hopper() -> torch.Tensor:
    import imageio.v3 as iio
    from matplotlib import cbook  # matplotlib (a dependency) ships the second real face photo

    photo = iio.imread(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))  # 600 x 512
    return _tensor(photo[:512])


def _shifted(image: torch.Tensor) -> torch.Tensor:
    return torch.roll(image, shifts=(3, 4), dims=(2, 3))


# ------------------------------------------------------------------------------------------------
# ID_t (dlib backend: the pretrained network pip ships)


def test_identity_is_high_for_a_shifted_copy_and_low_for_a_different_person(astronaut, grace_hopper):
    metric = IdentitySimilarity()
    metric.update(astronaut, _shifted(astronaut))
    same = float(metric.compute())
    assert (int(metric.found), int(metric.missed), int(metric.skipped)) == (1, 0, 0)
    metric.reset()
    metric.update(astronaut, grace_hopper)
    different = float(metric.compute())
    # Unit dlib descriptors of different people sit at cosine ~0.75-0.9; dlib's own same-person rule
    # (raw distance < 0.6, raw norms ~1.4) corresponds to cosine ~0.91.
    assert same > 0.99, same
    assert different < 0.91, different
    assert same - different > 0.08


def test_identity_batches_average_over_pairs(astronaut, grace_hopper):
    metric = IdentitySimilarity()
    metric.update(torch.cat([astronaut, astronaut]), torch.cat([_shifted(astronaut), grace_hopper]))
    batched = float(metric.compute())
    singles = []
    for edited in (_shifted(astronaut), grace_hopper):
        metric.reset()
        metric.update(astronaut, edited)
        singles.append(float(metric.compute()))
    assert batched == pytest.approx(sum(singles) / 2, abs=1e-6)


def test_identity_counts_sources_without_a_face_and_returns_nan_when_nothing_was_measurable(astronaut):
    metric = IdentitySimilarity()
    metric.update(torch.full_like(astronaut, 0.5), astronaut)
    with pytest.warns(UserWarning, match="no measurable pair"):
        value = metric.compute()
    assert math.isnan(float(value))
    assert (int(metric.found), int(metric.missed), int(metric.skipped)) == (0, 0, 1)


def test_an_edit_hiding_the_face_is_measured_inside_the_source_box_and_counted_as_missed(astronaut):
    hidden = astronaut.clone()
    hidden[:, :, 20:80, 55:115] = 0.0  # black out the face (box ~ x 65-101, y 30-66)
    metric = IdentitySimilarity()
    metric.update(astronaut, hidden)
    assert (int(metric.found), int(metric.missed), int(metric.skipped)) == (0, 1, 0)
    assert float(metric.compute()) < 0.95
    strict = IdentitySimilarity(use_source_box=False)
    strict.update(astronaut, hidden)
    assert (int(strict.found), int(strict.missed), int(strict.skipped)) == (0, 0, 1)


def test_identity_rejects_bad_input(astronaut):
    metric = IdentitySimilarity()
    with pytest.raises(ValueError, match="same shape"):
        metric.update(astronaut, astronaut[:, :, :100])
    with pytest.raises(ValueError, match=r"\[B, 3, H, W\]"):
        metric.update(astronaut[0], astronaut[0])
    with pytest.raises(ValueError, match="unknown identity backend"):
        IdentitySimilarity(backend="facenet")


# ------------------------------------------------------------------------------------------------
# ArcFace IR-SE50: pSp's model_ir_se50.pth key layout, fabricated checkpoint


@pytest.fixture(scope="module")
def arcface_checkpoint(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    model = IRSE50()
    for name, buffer in model.named_buffers():  # non-trivial statistics, so eval mode matters
        if name.endswith("running_var"):
            buffer.uniform_(0.5, 1.5)
    path = tmp_path_factory.mktemp("arcface") / "model_ir_se50.pth"
    torch.save(model.state_dict(), path)
    return path


def test_irse50_has_the_key_layout_of_psp_model_ir_se50():
    keys = IRSE50().state_dict().keys()
    assert len(keys) == 397  # checked against pSp's Backbone(112, 50, mode='ir_se') key for key
    for key in (
        "input_layer.0.weight", "input_layer.2.weight", "body.0.res_layer.5.fc1.weight", "body.3.shortcut_layer.0.weight",
        "body.23.res_layer.4.running_var", "output_layer.3.weight", "output_layer.4.weight", "output_layer.4.running_var",
    ):
        assert key in keys, key
    assert "body.1.shortcut_layer.0.weight" not in keys  # same width: plain subsampling, no weights


def test_arcface_loads_a_checkpoint_strictly_and_the_metric_runs(arcface_checkpoint, astronaut):
    metric = IdentitySimilarity(backend="arcface", weights=arcface_checkpoint)
    saved = torch.load(arcface_checkpoint, weights_only=True)
    loaded = metric.embedder.network.state_dict()
    assert saved.keys() == loaded.keys() and all(torch.equal(saved[k], loaded[k]) for k in saved)
    metric.update(astronaut, astronaut)  # no detection: every pair is measured on the pSp crop
    assert (int(metric.found), int(metric.missed), int(metric.skipped)) == (1, 0, 0)
    assert float(metric.compute()) == pytest.approx(1.0, abs=1e-5)


def test_arcface_checkpoint_errors_name_the_problem(arcface_checkpoint, tmp_path):
    state = torch.load(arcface_checkpoint, weights_only=True)
    old = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}  # old-PyTorch checkpoints
    arcface_from_state_dict(old)
    state["output_layer.3.weights"] = state.pop("output_layer.3.weight")
    with pytest.raises(StateDictMismatchError, match=r"output_layer\.3\.weights") as error:
        arcface_from_state_dict(state, "typo.pth")
    assert "output_layer.3.weight" in error.value.missing
    with pytest.raises(MetricWeightsMissing, match="ArcFace.*nowhere.pth"):
        load_arcface(tmp_path / "nowhere.pth")


# ------------------------------------------------------------------------------------------------
# CLIP_r with a tiny open_clip model saved as the "weights"

TINY_CLIP = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 16, "head_width": 16},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}


@pytest.fixture(scope="module")
def tiny_clip_file(tmp_path_factory) -> tuple[Path, torch.nn.Module]:
    from open_clip.model import CLIP

    torch.manual_seed(0)
    model = CLIP(**TINY_CLIP).eval()
    path = tmp_path_factory.mktemp("clip") / "tiny_clip.pt"
    torch.save(model.state_dict(), path)
    return path, model


def test_clip_score_matches_the_open_clip_model_it_loaded(tiny_clip_file):
    import open_clip

    path, reference = tiny_clip_file
    images = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    texts = ["a golden statue", "a pencil sketch of a face"]
    metric = ClipScore("ViT-B-32", weights=str(path), model_cfg=TINY_CLIP)
    metric.update(images, texts=texts)
    mean = torch.tensor(open_clip.OPENAI_DATASET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(open_clip.OPENAI_DATASET_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        image_emb = F.normalize(reference.encode_image((images - mean) / std), dim=-1)
        text_emb = F.normalize(reference.encode_text(open_clip.get_tokenizer("ViT-B-32")(texts, context_length=16)), dim=-1)
    expected = (image_emb * text_emb).sum(-1).mean()
    assert float(metric.compute()) == pytest.approx(float(expected), abs=1e-5)
    metric.reset()
    metric.update(images, reference_images=images)
    assert float(metric.compute()) == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(ValueError, match="exactly one prompt kind"):
        metric.update(images)


def test_clip_score_finds_tagged_weights_in_a_local_hugging_face_cache(tmp_path, tiny_clip_file):
    # The Hugging Face cache layout of the laion2b_s34b_b79k tag of ViT-B-32, holding the tiny weights.
    repo = tmp_path / "models--laion--CLIP-ViT-B-32-laion2B-s34B-b79K"
    (repo / "snapshots" / "0123abcd").mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0123abcd")
    shutil.copy(tiny_clip_file[0], repo / "snapshots" / "0123abcd" / "open_clip_pytorch_model.bin")
    images = torch.rand(2, 3, 40, 48, generator=torch.Generator().manual_seed(2))  # resized + centre-cropped to 32
    metric = ClipScore("ViT-B-32", cache_dir=str(tmp_path), model_cfg=TINY_CLIP)  # weights=None: every tag is tried
    metric.update(images, reference_images=images[:1])
    values = metric.compute()
    assert float(metric.count) == 2 and float(values) < 1.0
    metric.reset()
    metric.update(images[:1], reference_images=images[:1])
    assert float(metric.compute()) == pytest.approx(1.0, abs=1e-5)


def test_clip_score_refuses_without_weights_and_with_wrong_weights(tmp_path, tiny_clip_file):
    with pytest.raises(MetricWeightsMissing, match=r"'ViT-B-32'.*" + str(tmp_path)) as error:
        ClipScore("ViT-B-32", cache_dir=str(tmp_path))
    assert len(error.value.searched) > 1
    with pytest.raises(MetricWeightsMissing, match="missing.pt"):
        ClipScore("ViT-B-32", weights=str(tmp_path / "missing.pt"))
    wider = {**TINY_CLIP, "text_cfg": {**TINY_CLIP["text_cfg"], "width": 64}}
    with pytest.raises(StateDictMismatchError, match="shape mismatch"):
        ClipScore("ViT-B-32", weights=str(tiny_clip_file[0]), model_cfg=wider)


# ------------------------------------------------------------------------------------------------
# 3D consistency


def test_view_consistency_of_identical_views_is_one_and_faceless_views_are_left_out(astronaut, grace_hopper):
    metric = ViewConsistency()
    blank = torch.full_like(astronaut, 0.5)
    views = torch.stack([torch.cat([astronaut, astronaut, blank]), torch.cat([astronaut, grace_hopper, blank])])
    metric.update(views)  # [2 heads, 3 views, 3, H, W]
    assert int(metric.pairs) == 2 and int(metric.missed_views) == 2
    mixed = float(metric.compute())
    metric.reset()
    metric.update(views[:1])
    assert float(metric.compute()) == pytest.approx(1.0, abs=1e-6)
    assert mixed < 0.96  # mean of 1.0 and a different person's similarity


def test_view_consistency_measures_faceless_views_inside_known_face_boxes(astronaut):
    hidden = astronaut.clone()
    boxes = face_boxes(torch.stack([astronaut, astronaut], dim=1))
    assert boxes[0][0] is not None and boxes[0][0] == boxes[0][1]
    left, top, right, bottom = boxes[0][0]
    hidden[:, :, top + (bottom - top) // 3 : bottom, left:right] = 0.5  # the detector no longer finds the face
    views = torch.stack([astronaut, hidden], dim=1)
    plain = ViewConsistency()
    plain.update(views)
    assert int(plain.pairs) == 0 and int(plain.missed_views) == 1
    boxed = ViewConsistency()
    boxed.update(views, boxes)
    assert int(boxed.pairs) == 1 and int(boxed.boxed_views) == 1 and int(boxed.missed_views) == 0
    assert 0.0 < float(boxed.compute()) < 0.999  # measured, and the covered face is not the same descriptor
    with pytest.raises(ValueError, match="1 heads x 2 views"):
        boxed.update(views, [boxes[0][:1]])


def test_view_consistency_checks_shapes(astronaut):
    metric = ViewConsistency()
    with pytest.raises(ValueError, match=r"\[B, N, 3, H, W\]"):
        metric.update(astronaut)
    with pytest.raises(ValueError, match="at least 2 views"):
        metric.update(astronaut[None])


# ------------------------------------------------------------------------------------------------
# Ground truth on the world


@pytest.fixture(scope="module")
def world_targets():
    views = {"input": (0.0, 0.0), "yaw+30": (30.0, 0.0), "pitch-15": (0.0, -15.0)}
    return build_world_targets("golden_statue", count=2, resolution=32, views=views)


def test_world_targets_are_filtered_ground_truth_views(world_targets):
    assert set(world_targets.views) == {"input", "yaw+30", "pitch-15"}
    front, side = world_targets.views["input"], world_targets.views["yaw+30"]
    assert front.image.shape == (2, 3, 32, 32) and front.depth.shape == (2, 1, 32, 32) and front.mask.dtype == torch.bool
    assert not torch.allclose(front.image, front.source)  # the filter changed the view
    assert not torch.allclose(front.source, side.source)  # another camera
    assert (front.depth[front.mask] > 0).all() and (front.depth[~front.mask] == 0).all()
    assert side.labels.shape == (2, 25) and side.yaw_deg == 30.0


def test_ground_truth_scores_perfect_and_degraded_renders(world_targets):
    view = world_targets.views["yaw+30"]
    metric = GroundTruthViews()
    metric.update(view.image, view.image, view.depth, view.depth, view.mask)
    perfect = metric.compute()
    assert float(perfect["psnr"]) == pytest.approx(100.0)
    assert float(perfect["ssim"]) == pytest.approx(1.0, abs=1e-4)
    assert float(perfect["depth_error"]) == 0.0 and "lpips" not in perfect
    metric.reset()
    darker = view.image * 0.9
    metric.update(darker, view.image, view.depth + 0.01 * view.mask, view.depth, view.mask)
    degraded = metric.compute()
    mse = ((0.1 * view.image) ** 2).flatten(1).mean(1)
    assert float(degraded["psnr"]) == pytest.approx(float((-10 * torch.log10(mse)).mean()), abs=1e-3)
    assert float(degraded["ssim"]) < 1.0
    assert float(degraded["depth_error"]) == pytest.approx(0.01, abs=1e-6)  # only foreground pixels count


def test_ground_truth_lpips_term_and_input_checks(world_targets):
    import lpips

    view = world_targets.views["input"]
    # A real LPIPS network with the package's linear heads; a random backbone only exercises the path
    # (pe3d.perceptual.build_lpips refuses to build one without real backbone weights).
    metric = GroundTruthViews(lpips=lpips.LPIPS(net="alex", pretrained=True, pnet_rand=True, verbose=False))
    metric.update(view.image, view.image)
    assert float(metric.compute()["lpips"]) == pytest.approx(0.0, abs=1e-6)
    metric.update(view.source, view.image)
    assert float(metric.compute()["lpips"]) > 0.0
    with pytest.raises(ValueError, match="both pred_depth and target_depth"):
        metric.update(view.image, view.image, pred_depth=view.depth)
    with pytest.raises(ValueError, match="pred and target"):
        metric.update(view.image, view.image[:, :, :16])


# ------------------------------------------------------------------------------------------------
# Time per image


def test_time_per_image_arithmetic_warmup_and_measure():
    timer = TimePerImage(warmup=1)
    timer.update(9.0, 1)  # warm-up, ignored
    timer.update(0.5, 10)
    timer.update(1.5, 10)
    assert float(timer.compute()) == pytest.approx(100.0)
    timer.reset()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torchmetrics warns about compute() before update()
        assert math.isnan(float(timer.compute()))
    timer.update(0.0, 1)  # the reset also re-arms the warm-up
    with timer.measure(count=2, device="cpu") as watch:
        time.sleep(0.02)
    assert watch.seconds >= 0.02
    assert float(timer.compute()) == pytest.approx(watch.seconds * 1000 / 2)
    with pytest.raises(ValueError, match="count"):
        timer.update(1.0, 0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        TimePerImage().update(0.1)
