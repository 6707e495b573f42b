"""The real recipes under Lightning DDP: ``pe3d fit distill`` and ``pe3d fit adapt`` with
``trainer.devices=2 trainer.strategy=ddp`` on CPU (gloo), end to end through the command line.

Each run must export exactly one file, written by rank 0 after both ranks reported the same
weights hash, and that file must hold those weights.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from pe3d.adapters import load_adapter_into
from pe3d.data.pairs import write_pairs
from pe3d.models.checkpoints import model_hash
from pe3d.models.editor import load_editor
from pe3d.styles.discovery import load_named_style

ROOT = Path(__file__).resolve().parents[1]
DDP = ["trainer.accelerator=cpu", "trainer.devices=2", "trainer.strategy=ddp", "trainer.max_steps=3",
       "trainer.progress=false", "trainer.logger=none", "system.render_resolution=8", "system.num_views=1",
       "system.image_log_every=0", "system.input_ray_stride=1", "system.view_ray_stride=1"]
EXPORTED = re.compile(r"written to (\S+) \(weights identical on (\d) ranks, hash (\w+)\)")


def _fit(args: list[str], env: dict, cwd: Path) -> tuple[Path, str, str]:
    result = subprocess.run([sys.executable, "-m", "pe3d.cli", "fit", *args, *DDP], env=env, cwd=cwd,
                            capture_output=True, text=True, timeout=600)
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-4000:]
    for rank in (0, 1):
        assert f"GLOBAL_RANK: {rank}, MEMBER: {rank + 1}/2" in log, log[-3000:]
    exports = EXPORTED.findall(result.stdout)
    assert len(exports) == 1, result.stdout[-3000:]  # one line: only rank 0 exports
    path, ranks, digest = exports[0]
    assert ranks == "2"
    return Path(path), digest, log


@pytest.mark.slow
def test_fit_distill_then_adapt_recipes_under_two_process_ddp(tmp_path):
    pairs = tmp_path / "pairs"
    write_pairs(load_named_style("bronze_statue"), pairs / "bronze_statue", count=8, progress=False)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PE3D_STYLES": str(tmp_path / "styles"), "OMP_NUM_THREADS": "1"}
    fast = "model_overrides=[renderer.ray_march.depth_resolution=6,renderer.ray_march.depth_resolution_importance=6]"

    editor_file, editor_hash, _ = _fit(["distill", "--styles", "bronze_statue", "pairs_per_style=8", f"pairs_dir={pairs}",
                                        f"out={tmp_path / 'distill'}", "data.batch_size=2", fast], env, tmp_path)
    assert editor_file == tmp_path / "distill" / "editor.safetensors"
    assert sorted(p.name for p in tmp_path.rglob("*.safetensors") if "pairs" not in p.parts) == ["editor.safetensors"]
    editor = load_editor(editor_file)
    assert model_hash(editor) == editor_hash

    adapter_file, adapted_hash, _ = _fit(["adapt", "--style", "bronze_statue", f"base={editor_file}", "num_pairs=4",
                                          f"pairs_dir={pairs}", f"out={tmp_path / 'adapt'}"], env, tmp_path)
    assert adapter_file == tmp_path / "styles" / "bronze_statue" / "adapter.safetensors"
    assert sorted(p.name for p in tmp_path.rglob("*.safetensors") if "pairs" not in p.parts) == ["adapter.safetensors", "editor.safetensors"]
    load_adapter_into(editor, adapter_file)
    assert model_hash(editor) == adapted_hash != editor_hash
