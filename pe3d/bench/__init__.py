"""Benchmarks: configs under ``benchmarks/``, one runner (``pe3d bench CONFIG``).

* :mod:`~pe3d.bench.config`: typed benchmark configs (``kind``: table1, ablation, adaptation, speed).
* :mod:`~pe3d.bench.runner`: :func:`run_benchmark` writes ``results.md``, ``results.csv``, figures
  and the resolved config of the benchmark and of every run.
* :mod:`~pe3d.bench.methods`: ours and the two Table 1 baselines behind one interface.
* :mod:`~pe3d.bench.evaluation`: several methods scored side by side on held-out world identities
  (with :mod:`pe3d.evaluation`, the code path ``pe3d demo`` and ``pe3d eval`` use too) and on real photos.
* :mod:`~pe3d.bench.table1`, :mod:`~pe3d.bench.ablation`, :mod:`~pe3d.bench.adaptation`,
  :mod:`~pe3d.bench.speed`: the four benchmark kinds.
"""

from pe3d.bench.config import BENCHMARK_KINDS, load_benchmark, resolve_benchmark
from pe3d.bench.runner import BenchRun, run_benchmark

__all__ = ["BENCHMARK_KINDS", "BenchRun", "load_benchmark", "resolve_benchmark", "run_benchmark"]
