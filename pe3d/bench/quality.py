"""``pe3d bench quality``: how good the shipped models are, per style and per view, against ceilings.

For every style (and for the unedited prior, the row ``prior``) on held-out world identities,
each method's renders at the input camera and at the novel views are compared with the
ground truth (the style filter applied to the world's render at that camera):

* ``ours (train prompt)`` / ``ours (test prompt)``: the distilled editor with one of the style's
  training prompts and one of its *test* prompts (paraphrases never trained on);
* ``two-stage``: the filter on the input, then the prior (the editor's own teacher);
* ``no edit``: the prior on the unedited input (what not editing at all scores);
* ``ceiling``: a triplane per identity fitted directly to ground-truth views (the tested views and
  random others) with the decoder and renderer frozen, until the loss stops falling: the best our
  triplane representation and renderer can do, with no encoder in the way.

Besides PSNR / SSIM (and LPIPS when local weights exist) per view, it reports the depth error,
ours against the teacher's renders (PSNR), and a picture grid per style.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor
from tqdm.auto import tqdm

from pe3d.bench.config import CeilingConfig, QualityBenchmark
from pe3d.bench.evaluation import _resize, filter_edit, view_name
from pe3d.bench.plots import GridRow, image_grid
from pe3d.bench.report import BenchOutput, Column, Missing, ResultTable, label
from pe3d.metrics.ground_truth import GroundTruthViews, psnr

PRIOR_ROW = "prior"
"""The pseudo-style of the unedited prior (its target is the unedited ground truth)."""


def _views(cfg: QualityBenchmark) -> dict[str, tuple[float, float]]:
    cams = [(0.0, 0.0)] + [(y, 0.0) for y in cfg.novel_yaws_deg] + [(0.0, p) for p in cfg.novel_pitches_deg]
    return {view_name(*c): c for c in cams}


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


class _Scores:
    """One :class:`GroundTruthViews` per view for one (style, method)."""

    def __init__(self, views: list[str], lpips) -> None:
        self.views = {name: GroundTruthViews(lpips) for name in views}
        self.has_lpips = lpips is not None
        self.vs_teacher: list[Tensor] = []

    def update(self, name: str, render, target) -> None:
        self.views[name].update(render.image.clamp(0, 1), target.image, render.depth, target.depth, target.mask)

    def row(self) -> dict:
        values = {name: metric.compute() for name, metric in self.views.items()}
        novel = [n for n in values if n != "input"]
        out: dict = {f"psnr_{n}": float(v["psnr"]) for n, v in values.items()}
        out["psnr_novel"] = sum(out[f"psnr_{n}"] for n in novel) / max(1, len(novel))
        out["ssim_input"] = float(values["input"]["ssim"])
        out["ssim_novel"] = sum(float(values[n]["ssim"]) for n in novel) / max(1, len(novel))
        out["lpips_novel"] = (sum(float(values[n]["lpips"]) for n in novel) / max(1, len(novel))
                              if self.has_lpips else Missing("no LPIPS weights"))
        out["depth_error"] = sum(float(v["depth_error"]) for v in values.values()) / len(values)
        out["psnr_vs_teacher"] = float(torch.cat(self.vs_teacher).mean()) if self.vs_teacher else Missing("ours only")
        return out


def fit_ceiling(renderer, init: Tensor, targets: dict, cfg: CeilingConfig, generator: torch.Generator) -> tuple[Tensor, int]:
    """Fit triplanes ``init [N,3,C,R,R]`` to ``targets`` (view name -> :class:`~pe3d.metrics.ViewTarget`
    with ``N`` rows); returns the fitted planes and the number of steps run."""
    from pe3d.losses import ImageLoss, ImageLossConfig
    from pe3d.systems.common import DilatedRays

    names = list(targets)
    planes = init.detach().clone().requires_grad_(True)
    optimiser = torch.optim.Adam([planes], lr=cfg.lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, cfg.max_steps, eta_min=cfg.lr * 0.05)
    loss_fn = ImageLoss(ImageLossConfig(l2=1.0, l1=0.5, perceptual="none", perceptual_weight=0.0))
    losses: list[float] = []
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
        losses.append(float(loss.detach()))
        p = cfg.patience
        if len(losses) >= 2 * p and step >= cfg.max_steps // 4:
            recent, before = sum(losses[-p:]) / p, sum(losses[-2 * p:-p]) / p
            if before - recent < cfg.tolerance * before:
                break
    renderer.eval()
    return planes.detach(), step


@torch.no_grad()
def run_quality(cfg: QualityBenchmark, out: Path) -> BenchOutput:
    """Score every method per style and view; one table, one grid per style."""
    from pe3d.bench.evaluation import _optional_lpips
    from pe3d.bench.methods import OursMethod
    from pe3d.metrics import build_world_targets
    from pe3d.models.editor import load_editor
    from pe3d.models.prior import load_prior
    from pe3d.recipes.eval_editor import style_filter_name
    from pe3d.styles.discovery import load_named_style
    from pe3d.weights import resolve_weights

    views = _views(cfg)
    names = list(views)
    prior = load_prior(resolve_weights(cfg.prior, "prior_mini")).eval()
    editor = load_editor(resolve_weights(cfg.editor, "editor_mini")).eval()
    ours = OursMethod(editor)
    lpips, _ = _optional_lpips(cfg.metrics)
    generator = torch.Generator().manual_seed(cfg.world_seed)
    fit_cams = _fit_cameras(cfg, generator)
    table = ResultTable(cfg.title or "Quality per style and view", _columns(names))
    figures: list[Path] = []
    ceiling_steps: list[int] = []
    rows_by_method: dict[str, list[dict]] = {}
    cases = [(PRIOR_ROW, None, None)] + [(s, *_style_case(load_named_style(s), cfg.prompt_index, style_filter_name)) for s in cfg.styles]
    for style, filter_name, prompts in tqdm(cases, desc="quality styles", disable=not cfg.progress):
        targets = build_world_targets(filter_name, cfg.identities, cfg.resolution, cfg.world_seed, {**views, **fit_cams})
        inputs = _resize(targets.views["input"].source, prior.cfg.encoder.image_size)
        edit_2d = inputs if filter_name is None else filter_edit(filter_name, _input_parts(cfg, targets), inputs)
        teacher_planes = prior(edit_2d)
        methods: dict[str, Tensor] = {"prior (reconstruction)": teacher_planes}
        if filter_name is not None:
            methods = {"ours (train prompt)": ours.editor(inputs, _prompts(prompts[0], len(inputs))),
                       "ours (test prompt)": ours.editor(inputs, _prompts(prompts[1], len(inputs))),
                       "two-stage": teacher_planes, "no edit": prior(inputs)}
        scored: dict[str, _Scores] = {}
        renders: dict[str, dict] = {}
        for method, planes in methods.items():
            renderer = editor.render if method.startswith("ours") else prior.render
            scores = _Scores(names, lpips)
            renders[method] = {}
            for name in names:
                render = renderer(planes, targets.views[name].labels, resolution=cfg.resolution)
                renders[method][name] = render
                scores.update(name, render, targets.views[name])
            scored[method] = scores
        for method in [m for m in methods if m.startswith("ours")]:
            for name in names:
                scored[method].vs_teacher.append(psnr(renders[method][name].image, renders["two-stage"][name].image.clamp(0, 1)))
        if cfg.ceiling.enabled:
            k = min(cfg.ceiling.identities, cfg.identities)
            fit_targets = {name: _first(view, k) for name, view in targets.views.items()}
            planes, steps = fit_ceiling(prior.renderer, teacher_planes[:k], fit_targets, cfg.ceiling, generator)
            ceiling_steps.append(steps)
            scores = _Scores(names, lpips)
            renders["ceiling"] = {}
            for name in names:
                render = prior.render(planes, fit_targets[name].labels, resolution=cfg.resolution)
                renders["ceiling"][name] = render
                scores.update(name, render, fit_targets[name])
            scored[f"ceiling ({k} ids)"] = scores
        for method, scores in scored.items():
            row = {"style": style, "method": method, **scores.row()}
            table.add_known(row)
            rows_by_method.setdefault(method.split(" (")[0] if method.startswith("ceiling") else method, []).append(row)
        figures.append(_style_grid(style, prompts, targets, names, renders, cfg, out))
    for method, rows in rows_by_method.items():
        styled = [r for r in rows if r["style"] != PRIOR_ROW]
        if len(styled) > 1:
            table.add_known(_mean_row(styled, method, names))
    table.notes += _notes(cfg, ceiling_steps, lpips is not None)
    return BenchOutput([table], figures)


def _style_case(spec, index: int, filter_name_of) -> tuple[str, tuple[str, str]]:
    train = list(spec.prompts.train)
    test = list(spec.prompts.test or spec.prompts.train)
    return filter_name_of(spec), (train[index % len(train)], test[index % len(test)])


def _prompts(text: str, count: int):
    from pe3d.models.editor import Prompts

    return Prompts(texts=[text] * count)


def _first(view, k: int):
    from dataclasses import replace

    return replace(view, labels=view.labels[:k], source=view.source[:k], image=view.image[:k], depth=view.depth[:k], mask=view.mask[:k])


def _input_parts(cfg: QualityBenchmark, targets) -> Tensor:
    """Part labels of the input views (the filter-based 2D editor needs them; the targets keep none)."""
    from pe3d.world import render_identities

    return render_identities(targets.identities, targets.views["input"].labels, cfg.resolution).parts


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


def _style_grid(style: str, prompts, targets, names: list[str], renders: dict, cfg: QualityBenchmark, out: Path) -> Path:
    rows = []
    for i in range(min(cfg.grid_identities, cfg.identities)):
        rows.append(GridRow(f"id {i}: input", [targets.views["input"].source[i]]))
        rows.append(GridRow(f"id {i}: target", [targets.views[n].image[i] for n in names]))
        for method, by_view in renders.items():
            if method == "ceiling" and i >= by_view[names[0]].image.shape[0]:
                continue
            rows.append(GridRow(f"id {i}: {method}", [by_view[n].image[i].clamp(0, 1) for n in names]))
    title = style if prompts is None else f"{style}: train \"{prompts[0]}\" / test \"{prompts[1]}\""
    return image_grid(rows, names, out / f"quality_{style}.png", cell=80, title=title)


def _notes(cfg: QualityBenchmark, steps: list[int], has_lpips: bool) -> list[str]:
    views = ", ".join(_views(cfg))
    notes = [
        f"{cfg.identities} held-out world identities (index >= 1,000,000), frontal input, {cfg.resolution}² renders; "
        f"views: {views}. Target: the style filter applied to the world's render at each camera "
        f"(row `{PRIOR_ROW}`: the unedited render). Depth error: mean |Δ| on the true foreground over all views.",
        "ours (train prompt) uses the style's training prompt, ours (test prompt) a paraphrase never trained on; "
        "PSNR vs teacher compares ours' renders with the two-stage teacher's at the same views.",
    ]
    if cfg.ceiling.enabled and steps:
        notes.append(
            f"ceiling: one triplane per identity (the first {min(cfg.ceiling.identities, cfg.identities)}), fitted to "
            f"the {len(_views(cfg))} tested views and {cfg.ceiling.fit_views} random ones with the decoder and renderer "
            f"frozen, from the two-stage triplane; Adam lr {cfg.ceiling.lr} with cosine decay, stopped when the loss of "
            f"the last {cfg.ceiling.patience} steps fell by < {cfg.ceiling.tolerance:.1%} (steps run: "
            f"{min(steps)}–{max(steps)} of at most {cfg.ceiling.max_steps})."
        )
    if not has_lpips:
        notes.append("LPIPS: n/a (no local backbone weights); SSIM is the structural score.")
    return notes


__all__ = ["CeilingConfig", "PRIOR_ROW", "QualityBenchmark", "fit_ceiling", "run_quality"]
