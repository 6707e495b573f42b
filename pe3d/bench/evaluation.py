"""Scoring edit methods: on held-out world identities (with ground truth) and on real photos.

World: the held-out set, the inputs, the cameras, the targets, the renders and the ground-truth
scores are those of :mod:`pe3d.evaluation` (the code path ``pe3d demo`` and ``pe3d eval`` use too);
this module adds the benchmark-only parts: several methods side by side, faces, CLIP and time.
Real photos have no ground truth: only identity preservation (``ID_t``), multi-view identity
consistency (3D), ``CLIP_r`` (when CLIP weights exist) and time are measured.

Each edit is timed on its own (batch of one; the methods take turns image by image; the first
edit of a method is a warm-up and not counted), then all edits of a case are rendered together,
untimed, at the scored cameras.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from functools import partial
from typing import Callable, Optional, Union

import torch
import torch.nn.functional as F
from torch import Tensor

from pe3d.bench.config import MetricsConfig, RealPhotoConfig
from pe3d.bench.methods import EditMethod, EditRequest
from pe3d.bench.report import Missing
from pe3d.evaluation.timing import time_in_turns
from pe3d.evaluation.world import (
    ViewPlan,
    WorldCase,
    WorldEvalSet,
    model_inputs,
    render_views,
    update_edit_scores,
)
from pe3d.images import resize_images

Score = Union[float, Missing]
"""A measured number, or why it is missing."""


@dataclass
class RealPhoto:
    """A real portrait, aligned and with its estimated camera."""

    name: str
    image: Tensor
    """``[3, R, R]`` aligned crop in [0, 1]."""
    camera: Tensor
    """``[25]`` estimated camera label."""


def load_real_photos(cfg: RealPhotoConfig) -> list[RealPhoto]:
    """Detect, align and pose each photo of ``cfg`` (``astronaut`` = ``skimage.data.astronaut()``)."""
    from pe3d.faces.portrait import prepare_portrait

    photos = []
    for name in cfg.photos:
        if name == "astronaut":
            from skimage.data import astronaut

            image = torch.from_numpy(astronaut()).permute(2, 0, 1).float() / 255.0
        else:
            from pe3d.images import load_image

            image = load_image(name)
        face = cfg.face if cfg.face in ("", "largest") else int(cfg.face)
        prepared = prepare_portrait(image, cfg.resolution, face=face or None, source=name)
        photos.append(RealPhoto(name, prepared.image, prepared.camera))
    return photos


def filter_edit(filter_name: str, parts: Optional[Tensor], image: Tensor) -> Tensor:
    """The embedded world's 2D editor: ``filter_name`` on ``image [B,3,S,S]`` with part labels
    ``parts [B,R,R]`` (resized to ``S`` by nearest neighbour) or without (real photos)."""
    from pe3d.world import apply_style_filter

    if parts is not None and parts.shape[-1] != image.shape[-1]:
        parts = F.interpolate(parts[:, None].float(), size=image.shape[-2:], mode="nearest")[:, 0].long()
    return apply_style_filter(filter_name, image, parts).clamp(0, 1)


class MetricSuite:
    """Every metric of one method (:meth:`reset` between evaluations).

    Metrics whose networks are not on this machine (LPIPS backbone, CLIP) are left out and
    reported as :class:`Missing` with the reason.
    """

    def __init__(self, cfg: MetricsConfig, faces: bool = True, clip: bool = True, timing: bool = True) -> None:
        from pe3d.metrics import GroundTruthViews, IdentitySimilarity, TimePerImage, ViewConsistency

        self.cfg = cfg
        self.lpips, self.lpips_missing = _optional_lpips(cfg)
        self.edit = GroundTruthViews(self.lpips)
        self.novel = GroundTruthViews(self.lpips)
        self.identity = IdentitySimilarity(cfg.identity_backend, upsample=cfg.face_upsample) if faces else None
        self.consistency = ViewConsistency(cfg.identity_backend, upsample=cfg.face_upsample) if faces else None
        self.clip, self.clip_missing = _optional_clip(cfg) if clip else (None, "not measured")
        self.timer = TimePerImage() if timing else None
        self.warmed: set[int] = set()
        """Methods (by ``id``) whose untimed warm-up edit has run."""

    def reset(self) -> None:
        """Clear every accumulated value (before the next method)."""
        for metric in (self.edit, self.novel, self.identity, self.consistency, self.clip, self.timer):
            if metric is not None:
                metric.reset()

    def cameras(self, plan: "ViewPlan") -> list[str]:
        """The planned cameras this suite needs: input, novel views, and the 3D views when faces are scored."""
        wanted = ["input", *plan.novel, *(plan.consistency if self.consistency is not None else [])]
        return list(dict.fromkeys(wanted))

    def results(self, ground_truth: bool = True) -> dict[str, Score]:
        """Means since the last :meth:`reset`; GT metrics are :class:`Missing` when ``ground_truth`` is False."""
        out: dict[str, Score] = {}
        no_truth = Missing("no ground truth for real photos")
        for prefix, metric in (("edit", self.edit), ("novel", self.novel)):
            values = _quiet(metric.compute) if ground_truth else {}
            for key in ("psnr", "ssim", "depth_error", "lpips"):
                name = f"{prefix}_{key}"
                if key == "lpips" and self.lpips is None:
                    out[name] = Missing(self.lpips_missing)
                elif not ground_truth:
                    out[name] = no_truth
                elif key in values:
                    out[name] = float(values[key])
        if self.identity is not None:
            pairs = int(self.identity.found + self.identity.missed + self.identity.skipped)
            measured = int(self.identity.found + self.identity.missed)
            value = float(_quiet(self.identity.compute))
            out["id_t"] = value if math.isfinite(value) else Missing(f"faces found 0/{pairs}")
            out["id_faces"] = f"{measured}/{pairs} ({int(self.identity.missed)} in the input's face box)"
        if self.consistency is not None:
            value = float(_quiet(self.consistency.compute))
            out["consistency"] = value if math.isfinite(value) else Missing(
                f"no view pair with faces ({int(self.consistency.missed_views)} views without a face)"
            )
            boxed = int(self.consistency.boxed_views)
            in_box = f"{boxed} in the true face box, " if boxed else ""
            out["consistency_pairs"] = f"{int(self.consistency.pairs)} ({in_box}{int(self.consistency.missed_views)} views without a face)"
        out["clip_r"] = float(_quiet(self.clip.compute)) if self.clip is not None else Missing(self.clip_missing)
        if self.timer is not None:
            out["ms_per_image"] = float(self.timer.compute())
        return out


def _quiet(fn: Callable):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return fn()


def _optional_lpips(cfg: MetricsConfig):
    from pe3d.perceptual import PerceptualWeightsNotFound, build_lpips

    try:
        return build_lpips(cfg.lpips_net, cfg.lpips_weights or None), ""
    except PerceptualWeightsNotFound:
        return None, "no LPIPS weights"


def _optional_clip(cfg: MetricsConfig):
    from pe3d.metrics import ClipScore, MetricWeightsMissing

    try:
        return ClipScore(cfg.clip_model, weights=cfg.clip_weights or None), ""
    except MetricWeightsMissing:
        return None, "no CLIP weights"


Scored = tuple[EditMethod, MetricSuite]
"""A method and the metrics it is scored into."""


def edit_in_turns(entries: list[Scored], requests: list[list[EditRequest]]) -> list[Tensor]:
    """Edit ``requests[k]`` with method ``k``; returns the triplanes ``[N, ...]`` per method.

    Timed methods edit one image at a time, the methods taking turns image by image
    (:func:`pe3d.evaluation.time_in_turns`, the speed benchmark's timer); each method's first edit
    ever is an untimed warm-up. Methods whose suite has no timer edit their requests as one batch.
    """
    planes: list[Optional[Tensor]] = [None] * len(entries)
    timed = {k: entries[k] for k, (_, suite) in enumerate(entries) if suite.timer is not None and requests[k]}
    for k, (method, suite) in enumerate(entries):
        if suite.timer is None:
            planes[k] = method.edit_batch(requests[k])
    if timed:
        calls = {k: [partial(method.edit_and_render, request) for request in requests[k]] for k, (method, _) in timed.items()}
        warmup = {k: int(id(method) not in suite.warmed) for k, (method, suite) in timed.items()}
        device = next((m.device for m, _ in timed.values()), None)
        timings, results = time_in_turns(calls, warmup, device)
        for k, (method, suite) in timed.items():
            suite.warmed.add(id(method))
            for seconds in timings[k].seconds:
                suite.timer.update(seconds, 1)
            planes[k] = torch.cat(results[k])
    missing = [entries[k][0].name for k, p in enumerate(planes) if p is None]
    if missing:
        raise ValueError(f"no edit requests for {missing}")
    return planes  # type: ignore[return-value]


def world_requests(method: EditMethod, case: WorldCase, data: WorldEvalSet) -> list[EditRequest]:
    """One request per identity: its frontal input at the method's input size, the case's prompt, and the
    2D editor (the case's filter with the identity's part labels)."""
    images = model_inputs(data, method.input_size)
    return [
        EditRequest(images[i : i + 1], data.labels[i : i + 1], case.prompt, partial(filter_edit, case.filter_name, data.parts[i : i + 1]))
        for i in range(data.count)
    ]


@torch.no_grad()
def score_world_case(entries: list[Scored], case: WorldCase, data: WorldEvalSet) -> list[Tensor]:
    """Edit every identity of ``data`` under ``case`` with each method, render the planned cameras
    and update each method's suite; returns the edited triplanes ``[N, ...]`` per method."""
    all_planes = edit_in_turns(entries, [world_requests(method, case, data) for method, _ in entries])
    views = case.targets.views
    boxes = _true_face_boxes(entries, views, data.plan.consistency)
    for (method, suite), planes in zip(entries, all_planes):
        renders = render_views(method.render, planes, views, suite.cameras(data.plan), data.resolution)
        update_edit_scores(suite.edit, suite.novel, renders, views, data.plan.novel)
        _update_faces(suite, views["input"].source, renders, data.plan.consistency, boxes)
        if suite.clip is not None:
            suite.clip.update(renders["input"].image.clamp(0, 1), texts=[case.prompt] * data.count)
    return all_planes


def _true_face_boxes(entries: list[Scored], views: dict, consistency: list[str]):
    """Face boxes of the unedited ground-truth views at the 3D cameras (``None`` when no suite scores 3D)."""
    suites = [suite for _, suite in entries if suite.consistency is not None]
    if not suites:
        return None
    from pe3d.metrics import face_boxes

    truth = torch.stack([views[name].source for name in consistency], dim=1)
    return face_boxes(truth, upsample=suites[0].cfg.face_upsample)


def _update_faces(suite: MetricSuite, source: Tensor, renders: dict, consistency: list[str], boxes=None) -> None:
    if suite.identity is not None:
        suite.identity.update(source, renders["input"].image.clamp(0, 1))
    if suite.consistency is not None:
        suite.consistency.update(torch.stack([renders[name].image.clamp(0, 1) for name in consistency], dim=1), boxes)


@torch.no_grad()
def score_real_photos(entries: list[Scored], photos: list[RealPhoto], cases: list[WorldCase], plan: ViewPlan,
                      resolution: int) -> None:
    """Edit each real photo under each case's prompt and 2D editor (without part labels) with each
    method; update the identity, consistency, CLIP and time metrics of each method's suite."""
    for photo in photos:
        requests = []
        for method, _ in entries:
            image = resize_images(photo.image[None], method.input_size)
            requests.append([EditRequest(image, photo.camera[None], case.prompt, partial(filter_edit, case.filter_name, None))
                             for case in cases])
        for (method, suite), planes in zip(entries, edit_in_turns(entries, requests)):
            count = planes.shape[0]
            renders = {"input": method.render(planes, photo.camera[None].expand(count, 25), resolution=resolution)}
            for name in plan.consistency if suite.consistency is not None else []:
                renders.setdefault(name, method.render(planes, plan.labels(name, count), resolution=resolution))
            source = resize_images(photo.image[None], resolution).expand(count, -1, -1, -1)
            _update_faces(suite, source, renders, plan.consistency)
            if suite.clip is not None:
                suite.clip.update(renders["input"].image.clamp(0, 1), texts=[case.prompt for case in cases])
