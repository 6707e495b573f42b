"""``pe3d bench CONFIG``: load a benchmark, run it, write its results folder.

The folder holds ``config.yaml`` (the resolved benchmark config), ``results.md`` (header with
the command, the machine and the wall time, then the tables and figures), ``results.csv``
(one per table), the figures (PNG) and ``runs/<run>/`` with each run's resolved config.
"""

from __future__ import annotations

import os
import platform
import shlex
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Sequence

import torch

from pe3d.bench.config import BenchmarkBase, load_benchmark
from pe3d.bench.report import BenchOutput, write_report
from pe3d.config import save_resolved


def machine_description() -> str:
    """E.g. ``2-core x86_64 CPU, no GPU`` or ``16-core x86_64 CPU, NVIDIA H100 80GB HBM3``."""
    cpu = f"{os.cpu_count() or '?'}-core {platform.machine() or 'unknown'} CPU"
    if torch.cuda.is_available():
        return f"{cpu}, {torch.cuda.get_device_name(0)}"
    return f"{cpu}, no GPU"


def _load_average() -> str:
    try:
        return f"{os.getloadavg()[0]:.1f}"
    except OSError:
        return "unknown"


def _runners() -> dict[str, Callable[[BenchmarkBase, Path], BenchOutput]]:
    from pe3d.bench.ablation import run_ablation
    from pe3d.bench.adaptation import run_adaptation
    from pe3d.bench.quality import run_quality
    from pe3d.bench.speed import run_speed
    from pe3d.bench.table1 import run_table1

    return {"table1": run_table1, "ablation": run_ablation, "adaptation": run_adaptation, "speed": run_speed,
            "quality": run_quality}


@dataclass
class BenchRun:
    """A finished benchmark: its resolved config, results folder and what it produced."""

    config: BenchmarkBase
    folder: Path
    output: BenchOutput
    files: dict[str, Path]


def run_benchmark(name: str | Path, out: str | Path | None = None, overrides: Sequence[str] = ()) -> BenchRun:
    """Run the benchmark ``name`` (a YAML path or a name under ``benchmarks/``) into its results folder."""
    cfg = load_benchmark(name, overrides)
    if out is not None:
        cfg.out = str(out)
    folder = Path(cfg.out)
    folder.mkdir(parents=True, exist_ok=True)
    save_resolved(cfg, folder / "config.yaml")
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    load_at_start = _load_average()
    started = time.perf_counter()
    result = _runners()[cfg.kind](cfg, folder)
    minutes = (time.perf_counter() - started) / 60
    command = shlex.join(["pe3d", "bench", str(name), *(["--out", str(out)] if out is not None else []), *overrides])
    header = [
        f"## {cfg.title or Path(str(name)).stem}",
        "",
        *([cfg.note.strip(), ""] if cfg.note.strip() else []),
        f"- command: `{command}`",
        f"- machine: {machine_description()}, torch {torch.__version__}, {torch.get_num_threads()} threads; "
        f"load average {load_at_start} at the start, {_load_average()} at the end (other jobs share this machine)",
        f"- wall time: {minutes:.1f} min, finished {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}",
        "",
    ]
    written = write_report(folder, "\n".join(header), result.tables, result.figures)
    for table in result.tables:
        print(table.to_markdown())
    print(f"results in {folder} ({', '.join(sorted(written))}; {len(result.figures)} figure(s)), {minutes:.1f} min")
    return BenchRun(cfg, folder, result, written)
