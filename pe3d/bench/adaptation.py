"""Adaptation study (paper Sec. 4.4, Table 2): pair count x training time of norm-only adaptation.

For each pair count the style is adapted with ``pe3d fit adapt`` while a callback snapshots the
adapter whenever the training clock passes a checkpoint; the snapshots are scored afterwards on
held-out identities against ground truth. Minute 0 is the base editor before adaptation.

The paper reports LPIPS; LPIPS needs a torchvision backbone that is not downloaded here, so
without local weights the perceptual distance is ``1 - SSIM`` (lower is better, like LPIPS), and
the table says which one it shows.
"""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path

import lightning as L
from omegaconf import OmegaConf
from tqdm.auto import tqdm

from pe3d.bench.config import AdaptationBenchmark
from pe3d.bench.evaluation import _optional_lpips
from pe3d.bench.plots import line_plot
from pe3d.bench.report import BenchOutput, Column, ResultTable, label
from pe3d.bench.reuse import (
    inputs_fingerprint,
    matches_fingerprint,
    prior_file_hash,
    record_fingerprint,
    resolved_styles,
)
from pe3d.config import ConfigError, load_structured
from pe3d.evaluation.world import WorldEvalSet, build_world_eval_set, evaluate_editor
from pe3d.io import atomic_write_text
from pe3d.recipes.editing import AdaptFitConfig

SNAPSHOTS_FILE = "checkpoints.json"
"""Written into each run folder when its snapshots are complete: checkpoint -> file, step, minutes."""


class TimeCheckpoints(L.Callback):
    """Snapshot the adapter when the training clock (from ``on_train_start``) passes each checkpoint;
    stop training after the last one. Checkpoints not reached when training ends (step limit)
    are taken from the final state and marked ``reached: false``."""

    def __init__(self, minutes: list[float], folder: Path, style: str, base_hash: str) -> None:
        self.minutes = sorted(float(m) for m in minutes)
        self.folder, self.style, self.base_hash = Path(folder), style, base_hash
        self.records: list[dict] = []
        self._started = 0.0
        self._pending: list[float] = []

    def on_train_start(self, trainer, pl_module) -> None:
        self._started = time.perf_counter()
        self._pending = list(self.minutes)
        self.records = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        elapsed = (time.perf_counter() - self._started) / 60
        while self._pending and elapsed >= self._pending[0]:
            self._snapshot(pl_module, self._pending.pop(0), trainer.global_step, elapsed, True)
        if not self._pending:
            trainer.should_stop = True

    def on_train_end(self, trainer, pl_module) -> None:
        elapsed = (time.perf_counter() - self._started) / 60
        while self._pending:
            self._snapshot(pl_module, self._pending.pop(0), trainer.global_step, elapsed, False)
        atomic_write_text(self.folder / SNAPSHOTS_FILE, json.dumps(self.records, indent=2))

    def _snapshot(self, pl_module, minutes: float, step: int, elapsed: float, reached: bool) -> None:
        from pe3d.styles.adapters import adapter_parameter_names, save_adapter

        editor = pl_module.editor
        names = adapter_parameter_names(editor, pl_module.adapter_parameters())
        path = save_adapter(self.folder / f"adapter-{minutes:g}min.safetensors", editor, names, self.style, self.base_hash,
                            kind=pl_module.adapter_kind)
        self.records.append({"minutes": minutes, "file": path.name, "step": int(step), "elapsed_minutes": elapsed, "reached": reached})


def adapt_config(cfg: AdaptationBenchmark, pairs: int, out: Path) -> AdaptFitConfig:
    """The ``fit adapt`` config of one pair count: the shared settings plus its folder and time limit."""
    if pairs < 1:
        raise ConfigError(f"adaptation: pair_counts must be >= 1, got {pairs}")
    run_dir = out / "runs" / f"pairs-{pairs}"
    limit = max(cfg.checkpoints_min) * 1.1 + 0.1
    fixed = [f"num_pairs={pairs}", f"out={run_dir}", f"export={run_dir / 'adapter.safetensors'}",
             f"pairs_dir={out / 'pairs'}", f"trainer.max_minutes={limit}"]
    return load_structured(AdaptFitConfig, [OmegaConf.to_container(OmegaConf.structured(cfg.adapt))], fixed)


def adapt_fingerprint(adapt: AdaptFitConfig, checkpoints: list[float], base_hash: str) -> str:
    """Fingerprint of what trains one run: its config, the style's resolved settings (its ``adapt``
    defaults fill what the config leaves unset), the base editor and the prior file."""
    style = resolved_styles([adapt.style], adapt.style_dirs, adapt.style_overrides)
    return inputs_fingerprint(adapt, style, sorted(checkpoints), base_hash, prior_file_hash(adapt.prior))


def train_with_snapshots(adapt: AdaptFitConfig, checkpoints: list[float], base_hash: str) -> tuple[list[dict], bool]:
    """Snapshots of one run and whether they were trained now: read back when an earlier run
    completed them from the same inputs (:func:`adapt_fingerprint`), otherwise (re)trained from scratch."""
    from pe3d.recipes.editing import fit_adapt

    folder = Path(adapt.out)
    record_file = folder / SNAPSHOTS_FILE
    fingerprint = adapt_fingerprint(adapt, checkpoints, base_hash)
    if record_file.is_file() and matches_fingerprint(folder, fingerprint):
        records = json.loads(record_file.read_text())
        if sorted(r["minutes"] for r in records) == sorted(checkpoints) and all((folder / r["file"]).is_file() for r in records):
            return records, False
    record_file.unlink(missing_ok=True)
    record_fingerprint(folder, fingerprint)
    callback = TimeCheckpoints(checkpoints, folder, adapt.style, base_hash)
    fit_adapt(adapt, resume=False, callbacks=[callback])
    return callback.records, True


def run_adaptation(cfg: AdaptationBenchmark, out: Path) -> BenchOutput:
    """Adapt with every pair count, score every snapshot, write Table 2 and the plot."""
    from pe3d.models.checkpoints import model_hash
    from pe3d.models.editor import load_editor
    from pe3d.recipes.editing import ensure_pairs
    from pe3d.styles.adapters import load_adapter_into
    from pe3d.weights import resolve_weights

    if not cfg.pair_counts or not cfg.checkpoints_min or min(cfg.checkpoints_min) <= 0:
        raise ConfigError("adaptation: pair_counts and checkpoints_min must be non-empty, checkpoints > 0 minutes")
    unknown = sorted(set(cfg.table_metrics) - set(SCORE_COLUMNS))
    if unknown or not cfg.table_metrics:
        raise ConfigError(f"adaptation: table_metrics must be a non-empty list of {sorted(SCORE_COLUMNS)}, got {list(cfg.table_metrics)}")
    style = cfg.adapt.style
    base_path = resolve_weights(cfg.adapt.base, "editor_mini")
    base_editor = load_editor(base_path)
    base_hash = model_hash(base_editor)
    data = build_world_eval_set(cfg.world, [], styles=[style])
    lpips, _ = _optional_lpips(cfg.metrics)
    ensure_pairs(style, str(out / "pairs"), max(cfg.pair_counts))
    base_scores = _score(base_editor, data, lpips)
    long = ResultTable("Adaptation runs: every metric at every checkpoint", [
        Column("pairs", "pairs", "{:.0f}"), Column("minutes", "minutes", "{:g}"), Column("elapsed_minutes", "elapsed min", "{:.2f}"),
        Column("step", "steps", "{:.0f}"), label("reached", "reached"), *SCORE_COLUMNS.values(),
    ])
    reused: list[int] = []
    for pairs in tqdm(cfg.pair_counts, desc="adaptation pair counts", disable=not cfg.progress):
        adapt = adapt_config(cfg, pairs, out)
        records, trained = train_with_snapshots(adapt, cfg.checkpoints_min, base_hash)
        if not trained:
            reused.append(pairs)
        long.add(pairs=pairs, minutes=0.0, elapsed_minutes=0.0, step=0, reached="base editor", **base_scores)
        for record in sorted(records, key=lambda r: r["minutes"]):
            editor = copy.deepcopy(base_editor)
            load_adapter_into(editor, Path(adapt.out) / record["file"], base_hash)
            long.add(pairs=pairs, minutes=record["minutes"], elapsed_minutes=record["elapsed_minutes"], step=record["step"],
                     reached="yes" if record["reached"] else "no (step limit)", **_score(editor, data, lpips))
    distance = "LPIPS" if lpips is not None else "1 − SSIM"
    long.notes.append(f"perceptual distance = {distance} over the input view and the novel views {', '.join(data.plan.novel)}.")
    if reused:
        long.notes.append(f"Snapshots reused from an earlier run of this benchmark (not retrained) for pair counts {reused}.")
    tables, plots = [], []
    for key in cfg.table_metrics:
        name = distance if key == "distance" else SCORE_COLUMNS[key].header
        tables.append(_table2(cfg, long, key, name))
        plots.append(_plot(cfg, long, key, name, out / f"adaptation_{key}_vs_time.png"))
    return BenchOutput([*tables, long], plots)


SCORE_COLUMNS = {
    "distance": Column("distance", "perceptual distance", "{:.4f}", better="lower"),
    "edit_psnr": Column("edit_psnr", "edit PSNR (dB)", "{:.2f}", better="higher"),
    "novel_psnr": Column("novel_psnr", "novel-view PSNR (dB)", "{:.2f}", better="higher"),
    "novel_depth_error": Column("novel_depth_error", "novel-view depth err", "{:.4f}", better="lower"),
}
"""What each snapshot is scored with (``table_metrics`` picks among these keys)."""


def _plot(cfg: AdaptationBenchmark, long: ResultTable, key: str, name: str, path: Path) -> Path:
    curves = {}
    for pairs in cfg.pair_counts:
        rows = [row for row in long.rows if row["pairs"] == pairs]
        curves[f"{pairs} pairs"] = ([row["elapsed_minutes"] for row in rows], [row[key] for row in rows])
    better = "lower" if SCORE_COLUMNS[key].better == "lower" else "higher"
    return line_plot(curves, path, "training minutes (this machine)", f"{name} ({better} is better)",
                     title=f"Norm-only adaptation to {cfg.adapt.style}")


def _score(editor, data: WorldEvalSet, lpips) -> dict[str, float]:
    """:func:`pe3d.evaluation.evaluate_editor` (the demo's and ``pe3d eval editor``'s scores) plus the
    perceptual distance over the input and novel views (LPIPS, or 1 - SSIM without LPIPS weights)."""
    scores = evaluate_editor(editor, data, lpips=lpips)
    views = 1 + len(data.plan.novel)
    edit, novel = (scores.edit_lpips, scores.novel_lpips) if lpips is not None else (1.0 - scores.edit_ssim, 1.0 - scores.novel_ssim)
    return {
        "distance": (edit + (views - 1) * novel) / views,
        "edit_psnr": scores.edit_psnr,
        "novel_psnr": scores.novel_psnr,
        "novel_depth_error": scores.novel_depth_error,
    }


def _table2(cfg: AdaptationBenchmark, long: ResultTable, key: str, name: str) -> ResultTable:
    minutes = [0.0, *sorted(cfg.checkpoints_min)]
    fmt, better = SCORE_COLUMNS[key].fmt, SCORE_COLUMNS[key].better
    columns = [Column("pairs", "#pairs / time", "{:.0f}")]
    columns += [Column(f"t{m:g}", "base editor" if m == 0 else f"{m:g} min", fmt, better=better) for m in minutes]
    title = f"{cfg.title or 'Adaptation'}: {name}"
    table = ResultTable(title, columns)
    for pairs in cfg.pair_counts:
        cells = {f"t{row['minutes']:g}": row[key] for row in long.rows if row["pairs"] == pairs}
        table.add(pairs=pairs, **cells)
    table.notes += [
        f"Style {cfg.adapt.style} (unseen by the base editor); {name} against the ground truth ({better} is better), "
        f"averaged over {cfg.world.identities} held-out identities × {cfg.world.prompts_per_style} test prompt(s)"
        + (" and the input + novel views." if key == "distance" else "."),
        "Time checkpoints are training minutes on this machine (scaled from the paper's 0.1 / 1 / 2 / 5 min on an "
        "A6000 GPU); the step reached at each checkpoint is in the last table.",
    ]
    return table
