"""Scoring edit methods: on held-out world identities (with ground truth) and on real photos.

World: the input is the frontal render of each held-out identity; the target at every camera
is the style's filter applied to the world's render there (:func:`pe3d.metrics.build_world_targets`).
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

from pe3d.bench.config import MetricsConfig, RealPhotoConfig, WorldEvalConfig
from pe3d.bench.methods import EditMethod, EditRequest
from pe3d.bench.report import Missing
from pe3d.geometry import label_from_yaw_pitch

Score = Union[float, Missing]
"""A measured number, or why it is missing."""


def view_name(yaw_deg: float, pitch_deg: float) -> str:
    """``input`` for the frontal camera, ``yaw+30`` / ``pitch-15`` / ``yaw+15_pitch-10`` otherwise."""
    if yaw_deg == 0 and pitch_deg == 0:
        return "input"
    parts = ([f"yaw{yaw_deg:+.0f}"] if yaw_deg else []) + ([f"pitch{pitch_deg:+.0f}"] if pitch_deg else [])
    return "_".join(parts)


@dataclass
class ViewPlan:
    """Named cameras: which are novel views (scored against ground truth) and which feed the 3D score."""

    cameras: dict[str, tuple[float, float]]
    novel: list[str]
    consistency: list[str]

    @classmethod
    def build(cls, world: WorldEvalConfig, consistency_yaws_deg: list[float]) -> "ViewPlan":
        """The input camera, the novel views of ``world`` and the consistency yaws (pitch 0)."""
        novel = [(y, 0.0) for y in world.novel_yaws_deg] + [(0.0, p) for p in world.novel_pitches_deg]
        consistency = [(y, 0.0) for y in consistency_yaws_deg]
        cameras = {view_name(*c): c for c in [(0.0, 0.0), *novel, *consistency]}
        return cls(cameras, [view_name(*c) for c in novel], [view_name(*c) for c in consistency])

    def labels(self, name: str, count: int) -> Tensor:
        """``[count, 25]`` labels of one named camera."""
        yaw, pitch = self.cameras[name]
        return label_from_yaw_pitch([math.radians(yaw)] * count, [math.radians(pitch)] * count)


@dataclass
class WorldCase:
    """One style and one of its test prompts, with the ground truth of every planned camera."""

    style: str
    filter_name: str
    prompt: str
    targets: object
    """:class:`pe3d.metrics.WorldTargets` of the style (shared by its prompts)."""


@dataclass
class WorldEvalSet:
    """Held-out identities: their frontal inputs (with part labels for the 2D editor) and the cases."""

    rgb: Tensor
    """``[N, 3, R, R]`` frontal renders (the portraits the methods receive)."""
    parts: Tensor
    """``[N, R, R]`` their part labels (the filter-based 2D editor uses them, as the pair generator does)."""
    labels: Tensor
    """``[N, 25]`` the input cameras."""
    cases: list[WorldCase]
    plan: ViewPlan
    resolution: int

    @property
    def count(self) -> int:
        """Number of identities."""
        return self.rgb.shape[0]


def build_world_eval_set(world: WorldEvalConfig, consistency_yaws_deg: list[float], styles: Optional[list[str]] = None) -> WorldEvalSet:
    """Render inputs and ground truth for ``world`` (``styles`` overrides ``world.styles``)."""
    from pe3d.metrics import build_world_targets
    from pe3d.recipes.eval_editor import style_filter_name
    from pe3d.styles.discovery import load_named_style
    from pe3d.world import WorldSplit, render_identities, sample_identity

    if world.identities < 1:
        raise ValueError(f"world.identities must be >= 1, got {world.identities}")
    plan = ViewPlan.build(world, consistency_yaws_deg)
    identities = [sample_identity(world.world_seed, i) for i in WorldSplit().heldout_indices(world.identities, world.offset)]
    labels = plan.labels("input", world.identities)
    inputs = render_identities(identities, labels, world.resolution)
    cases = []
    for style in styles if styles is not None else world.styles:
        spec = load_named_style(style)
        filter_name = style_filter_name(spec)
        targets = build_world_targets(filter_name, world.identities, world.resolution, world.world_seed, plan.cameras, offset=world.offset)
        prompts = list(spec.prompts.test or spec.prompts.train)[: max(1, world.prompts_per_style)]
        cases += [WorldCase(style, filter_name, prompt, targets) for prompt in prompts]
    return WorldEvalSet(inputs.rgb, inputs.parts, labels, cases, plan, world.resolution)


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


def _resize(images: Tensor, size: int) -> Tensor:
    if images.shape[-1] == size:
        return images
    return F.interpolate(images, size=(size, size), mode="area" if images.shape[-1] > size else "bilinear", antialias=False)


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

    Timed methods edit one image at a time, the methods taking turns image by image (so a
    load that changes while they run hits all of them alike); each method's first edit ever is
    an untimed warm-up. Methods whose suite has no timer edit their requests as one batch.
    """
    planes: list[list[Tensor]] = [[] for _ in entries]
    timed = [k for k, (_, suite) in enumerate(entries) if suite.timer is not None]
    for k, (method, suite) in enumerate(entries):
        if suite.timer is None:
            planes[k].append(method.edit_batch(requests[k]))
        elif id(method) not in suite.warmed and requests[k]:
            method.edit_and_render(requests[k][0])
            suite.warmed.add(id(method))
    for i in range(max((len(requests[k]) for k in timed), default=0)):
        for k in timed:
            method, suite = entries[k]
            with suite.timer.measure(count=1):
                planes[k].append(method.edit_and_render(requests[k][i]))
    return [torch.cat(p) for p in planes]


def world_requests(method: EditMethod, case: WorldCase, data: WorldEvalSet) -> list[EditRequest]:
    """One request per identity: its frontal input at the method's input size, the case's prompt, and the
    2D editor (the case's filter with the identity's part labels)."""
    images = _resize(data.rgb, method.input_size)
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
        renders = {name: method.render(planes, views[name].labels, resolution=data.resolution) for name in suite.cameras(data.plan)}
        update_ground_truth(suite.edit, renders["input"], views["input"])
        for name in data.plan.novel:
            update_ground_truth(suite.novel, renders[name], views[name])
        _update_faces(suite, views["input"].source, renders, data.plan.consistency, boxes)
        if suite.clip is not None:
            suite.clip.update(renders["input"].image.clamp(0, 1), texts=[case.prompt] * data.count)
    return all_planes


def update_ground_truth(metric, render, target) -> None:
    """One view's render against its :class:`pe3d.metrics.ViewTarget` (image, depth on the foreground)."""
    metric.update(render.image.clamp(0, 1), target.image, render.depth, target.depth, target.mask)


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
            image = _resize(photo.image[None], method.input_size)
            requests.append([EditRequest(image, photo.camera[None], case.prompt, partial(filter_edit, case.filter_name, None))
                             for case in cases])
        for (method, suite), planes in zip(entries, edit_in_turns(entries, requests)):
            count = planes.shape[0]
            renders = {"input": method.render(planes, photo.camera[None].expand(count, 25), resolution=resolution)}
            for name in plan.consistency if suite.consistency is not None else []:
                renders.setdefault(name, method.render(planes, plan.labels(name, count), resolution=resolution))
            source = _resize(photo.image[None], resolution).expand(count, -1, -1, -1)
            _update_faces(suite, source, renders, plan.consistency)
            if suite.clip is not None:
                suite.clip.update(renders["input"].image.clamp(0, 1), texts=[case.prompt for case in cases])
