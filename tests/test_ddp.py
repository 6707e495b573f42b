"""Distillation and adaptation under Lightning DDP: 2 CPU processes (gloo) end with identical weights."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pe3d.data.pairs import write_pairs
from pe3d.styles.discovery import load_named_style


@pytest.mark.slow
def test_two_cpu_ranks_end_with_identical_weights(tmp_path):
    pairs = tmp_path / "pairs"
    write_pairs(load_named_style("bronze_statue"), pairs, count=8, progress=False)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    result = subprocess.run(
        [sys.executable, str(Path(__file__).parent / "ddp_worker.py"), str(tmp_path), str(pairs)],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    for name in ("distill", "adapt"):
        ranks = [(tmp_path / f"{name}-rank{r}.txt").read_text().split() for r in (0, 1)]
        assert ranks[0][1] == ranks[1][1] == "2", ranks  # world size 2
        assert ranks[0][2] == "3", ranks  # steps taken
        assert ranks[0][0] == ranks[1][0], f"{name}: ranks diverged: {ranks}"
