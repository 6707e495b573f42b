"""Loss ablations (paper Sec. 4.4, Fig. 6): one editor per variant, same data and budget, scored on the world.

Every variant is a set of ``key=value`` overrides of the shared distillation config
(``system.loss.lambda_3d=0`` removes ``L3d``, ...). Each variant trains in its own folder,
``runs/<variant>/``; a finished variant (its ``editor.safetensors`` exists) is not trained
again, and an interrupted one continues from its ``last.ckpt``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import lightning as L
import torch
from omegaconf import OmegaConf
from tqdm.auto import tqdm

from pe3d.bench.config import AblationBenchmark, MetricsConfig, VariantConfig
from pe3d.bench.evaluation import MetricSuite, score_world_case
from pe3d.bench.methods import OursMethod
from pe3d.bench.plots import GridRow, depth_image, depth_range, image_grid
from pe3d.bench.report import BenchOutput, Column, Missing, ResultTable, label
from pe3d.bench.reuse import (
    inputs_fingerprint,
    matches_fingerprint,
    prior_file_hash,
    record_fingerprint,
    resolved_styles,
)
from pe3d.config import ConfigError, load_structured
from pe3d.evaluation.world import WorldEvalSet, build_world_eval_set
from pe3d.io import atomic_write_text
from pe3d.recipes.editing import DistillFitConfig

COLUMNS = [
    label("variant", "variant"),
    label("description", "what changes"),
    Column("edit_psnr", "edit PSNR (dB)", "{:.2f}", better="higher"),
    Column("edit_ssim", "edit SSIM", better="higher"),
    Column("edit_depth_error", "input-view depth err", "{:.4f}", better="lower"),
    Column("novel_psnr", "novel-view PSNR (dB)", "{:.2f}", better="higher"),
    Column("novel_ssim", "novel-view SSIM", better="higher"),
    Column("novel_depth_error", "novel-view depth err", "{:.4f}", better="lower"),
    Column("steps", "steps", "{:.0f}"),
    Column("train_minutes", "train min", "{:.1f}"),
]


def variant_config(cfg: AblationBenchmark, variant: VariantConfig, out: Path) -> DistillFitConfig:
    """The distillation config of one variant: the shared settings, the variant's overrides,
    and its own run folder (pairs are shared)."""
    if not variant.name or "/" in variant.name:
        raise ConfigError(f"ablation variant names must be non-empty folder names, got {variant.name!r}")
    base = OmegaConf.to_container(OmegaConf.structured(cfg.distill))
    fixed = [f"out={out / 'runs' / variant.name}", f"pairs_dir={out / 'pairs'}"]
    try:
        return load_structured(DistillFitConfig, [base], [*variant.overrides, *fixed])
    except ConfigError as error:
        raise ConfigError(f"ablation variant {variant.name!r}: {error}") from error


TRAINING_FILE = "training.json"
"""Written into a variant's folder when its training ends: optimizer steps and minutes."""


class TrainingRecord(L.Callback):
    """Writes the optimizer steps and training minutes of a run to ``<folder>/training.json``."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self._started = 0.0

    def on_train_start(self, trainer, pl_module) -> None:
        self._started = time.perf_counter()

    def on_train_end(self, trainer, pl_module) -> None:
        record = {"steps": int(trainer.global_step), "minutes": (time.perf_counter() - self._started) / 60}
        atomic_write_text(self.folder / TRAINING_FILE, json.dumps(record))


def train_variant(cfg: DistillFitConfig) -> tuple[Path, bool]:
    """The variant's editor and whether it was trained now (or continued from ``last.ckpt``);
    ``False`` when an earlier run had already finished it from the same inputs (its config, its
    styles' settings and the prior file: :mod:`pe3d.bench.reuse`); a run from other inputs is
    trained again from scratch."""
    from pe3d.recipes.editing import fit_distill

    editor = Path(cfg.out) / "editor.safetensors"
    styles = resolved_styles(cfg.styles, cfg.style_dirs, cfg.style_overrides)
    fingerprint = inputs_fingerprint(cfg, styles, prior_file_hash(cfg.prior))
    same_inputs = matches_fingerprint(cfg.out, fingerprint)
    if editor.is_file() and same_inputs:
        return editor, False
    # continue a killed run of the same inputs, else start from scratch
    interrupted = same_inputs and (Path(cfg.out) / "checkpoints" / "last.ckpt").is_file()
    record_fingerprint(cfg.out, fingerprint)
    return fit_distill(cfg, resume=interrupted, callbacks=[TrainingRecord(Path(cfg.out))]), True


def training_record(run_dir: Path) -> dict[str, float | Missing]:
    """``steps`` and ``minutes`` of a finished variant (:class:`Missing` when not recorded)."""
    path = run_dir / TRAINING_FILE
    if not path.is_file():
        return {"steps": Missing("not recorded"), "train_minutes": Missing("not recorded")}
    record = json.loads(path.read_text())
    return {"steps": float(record["steps"]), "train_minutes": float(record["minutes"])}


def run_ablation(cfg: AblationBenchmark, out: Path) -> BenchOutput:
    """Train (or reuse) every variant, score it on held-out identities, draw the Fig. 6-like figures."""
    from pe3d.models.editor import load_editor

    if not cfg.variants:
        raise ConfigError("ablation: 'variants' is empty; give at least one {name, overrides}")
    configs = [variant_config(cfg, v, out) for v in cfg.variants]
    styles = cfg.world.styles or list(cfg.distill.styles)
    data = build_world_eval_set(cfg.world, [], styles=styles)
    suite = MetricSuite(MetricsConfig(), faces=False, clip=False, timing=False)
    table = ResultTable(cfg.title or "Loss ablation", list(COLUMNS))
    shown: dict[str, list] = {}
    reused: list[str] = []
    for variant, distill in tqdm(list(zip(cfg.variants, configs)), desc="ablation variants", disable=not cfg.progress):
        path, trained = train_variant(distill)
        if not trained:
            reused.append(variant.name)
        editor = load_editor(path)
        method = OursMethod(editor)
        suite.reset()
        for k, case in enumerate(data.cases):
            (planes,) = score_world_case([(method, suite)], case, data)
            if k == 0:
                shown[variant.name] = _figure_renders(method, planes[: cfg.figure_identities], data)
        table.add_known({
            **suite.results(),
            "variant": variant.name,
            "description": variant.description or (", ".join(variant.overrides) or "full objective"),
            **training_record(Path(distill.out)),
        })
    table.notes += _notes(cfg, data)
    if reused:
        table.notes.append(f"Reused from an earlier run of this benchmark (not retrained; steps and minutes are from that run): "
                           f"{', '.join(reused)}.")
    figures = [_figure(data, shown, i, out / f"ablation_fig6_id{i}.png") for i in range(min(cfg.figure_identities, data.count))]
    return BenchOutput([table], figures)


def figure_views(data: WorldEvalSet) -> list[str]:
    """Cameras of the ablation figure: the input and the yaw novel views (depth at the input and the last)."""
    return ["input", *[name for name in data.plan.novel if name.startswith("yaw")]]


def _figure_renders(method: OursMethod, planes: torch.Tensor, data: WorldEvalSet) -> list[list]:
    """Per identity: the renders at the figure's cameras, then ``(depth, foreground)`` at the first and last."""
    names = figure_views(data)
    renders = {name: method.render(planes, data.plan.labels(name, planes.shape[0]), resolution=data.resolution) for name in names}
    cells = []
    for i in range(planes.shape[0]):
        images = [renders[name].image[i].clamp(0, 1) for name in names]
        depths = [(renders[name].depth[i], renders[name].weights[i] > 0.5) for name in (names[0], names[-1])]
        cells.append(images + depths)
    return cells


def _figure(data: WorldEvalSet, shown: dict[str, list], index: int, path: Path) -> Path:
    case = data.cases[0]
    views = case.targets.views
    names = figure_views(data)
    truth_depths = [(views[name].depth[index], views[name].mask[index]) for name in (names[0], names[-1])]
    ranges = [depth_range(depth, mask) for depth, mask in truth_depths]

    def shade(cells: list) -> list[torch.Tensor]:
        images, depths = cells[: len(names)], cells[len(names):]
        return images + [depth_image(depth, mask, *rng) for (depth, mask), rng in zip(depths, ranges)]

    blank = torch.ones(3, data.resolution, data.resolution)
    rows = [GridRow("ground truth", [data.rgb[index], *shade([views[name].image[index] for name in names] + truth_depths)])]
    rows += [GridRow(name, [blank, *shade(cells[index])]) for name, cells in shown.items() if index < len(cells)]
    columns = ["input", *[f"{name}" if name != "input" else "edit @input" for name in names], "depth @input", f"depth {names[-1]}"]
    return image_grid(rows, columns, path, title=f"{case.style}: \"{case.prompt}\" (held-out identity {index}); "
                      "depth: near = bright, scaled to the true head")


def _notes(cfg: AblationBenchmark, data: WorldEvalSet) -> list[str]:
    d = cfg.distill
    return [
        f"Each variant: `pe3d fit distill` from the shipped prior on {', '.join(d.styles)} ({d.pairs_per_style} pairs each), "
        f"at most {d.trainer.max_steps} steps / {d.trainer.max_minutes:g} min, batch {d.data.batch_size}, "
        f"lr {d.system.optim.lr}; L3d perceptual term: {d.system.loss.image_3d.perceptual}.",
        f"Scored on {data.count} held-out identities × {len(data.cases)} style-prompt cases (test prompts); "
        "ground truth = the style filter on the world's render at each camera; "
        f"novel views: {', '.join(data.plan.novel)}; depth errors are mean |Δ| on the true foreground (flat geometry raises them).",
    ]
