"""``pe3d bench quality``: how good the shipped models are, per style and per view, against ceilings.

For every style (and for the unedited prior, the row ``prior``) on held-out world identities,
each method's renders at the input camera and at the novel views are compared with the
ground truth (the style filter applied to the world's render at that camera):

* ``ours (train prompt)`` / ``ours (test prompt)``: the distilled editor with one of the style's
  training prompts and one of its *test* prompts (paraphrases never trained on);
* ``ours (every train prompt)`` / ``ours (every test prompt)`` (``every_prompt``): the same over all
  of the style's training / test prompts, each image scored once per prompt;
* ``two-stage``: the filter on the input, then the prior (the editor's own teacher);
* ``no edit``: the prior on the unedited input (what not editing at all scores);
* ``ceiling``: a triplane per identity fitted directly to ground-truth views (the tested views and
  random others) with the decoder and renderer frozen, until the loss stops falling: the best our
  triplane representation and renderer can do, with no encoder in the way;
* ``ours + refinement (test prompt)`` / ``prior + refinement`` (``refine_steps > 0``): the test-prompt edit
  (or the reconstruction) plus the detail residual fitted to the input (:mod:`pe3d.refinement`), at the
  style's ``refine.strength``: what ``pe3d edit`` gives by default; ``two-stage + refinement``: the teacher
  refined the same way to its own input (the filtered image), the like-for-like reference.

Besides PSNR / SSIM (and LPIPS when local weights exist) per view, it reports the depth error,
ours against the teacher's renders (PSNR), and a picture grid per style.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, NamedTuple, Sequence

import torch
from torch import Tensor
from tqdm.auto import tqdm

from pe3d.bench.config import CeilingConfig, QualityBenchmark
from pe3d.bench.evaluation import filter_edit
from pe3d.bench.plots import GridRow, image_grid
from pe3d.bench.report import BenchOutput, Column, Missing, ResultTable, label
from pe3d.config import ConfigError
from pe3d.evaluation.world import (
    PerViewScores,
    ViewPlan,
    WorldEvalConfig,
    build_world_eval_set,
    edit_with_prompt,
    model_inputs,
    reconstruct,
    render_views,
    style_prompts,
)
from pe3d.metrics.ground_truth import psnr

PRIOR_ROW = "prior"
"""The pseudo-style of the unedited prior (its target is the unedited ground truth)."""


def world_config(cfg: QualityBenchmark, styles: list[str]) -> WorldEvalConfig:
    """The shared evaluation protocol at this benchmark's identities, resolution, cameras and ``styles``
    (every test prompt of each style is a case; the benchmark scores the ``prompt_index``-th)."""
    return WorldEvalConfig(identities=cfg.identities, world_seed=cfg.world_seed, resolution=cfg.resolution, styles=styles,
                           prompts_per_style=0, novel_yaws_deg=list(cfg.novel_yaws_deg),
                           novel_pitches_deg=list(cfg.novel_pitches_deg))


def _views(cfg: QualityBenchmark) -> dict[str, tuple[float, float]]:
    plan = ViewPlan.build(world_config(cfg, []))
    return {name: plan.cameras[name] for name in plan.scored}


def _columns(views: list[str]) -> list[Column]:
    cols = [label("style", "style"), label("method", "method")]
    cols += [Column(f"psnr_{v}", f"PSNR {v}", "{:.2f}", better="higher") for v in views]
    cols += [
        Column("psnr_novel", "PSNR novel mean", "{:.2f}", better="higher"),
        Column("ssim_input", "SSIM input", better="higher"),
        Column("ssim_novel", "SSIM novel", better="higher"),
        Column("lpips_novel", "LPIPS novel", better="lower"),
        Column("depth_error", "depth err (all views)", "{:.4f}", better="lower"),
        Column("psnr_vs_teacher", "PSNR vs teacher renders", "{:.2f}", better="higher"),
    ]
    return cols


class _Scores(PerViewScores):
    """:class:`pe3d.evaluation.PerViewScores` of one (style, method), plus ours against the teacher's renders."""

    def __init__(self, views: list[str], lpips) -> None:
        super().__init__(views, lpips)
        self.has_lpips = lpips is not None
        self.vs_teacher: list[Tensor] = []

    def row(self) -> dict:
        values = self.compute()
        novel = [n for n in values if n != "input"]
        out: dict = {f"psnr_{n}": v["psnr"] for n, v in values.items()}
        out["psnr_novel"] = sum(out[f"psnr_{n}"] for n in novel) / max(1, len(novel))
        out["ssim_input"] = values["input"]["ssim"]
        out["ssim_novel"] = sum(values[n]["ssim"] for n in novel) / max(1, len(novel))
        out["lpips_novel"] = (sum(values[n]["lpips"] for n in novel) / max(1, len(novel))
                              if self.has_lpips else Missing("no LPIPS weights"))
        out["depth_error"] = sum(v["depth_error"] for v in values.values()) / len(values)
        out["psnr_vs_teacher"] = float(torch.cat(self.vs_teacher).mean()) if self.vs_teacher else Missing("ours only")
        return out


class CeilingFit(NamedTuple):
    """What :func:`fit_ceiling` returns.

    Attributes:
        planes: ``[N, 3, C, R, R]`` fitted triplanes (detached).
        steps: optimisation steps run.
        last_gain_db: with convergence checks (``check_every > 0``), how much the mean PSNR over the
            fitted views rose over the last check window (dB; below ``min_gain_db`` when the fit stopped
            converged, larger when ``max_steps`` ended it); ``None`` for the loss-based stop.
        history: ``(step, mean PSNR over the fitted views)`` of every check (empty without checks).
    """

    planes: Tensor
    steps: int
    last_gain_db: float | None
    history: list[tuple[int, float]]


@contextmanager
def _deterministic(renderer) -> Iterator[None]:
    """``renderer`` in eval mode (no sample jitter) without autograd for the block; its mode restored after."""
    was_training = renderer.training
    renderer.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        renderer.train(was_training)


def fitted_views_psnr(renderer, planes: Tensor, targets: dict) -> float:
    """Mean PSNR (dB) of ``planes`` rendered deterministically (eval mode) at every view of ``targets``."""
    with _deterministic(renderer):
        values = [psnr(renderer(planes, view.labels, resolution=view.image.shape[-1]).image, view.image)
                  for view in targets.values()]
    return float(torch.cat(values).mean())


def fit_ceiling(renderer, init: Tensor, targets: dict, cfg: CeilingConfig, generator: torch.Generator,
                extra_parameters: Sequence[torch.nn.Parameter] = (), extra_lr: float = 1e-3,
                on_check: Callable[[int, Tensor], None] | None = None) -> CeilingFit:
    """Fit triplanes ``init [N,3,C,R,R]`` to ``targets`` (view name -> :class:`~pe3d.metrics.ViewTarget`
    with ``N`` rows) until converged (see :class:`~pe3d.bench.config.CeilingConfig`) or ``max_steps``.
    ``extra_parameters`` (e.g. the renderer's decoder, for ``tools/ceiling_study.py``) are fitted with the
    planes, at ``extra_lr``. ``on_check(step, planes)`` is called at every convergence check (step 0
    included; the renderer in eval mode, no autograd), e.g. to score other views along the way
    (``tools/ceiling_convergence.py``)."""
    from pe3d.losses import ImageLoss, ImageLossConfig
    from pe3d.refinement import cosine_lr_schedule
    from pe3d.systems.common import DilatedRays

    names = list(targets)
    planes = init.detach().clone().requires_grad_(True)
    extra = list(extra_parameters)
    groups = [{"params": [planes]}] + ([{"params": extra, "lr": extra_lr}] if extra else [])
    optimiser = torch.optim.Adam(groups, lr=cfg.lr)
    schedule = cosine_lr_schedule(optimiser, cfg.max_steps)
    loss_fn = ImageLoss(ImageLossConfig(l2=1.0, l1=0.5, perceptual="none", perceptual_weight=0.0))
    losses: list[float] = []
    history: list[tuple[int, float]] = []

    def check(step: int) -> bool:
        """Record a convergence check (renderer in eval mode); whether the fit has converged."""
        history.append((step, fitted_views_psnr(renderer, planes, targets)))
        if on_check is not None:
            with _deterministic(renderer):
                on_check(step, planes.detach())
        return _converged(history, cfg)

    if cfg.check_every:
        check(0)
    renderer.train()  # jittered samples while fitting, as in training
    step = 0
    for step in range(1, cfg.max_steps + 1):
        chosen = torch.randperm(len(names), generator=generator)[: cfg.views_per_step].tolist()
        size = targets[names[0]].image.shape[-1]
        rays = DilatedRays(size, cfg.ray_stride, tuple(int(v) for v in torch.randint(cfg.ray_stride, (2,), generator=generator)))
        labels = torch.cat([targets[names[k]].labels for k in chosen])
        truth = torch.cat([rays.crop(targets[names[k]].image) for k in chosen])
        with torch.enable_grad():
            out = rays.render(renderer, planes.repeat(len(chosen), 1, 1, 1, 1), labels)
            loss = loss_fn(out.image, truth)["total"]
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
        optimiser.step()
        schedule.step()
        if cfg.check_every:
            if step % cfg.check_every == 0 or step == cfg.max_steps:
                if check(step):
                    break
            continue
        losses.append(float(loss.detach()))
        p = cfg.patience
        if len(losses) >= 2 * p and step >= cfg.max_steps // 4:
            recent, before = sum(losses[-p:]) / p, sum(losses[-2 * p:-p]) / p
            if before - recent < cfg.tolerance * before:
                break
    renderer.eval()
    gain = None
    if len(history) > 1:
        gain = history[-1][1] - history[max(0, len(history) - 1 - cfg.check_window)][1]
    return CeilingFit(planes.detach(), step, gain, history)


def _converged(history: list[tuple[int, float]], cfg: CeilingConfig) -> bool:
    """Whether the mean PSNR rose by less than ``min_gain_db`` over the last ``check_window`` checks."""
    if len(history) <= cfg.check_window:
        return False
    return history[-1][1] - history[-1 - cfg.check_window][1] < cfg.min_gain_db


@torch.no_grad()
def run_quality(cfg: QualityBenchmark, out: Path) -> BenchOutput:
    """Score every method per style and view; one table, one grid per style."""
    from pe3d.bench.evaluation import _optional_lpips
    from pe3d.models.editor import load_editor
    from pe3d.models.prior import load_prior
    from pe3d.styles.discovery import load_named_style
    from pe3d.weights import resolve_weights

    if cfg.ceiling.enabled and cfg.ceiling.identities < 1:
        raise ConfigError(f"quality: 'ceiling.identities' must be >= 1, got {cfg.ceiling.identities} "
                          "(set ceiling.enabled=false to skip the ceiling)")
    views = _views(cfg)
    names = list(views)
    prior = load_prior(resolve_weights(cfg.prior, "prior_mini")).eval()
    editor = load_editor(resolve_weights(cfg.editor, "editor_mini")).eval()
    lpips, _ = _optional_lpips(cfg.metrics)
    generator = torch.Generator().manual_seed(cfg.world_seed)
    fit_cams = _fit_cameras(cfg, generator)
    table = ResultTable(cfg.title or "Quality per style and view", _columns(names))
    figures: list[Path] = []
    ceiling_fits: list[CeilingFit] = []
    rows_by_method: dict[str, list[dict]] = {}
    data = build_world_eval_set(world_config(cfg, list(cfg.styles)), extra_cameras=fit_cams)
    inputs = model_inputs(data, prior.cfg.encoder.image_size)
    reconstruction = reconstruct(prior, data)  # the prior row's planes, every style's "no edit", the residual's start
    residual = input_residual(editor, data, cfg, reconstruction, data.rgb) if cfg.refine_steps else None
    for style in tqdm([PRIOR_ROW, *cfg.styles], desc="quality styles", disable=not cfg.progress):
        case = None if style == PRIOR_ROW else _style_case(data, style, cfg.prompt_index)
        targets = data.truth if case is None else case.targets
        prompts = spec = edited_input = None
        if case is not None:
            spec = load_named_style(style)
            train = style_prompts(spec, split="train")
            prompts = (train[cfg.prompt_index % len(train)], case.prompt)
            edited_input = filter_edit(case.filter_name, data.parts, inputs)
        teacher_planes = reconstruction if case is None else prior(edited_input)
        methods: dict[str, Tensor] = {"prior (reconstruction)": teacher_planes}
        if case is None and residual is not None:
            methods["prior + refinement"] = teacher_planes + residual
        if case is not None:
            methods = {"ours (train prompt)": edit_with_prompt(editor, inputs, prompts[0]),
                       "ours (test prompt)": edit_with_prompt(editor, inputs, prompts[1]),
                       "two-stage": teacher_planes, "no edit": reconstruction}
            if residual is not None:
                methods["ours + refinement (test prompt)"] = methods["ours (test prompt)"] + spec.refine.strength * residual
                methods["two-stage + refinement"] = teacher_planes + input_residual(editor, data, cfg, teacher_planes,
                                                                                   edited_input)
        scored: dict[str, _Scores] = {}
        renders: dict[str, dict] = {}
        for method, planes in methods.items():
            renderer = editor.render if method.startswith("ours") else prior.render
            renders[method] = render_views(renderer, planes, targets.views, names, cfg.resolution)
            scored[method] = _Scores(names, lpips)
            scored[method].update(renders[method], targets.views)
        for method in [m for m in methods if m.startswith("ours")]:
            for name in names:
                scored[method].vs_teacher.append(psnr(renders[method][name].image, renders["two-stage"][name].image.clamp(0, 1)))
        if case is not None and cfg.every_prompt:
            every = {"train": train, "test": [c.prompt for c in _style_cases(data, style)]}
            ours = {m: scored.pop(m) for m in list(scored) if m.startswith("ours")}
            for split, split_prompts in every.items():
                ours[f"ours (every {split} prompt)"] = _every_prompt_scores(
                    editor, inputs, split_prompts, targets, names, cfg.resolution, renders["two-stage"], lpips)
            scored = {**ours, **scored}
        if cfg.ceiling.enabled:
            k = min(cfg.ceiling.identities, cfg.identities)
            fit_targets = {name: _first(view, k) for name, view in targets.views.items()}
            fit = fit_ceiling(prior.renderer, teacher_planes[:k], fit_targets, cfg.ceiling, generator)
            planes = fit.planes
            ceiling_fits.append(fit)
            renders["ceiling"] = render_views(prior.render, planes, fit_targets, names, cfg.resolution)
            scored[f"ceiling ({k} ids)"] = _Scores(names, lpips)
            scored[f"ceiling ({k} ids)"].update(renders["ceiling"], fit_targets)
        for method, scores in scored.items():
            row = {"style": style, "method": method, **scores.row()}
            table.add_known(row)
            rows_by_method.setdefault(method.split(" (")[0] if method.startswith("ceiling") else method, []).append(row)
        read_test = editor.read_prompt(prompts[1]) if prompts is not None else None
        figures.append(_style_grid(style, prompts, targets, names, renders, cfg, out, read_test))
    for method, rows in rows_by_method.items():
        styled = [r for r in rows if r["style"] != PRIOR_ROW]
        if len(styled) > 1:
            table.add_known(_mean_row(styled, method, names))
    table.notes += _notes(cfg, ceiling_fits, lpips is not None)
    return BenchOutput([table], figures)


def input_residual(editor, data, cfg: QualityBenchmark, planes: Tensor, image: Tensor) -> Tensor:
    """The detail residual that makes ``planes`` (the prior's reconstruction of the held-out inputs, or the two-stage
    teacher's) render like ``image`` (the inputs, or the filtered inputs) at the input camera
    (:func:`pe3d.refinement.fit_detail_residual`, ``cfg.refine_steps`` steps, :class:`RefineConfig`'s other defaults,
    at ``cfg.resolution``): :meth:`pe3d.pipeline.EditPipeline.detail_residual` for the benchmark's batch."""
    from pe3d.refinement import RefineConfig, fit_detail_residual

    refine = RefineConfig(steps=cfg.refine_steps, progress=cfg.progress)
    return fit_detail_residual(editor.render, planes, image, data.labels, refine, frozen=editor, resolution=cfg.resolution,
                               renderer=editor.renderer)


def _every_prompt_scores(editor, inputs: Tensor, prompts: Sequence[str], targets, names: list[str], resolution: int,
                         teacher: dict, lpips) -> _Scores:
    """Ours under each of ``prompts`` in turn, every render scored against the ground truth and against
    the ``teacher``'s renders (the means run over identities and prompts alike)."""
    scores = _Scores(names, lpips)
    for prompt in prompts:
        renders = render_views(editor.render, edit_with_prompt(editor, inputs, prompt), targets.views, names, resolution)
        scores.update(renders, targets.views)
        for name in names:
            scores.vs_teacher.append(psnr(renders[name].image, teacher[name].image.clamp(0, 1)))
    return scores


def _style_cases(data, style: str) -> list:
    """The cases of ``style``, one per test prompt, in the style's order."""
    return [c for c in data.cases if c.style == style]


def _style_case(data, style: str, index: int):
    """The ``index``-th test prompt's case of ``style`` (cycling when the style has fewer)."""
    cases = _style_cases(data, style)
    return cases[index % len(cases)]


def _first(view, k: int):
    from dataclasses import replace

    parts = None if view.parts is None else view.parts[:k]
    return replace(view, labels=view.labels[:k], source=view.source[:k], image=view.image[:k], depth=view.depth[:k], mask=view.mask[:k],
                   parts=parts)


def _fit_cameras(cfg: QualityBenchmark, generator: torch.Generator) -> dict[str, tuple[float, float]]:
    """Extra random cameras (degrees) the ceiling also fits, named ``fit0``, ``fit1``, ..."""
    yaw = (torch.randn(cfg.ceiling.fit_views, generator=generator) * 25).clamp(-40, 40)
    pitch = (torch.randn(cfg.ceiling.fit_views, generator=generator) * 10).clamp(-20, 20)
    return {f"fit{i}": (float(y), float(p)) for i, (y, p) in enumerate(zip(yaw, pitch))}


def _mean_row(rows: list[dict], method: str, names: list[str]) -> dict:
    keys = [f"psnr_{n}" for n in names] + ["psnr_novel", "ssim_input", "ssim_novel", "depth_error", "psnr_vs_teacher", "lpips_novel"]
    out = {"style": f"mean of {len(rows)} styles", "method": method}
    for key in keys:
        values = [r[key] for r in rows if isinstance(r.get(key), (int, float))]
        out[key] = sum(values) / len(values) if values else rows[0].get(key)
    return out


def _style_grid(style: str, prompts, targets, names: list[str], renders: dict, cfg: QualityBenchmark, out: Path,
                read_test: str | None = None) -> Path:
    rows = []
    for i in range(min(cfg.grid_identities, cfg.identities)):
        rows.append(GridRow(f"id {i}: input", [targets.views["input"].source[i]]))
        rows.append(GridRow(f"id {i}: target", [targets.views[n].image[i] for n in names]))
        for method, by_view in renders.items():
            if method == "ceiling" and i >= by_view[names[0]].image.shape[0]:
                continue
            rows.append(GridRow(f"id {i}: {method}", [by_view[n].image[i].clamp(0, 1) for n in names]))
    title = style if prompts is None else f"{style}: train \"{prompts[0]}\" / test \"{prompts[1]}\""
    if prompts is not None and read_test not in (None, prompts[1]):
        title += f"\n(test prompt read as \"{read_test}\")"
    return image_grid(rows, names, out / f"quality_{style}.png", cell=80, title=title)


def _notes(cfg: QualityBenchmark, fits: list[CeilingFit], has_lpips: bool) -> list[str]:
    views = ", ".join(_views(cfg))
    notes = [
        f"{cfg.identities} held-out world identities (index >= 1,000,000), frontal input, {cfg.resolution}² renders; "
        f"views: {views}. Target: the style filter applied to the world's render at each camera "
        f"(row `{PRIOR_ROW}`: the unedited render). Depth error: mean |Δ| on the true foreground over all views.",
        "ours (train prompt) uses the style's training prompt, ours (test prompt) a paraphrase never trained on; "
        "PSNR vs teacher compares ours' renders with the two-stage teacher's at the same views.",
    ]
    if cfg.every_prompt:
        notes.append("ours (every train / test prompt): the same scores over all of the style's training / test "
                     "prompts (each image once per prompt), so that no single paraphrase decides a style's number.")
    if cfg.refine_steps:
        notes.append(f"ours + refinement (test prompt): the test-prompt edit plus the detail residual fitted to each input "
                     f"at its camera in {cfg.refine_steps} steps (pe3d.refinement defaults: a quarter of the rays a step, "
                     "kept to the reconstruction's visual hull and out of its empty space), times the style's "
                     "refine.strength: what `pe3d edit` does by default; prior + refinement: the reconstruction plus "
                     "that residual; two-stage + refinement: the teacher plus a residual fitted the same way to its own "
                     "input, the filtered image (which is the target at the input view).")
    if cfg.ceiling.enabled and fits:
        steps = [f.steps for f in fits]
        if cfg.ceiling.check_every:
            gains = [f.last_gain_db for f in fits if f.last_gain_db is not None]
            stop = (f"stopped when the mean PSNR over the fitted views (eval renders every {cfg.ceiling.check_every} "
                    f"steps) rose by < {cfg.ceiling.min_gain_db:g} dB over {cfg.ceiling.check_window} checks "
                    f"(steps run: {min(steps)}–{max(steps)} of at most {cfg.ceiling.max_steps}; gain over the last "
                    f"window: {min(gains):.2f}–{max(gains):.2f} dB)")
        else:
            stop = (f"stopped when the loss of the last {cfg.ceiling.patience} steps fell by < {cfg.ceiling.tolerance:.1%} "
                    f"(steps run: {min(steps)}–{max(steps)} of at most {cfg.ceiling.max_steps})")
        notes.append(
            f"ceiling: one triplane per identity (the first {min(cfg.ceiling.identities, cfg.identities)}), fitted to "
            f"the {len(_views(cfg))} tested views and {cfg.ceiling.fit_views} random ones with the decoder and renderer "
            f"frozen, from the two-stage triplane; Adam lr {cfg.ceiling.lr} with cosine decay over "
            f"{cfg.ceiling.max_steps} steps, {stop}."
        )
    if not has_lpips:
        notes.append("LPIPS: n/a (no local backbone weights); SSIM is the structural score.")
    return notes


__all__ = ["CeilingConfig", "CeilingFit", "PRIOR_ROW", "QualityBenchmark", "fit_ceiling", "fitted_views_psnr", "input_residual",
           "run_quality"]
