"""Scoring on held-out world identities against exact ground truth: the one code path of
``pe3d demo``, ``pe3d eval`` and ``pe3d bench``.

The protocol, in one place:

* **identities**: ``WorldSplit().heldout_indices(identities, offset)`` of world seed ``world_seed``
  (never seen in training);
* **input**: each identity's frontal render at ``resolution``, world supersampling
  :data:`SUPERSAMPLE` (as the training renders), brought to the model's input size with
  :func:`pe3d.images.resize_images` (:func:`model_inputs`);
* **cameras**: the input camera and the novel views ``yaw +-30 deg`` and ``pitch +-15 deg`` by
  default (:class:`ViewPlan`), rendered at ``resolution``;
* **targets**: the world's render at each camera (the prior), or a style's filter applied to it
  with the render's part labels (an edit) -- rendered once, filtered per style;
* **prompts**: a style's first ``prompts_per_style`` *test* prompts (:func:`style_prompts`);
* **scores**: :class:`pe3d.metrics.GroundTruthViews` (PSNR, SSIM, L1, depth error on the true
  foreground, LPIPS when a network is given) of the clamped renders.

:func:`evaluate_prior` and :func:`evaluate_editor` are the full evaluations; the benchmarks
score their methods with the same pieces (:func:`render_views`, :func:`update_edit_scores`,
:class:`PerViewScores`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import Callable, Mapping, Optional, Sequence

import torch
from torch import Tensor, nn

from pe3d.geometry import label_from_yaw_pitch
from pe3d.images import resize_images
from pe3d.metrics.ground_truth import GroundTruthViews, ViewTarget, WorldTargets, build_world_targets

SUPERSAMPLE = 1
"""World supersampling of every evaluation render (inputs and targets), as in the training renders."""
RENDER_CHUNK = 8
"""Identities rendered per call (bounds memory; every path renders in the same chunks)."""
DEFAULT_STYLES = ["bronze_statue", "zombie", "blue_hair"]
"""Styles a :class:`WorldEvalConfig` scores unless told otherwise."""


@dataclass
class WorldEvalConfig:
    """Held-out world identities, styles and cameras every model, method or variant is scored on.

    The input is the frontal render of each identity; ground truth at every camera is the
    style's filter applied to the world's render there (exact, since filters are local).
    """

    identities: int = 8
    world_seed: int = 0
    offset: int = 0
    """First held-out position (identity index = 1,000,000 + offset + i)."""
    resolution: int = 64
    """Side of the renders and ground-truth views compared."""
    styles: list[str] = field(default_factory=lambda: list(DEFAULT_STYLES))
    prompts_per_style: int = 2
    """How many of each style's *test* prompts are used (the first ones); 0 or less: all of them."""
    novel_yaws_deg: list[float] = field(default_factory=lambda: [-30.0, 30.0])
    novel_pitches_deg: list[float] = field(default_factory=lambda: [-15.0, 15.0])


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
    """Name -> ``(yaw, pitch)`` in degrees; ``input`` first."""
    novel: list[str]
    consistency: list[str]

    @classmethod
    def build(cls, world: WorldEvalConfig, consistency_yaws_deg: Sequence[float] = (),
              extra: Optional[Mapping[str, tuple[float, float]]] = None) -> "ViewPlan":
        """The input camera, the novel views of ``world``, the consistency yaws (pitch 0) and ``extra``
        named cameras (rendered as ground truth, not scored)."""
        novel = [(y, 0.0) for y in world.novel_yaws_deg] + [(0.0, p) for p in world.novel_pitches_deg]
        consistency = [(y, 0.0) for y in consistency_yaws_deg]
        cameras = {view_name(*c): (float(c[0]), float(c[1])) for c in [(0.0, 0.0), *novel, *consistency]}
        cameras.update(extra or {})
        return cls(cameras, [view_name(*c) for c in novel], [view_name(*c) for c in consistency])

    @property
    def scored(self) -> list[str]:
        """``input`` and the novel views."""
        return ["input", *self.novel]

    def labels(self, name: str, count: int) -> Tensor:
        """``[count, 25]`` labels of one named camera."""
        yaw, pitch = self.cameras[name]
        return label_from_yaw_pitch([math.radians(yaw)] * count, [math.radians(pitch)] * count)


def style_filter_name(spec) -> str:
    """The world filter behind a ``filter`` style (errors for styles that have none)."""
    name = spec.params.get("filter") if spec.generator == "filter" else None
    if not name:
        raise ValueError(f"style {spec.name!r}: ground-truth scoring needs a 'filter' style (generator={spec.generator!r})")
    return str(name)


def style_prompts(spec, count: int = 0, split: str = "test") -> list[str]:
    """The first ``count`` prompts (all when ``count <= 0``) of a style's ``test`` prompts (its
    training prompts when it has no test prompts) or, with ``split="train"``, of its training prompts."""
    if split not in ("test", "train"):
        raise ValueError(f"split must be 'test' or 'train', got {split!r}")
    prompts = list(spec.prompts.train) if split == "train" else list(spec.prompts.test or spec.prompts.train)
    return prompts if count <= 0 else prompts[:count]


def edited_targets(truth: WorldTargets, edit: Callable[[Tensor, Optional[Tensor]], Tensor], name: Optional[str] = None) -> WorldTargets:
    """``truth`` (unfiltered views with part labels) with ``edit(source [B,3,R,R], parts [B,R,R])`` as every
    view's target image: the exact 3D edit of a style whose 2D editor is local (a world filter, or a
    style plugin's own recolouring)."""
    views = {view_name: replace(view, image=edit(view.source, view.parts)) for view_name, view in truth.views.items()}
    return WorldTargets(truth.identities, name, views)


def filter_targets(truth: WorldTargets, filter_name: Optional[str]) -> WorldTargets:
    """``truth`` with the world filter ``filter_name`` applied to every view (``truth`` itself for ``None``)."""
    from pe3d.world import apply_style_filter

    if filter_name is None:
        return truth
    return edited_targets(truth, lambda source, parts: apply_style_filter(filter_name, source, parts), filter_name)


@dataclass
class WorldCase:
    """One style and one of its test prompts, with the ground truth of every planned camera."""

    style: str
    filter_name: str
    prompt: str
    targets: WorldTargets
    """The style's :class:`pe3d.metrics.WorldTargets` (shared by its prompts)."""


@dataclass
class WorldEvalSet:
    """Held-out identities: their frontal inputs (with part labels for the 2D editor), the unedited
    ground truth at every planned camera and one case per (style, prompt)."""

    truth: WorldTargets
    """Unfiltered ground truth at every camera of :attr:`plan` (what a prior is scored against)."""
    cases: list[WorldCase]
    plan: ViewPlan
    resolution: int

    @property
    def rgb(self) -> Tensor:
        """``[N, 3, R, R]`` frontal renders (the portraits the models receive, before :func:`model_inputs`)."""
        return self.truth.views["input"].source

    @property
    def parts(self) -> Tensor:
        """``[N, R, R]`` their part labels (the filter-based 2D editor uses them, as the pair generator does)."""
        return self.truth.views["input"].parts

    @property
    def labels(self) -> Tensor:
        """``[N, 25]`` the input cameras."""
        return self.truth.views["input"].labels

    @property
    def count(self) -> int:
        """Number of identities."""
        return self.rgb.shape[0]


def build_world_eval_set(world: WorldEvalConfig, consistency_yaws_deg: Sequence[float] = (),
                         styles: Optional[Sequence[str]] = None,
                         extra_cameras: Optional[Mapping[str, tuple[float, float]]] = None) -> WorldEvalSet:
    """Render inputs and ground truth for ``world`` (``styles`` overrides ``world.styles``; ``[]`` for
    a prior-only set). Every camera is rendered once; each style filters those renders."""
    from pe3d.styles.discovery import load_named_style

    if world.identities < 1:
        raise ValueError(f"world.identities must be >= 1, got {world.identities}")
    plan = ViewPlan.build(world, consistency_yaws_deg, extra_cameras)
    truth = build_world_targets(None, world.identities, world.resolution, world.world_seed, plan.cameras,
                                supersample=SUPERSAMPLE, offset=world.offset)
    cases = []
    for style in styles if styles is not None else world.styles:
        spec = load_named_style(style)
        filter_name = style_filter_name(spec)
        targets = filter_targets(truth, filter_name)
        cases += [WorldCase(style, filter_name, prompt, targets) for prompt in style_prompts(spec, world.prompts_per_style)]
    return WorldEvalSet(truth, cases, plan, world.resolution)


def model_inputs(data: WorldEvalSet, size: int) -> Tensor:
    """``[N, 3, size, size]``: the frontal inputs at a model's input size (:func:`pe3d.images.resize_images`)."""
    return resize_images(data.rgb, size)


def edit_with_prompt(editor: nn.Module, images: Tensor, prompt: str) -> Tensor:
    """The editor's triplanes of ``images [B,3,S,S]`` under one text ``prompt`` (one batch)."""
    from pe3d.models.editor import Prompts

    return editor(images, Prompts(texts=[prompt] * images.shape[0]))


Renderer = Callable[..., object]
"""``render(planes [B,...], labels [B,25], resolution=R) -> RenderOutput`` (a model's or a method's)."""


@torch.no_grad()
def render_views(render: Renderer, planes: Tensor, views: Mapping[str, ViewTarget], names: Sequence[str], resolution: int) -> dict:
    """Render ``planes`` at each named view's cameras, :data:`RENDER_CHUNK` identities per call;
    returns name -> ``RenderOutput`` (``image``, ``depth`` for every identity)."""
    out = {}
    for name in names:
        labels = views[name].labels
        chunks = [render(planes[i : i + RENDER_CHUNK], labels[i : i + RENDER_CHUNK], resolution=resolution)
                  for i in range(0, planes.shape[0], RENDER_CHUNK)]
        out[name] = chunks[0] if len(chunks) == 1 else _cat_renders(chunks)
    return out


def _cat_renders(chunks: list):
    first = chunks[0]
    fields = {k: torch.cat([getattr(c, k) for c in chunks]) for k, v in vars(first).items() if isinstance(v, Tensor)}
    return replace(first, **fields)


def update_view(metric: GroundTruthViews, render, target: ViewTarget) -> None:
    """One view's render (``image``, ``depth``) against its ground truth (image, depth on the true foreground)."""
    metric.update(render.image.clamp(0, 1), target.image, render.depth, target.depth, target.mask)


def update_edit_scores(edit: GroundTruthViews, novel: GroundTruthViews, renders: Mapping, views: Mapping[str, ViewTarget],
                       novel_names: Sequence[str]) -> None:
    """The input view into ``edit``, every novel view into ``novel`` (pooled: the mean is over images)."""
    update_view(edit, renders["input"], views["input"])
    for name in novel_names:
        update_view(novel, renders[name], views[name])


class PerViewScores:
    """One :class:`~pe3d.metrics.GroundTruthViews` per named view."""

    def __init__(self, names: Sequence[str], lpips: Optional[nn.Module] = None) -> None:
        self.metrics = {name: GroundTruthViews(lpips) for name in names}

    def update(self, renders: Mapping, views: Mapping[str, ViewTarget]) -> None:
        """Add each named view's render against its ground truth."""
        for name, metric in self.metrics.items():
            update_view(metric, renders[name], views[name])

    def compute(self) -> dict[str, dict[str, float]]:
        """View name -> ``{"psnr", "ssim", "l1", "depth_error"[, "lpips"]}`` means per image."""
        return {name: {k: float(v) for k, v in metric.compute().items()} for name, metric in self.metrics.items()}


@torch.no_grad()
def prompt_psnr(editor: nn.Module, inputs: Tensor, prompt: str, views: Mapping[str, ViewTarget], names: Sequence[str],
                resolution: int) -> float:
    """Mean over the named ``views`` of the editor's PSNR under one text ``prompt`` (the protocol of the prompt
    studies in ``tools/``: ``tools/prompt_sweep.py`` and the reading studies)."""
    return planes_psnr(editor.render, edit_with_prompt(editor, inputs, prompt), views, names, resolution)


def planes_psnr(render: Renderer, planes: Tensor, views: Mapping[str, ViewTarget], names: Sequence[str],
                resolution: int) -> float:
    """Mean over the named ``views`` of the PSNR of ``planes`` rendered by ``render`` (:func:`render_views`)."""
    scores = PerViewScores(names)
    scores.update(render_views(render, planes, views, names, resolution), views)
    return sum(v["psnr"] for v in scores.compute().values()) / len(names)


@dataclass
class ViewScores:
    """Mean scores of one view over identities: the prior and the no-3D baseline (the input shown unchanged)."""

    psnr: float
    depth_error: float
    baseline_psnr: float
    baseline_depth_error: float
    ssim: float = math.nan
    seen_psnr: float = math.nan
    """With ``visibility``: the prior's PSNR on the foreground the input view shows (:mod:`pe3d.metrics.visibility`)."""
    hidden_psnr: float = math.nan
    """... on the foreground the input view hides (NaN at the input view: nothing is hidden there)."""
    hidden_share: float = math.nan
    """... the share of the view's pixels that are hidden foreground."""
    hidden_error_share: float = math.nan
    """... the share of the view's squared error on those pixels."""
    ring_psnr: float = math.nan
    """With ``silhouette``: the prior's PSNR on the ground truth's silhouette ring (:mod:`pe3d.metrics.silhouette`)."""
    off_ring_psnr: float = math.nan
    """... on every other pixel."""
    ring_share: float = math.nan
    """... the share of the view's pixels on the ring."""
    ring_error_share: float = math.nan
    """... the share of the view's squared error on the ring."""
    outline_too_wide: float = math.nan
    """... the share of the view's pixels the prior draws opaque (opacity > 0.5) outside the true mask
    (:func:`pe3d.metrics.silhouette.outline_errors`)."""
    outline_too_narrow: float = math.nan
    """... and transparent inside it."""


@torch.no_grad()
def reconstruct(prior: nn.Module, data: WorldEvalSet) -> Tensor:
    """The prior's triplanes of the held-out inputs (one batch)."""
    prior.eval()
    return prior(model_inputs(data, prior.cfg.encoder.image_size))


@torch.no_grad()
def evaluate_prior(prior: nn.Module, data: WorldEvalSet, visibility: bool = False,
                   silhouette: bool = False) -> dict[str, ViewScores]:
    """Scores per view (``input`` and the novel views) of the prior's reconstruction of each input,
    next to a baseline that cannot do 3D (the input image and its depth map at every view). With
    ``visibility``, also the split of each view into the foreground the input shows and the part it hides
    (:func:`pe3d.metrics.visibility.split_psnr`); with ``silhouette``, the split into the ground truth's
    silhouette ring and the rest (:func:`pe3d.metrics.silhouette.split_ring_psnr`)."""
    names = data.plan.scored
    views = data.truth.views
    renders = render_views(prior.render, reconstruct(prior, data), views, names, data.resolution)
    ours, baseline = PerViewScores(names), PerViewScores(names)
    ours.update(renders, views)
    source = views["input"]
    baseline.update({name: _Shown(source.source, source.depth) for name in names}, views)
    a, b = ours.compute(), baseline.compute()
    scores = {name: ViewScores(a[name]["psnr"], a[name]["depth_error"], b[name]["psnr"], b[name]["depth_error"], a[name]["ssim"])
              for name in names}
    if visibility:
        from pe3d.metrics.visibility import split_psnr

        for name in names:
            split = split_psnr(renders[name].image, views[name], source)
            scores[name] = replace(scores[name], seen_psnr=split.seen_psnr, hidden_psnr=split.hidden_psnr,
                                   hidden_share=split.hidden_share, hidden_error_share=split.hidden_error_share)
    if silhouette:
        from pe3d.metrics.silhouette import outline_errors, split_ring_psnr

        for name in names:
            ring = split_ring_psnr(renders[name].image, views[name].image, views[name].mask)
            outline = outline_errors(renders[name].weights, views[name].mask)
            scores[name] = replace(scores[name], ring_psnr=ring.ring_psnr, off_ring_psnr=ring.off_ring_psnr,
                                   ring_share=ring.ring_share, ring_error_share=ring.ring_error_share,
                                   outline_too_wide=outline.too_wide, outline_too_narrow=outline.too_narrow)
    return scores


@dataclass
class _Shown:
    image: Tensor
    depth: Tensor


@dataclass
class EditScores:
    """Means over identities x the style's cases: the input view (``edit_*``) and the pooled novel views (``novel_*``)."""

    edit_l1: float
    edit_psnr: float
    novel_psnr: float
    edit_ssim: float = math.nan
    novel_ssim: float = math.nan
    novel_depth_error: float = math.nan
    edit_lpips: float = math.nan
    novel_lpips: float = math.nan

    def as_dict(self) -> dict[str, float]:
        """Plain dict (for JSON)."""
        return asdict(self)


@torch.no_grad()
def evaluate_editor(editor: nn.Module, data: WorldEvalSet, style: Optional[str] = None, lpips: Optional[nn.Module] = None) -> EditScores:
    """Score ``editor`` on every case of ``data`` (those of ``style`` when given): each case's prompt on
    every identity in one batch, rendered at the input and novel views against the filtered truth."""
    editor.eval()
    cases = [c for c in data.cases if style is None or c.style == style]
    if not cases:
        raise ValueError(f"no evaluation case for style {style!r} (the set has {sorted({c.style for c in data.cases})})")
    edit, novel = GroundTruthViews(lpips), GroundTruthViews(lpips)
    images = model_inputs(data, editor.cfg.prior.encoder.image_size)
    for case in cases:
        planes = edit_with_prompt(editor, images, case.prompt)
        renders = render_views(editor.render, planes, case.targets.views, data.plan.scored, data.resolution)
        update_edit_scores(edit, novel, renders, case.targets.views, data.plan.novel)
    e = {k: float(v) for k, v in edit.compute().items()}
    n = {k: float(v) for k, v in novel.compute().items()}
    return EditScores(e["l1"], e["psnr"], n["psnr"], e["ssim"], n["ssim"], n.get("depth_error", math.nan),
                      e.get("lpips", math.nan), n.get("lpips", math.nan))


def format_prior_table(scores: Mapping[str, ViewScores]) -> str:
    """Markdown table of :func:`evaluate_prior` results."""
    split = any(not math.isnan(s.seen_psnr) for s in scores.values())
    ring = any(not math.isnan(s.ring_psnr) for s in scores.values())
    extra = " PSNR seen fg | PSNR hidden fg | hidden share | hidden share of sq. error |" if split else ""
    extra += (" PSNR silhouette ring | PSNR off the ring | ring share | ring share of sq. error | outline too wide (%) |"
              " outline too narrow (%) |") if ring else ""
    lines = [
        "| view | PSNR prior (dB) | PSNR baseline (dB) | depth err prior | depth err baseline |" + extra,
        "|---|---|---|---|---|" + "---|" * (4 * split + 6 * ring),
    ]
    for name, s in scores.items():
        row = f"| {name} | {s.psnr:.2f} | {s.baseline_psnr:.2f} | {s.depth_error:.4f} | {s.baseline_depth_error:.4f} |"
        if split:
            row += f" {s.seen_psnr:.2f} | {s.hidden_psnr:.2f} | {s.hidden_share:.3f} | {s.hidden_error_share:.2f} |"
        if ring:
            row += (f" {s.ring_psnr:.2f} | {s.off_ring_psnr:.2f} | {s.ring_share:.3f} | {s.ring_error_share:.2f} |"
                    f" {100 * s.outline_too_wide:.2f} | {100 * s.outline_too_narrow:.2f} |")
        lines.append(row)
    return "\n".join(lines)


__all__ = [
    "DEFAULT_STYLES", "EditScores", "PerViewScores", "RENDER_CHUNK", "SUPERSAMPLE", "ViewPlan", "ViewScores", "WorldCase",
    "WorldEvalConfig", "WorldEvalSet", "build_world_eval_set", "edit_with_prompt", "edited_targets", "evaluate_editor",
    "evaluate_prior", "filter_targets", "format_prior_table", "model_inputs", "reconstruct", "render_views", "style_filter_name",
    "style_prompts", "update_edit_scores", "update_view", "view_name",
]
