"""`pe3d fit prior` killed with SIGKILL mid-run resumes from its last checkpoint with --resume."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from pe3d.io import load_tensors

ROOT = Path(__file__).resolve().parents[1]
ARGS = [
    "data.count=8", "data.views=3", "val_data.count=2", "val_data.views=3", "num_targets=2",
    "target_resolution=16", "batch_size=4", "system.image_log_every=0", "trainer.max_steps=40",
    "trainer.checkpoint_every_n_steps=2", "trainer.progress=false", "trainer.logger=csv", "trainer.max_minutes=0",
    "trainer.val_every_n_steps=0", "system.ray_stride=1",  # 16^2 targets: every ray (a 4^2 patch is too small for SSIM)
]


def _fit(out: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "pe3d.cli", "fit", "prior", f"out={out}", *ARGS, *extra]  # extra last: it wins
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@pytest.mark.slow
def test_sigkill_then_resume(tmp_path):
    out = tmp_path / "run"
    last = out / "checkpoints" / "last.ckpt"
    proc = _fit(out)
    deadline = time.time() + 240
    while not last.is_file() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    assert last.is_file(), proc.communicate()[0][-2000:] if proc.poll() is not None else "no checkpoint in time"
    time.sleep(1.0)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (out / "prior.safetensors").exists(), "the run finished before it could be killed"
    killed_step = torch.load(last, map_location="cpu", weights_only=True)["global_step"]
    assert killed_step >= 2
    resumed = _fit(out, "--resume")
    log = resumed.communicate(timeout=300)[0]
    assert resumed.returncode == 0, log[-3000:]
    assert "Restored all states from the checkpoint" in log, log[-2000:]
    _, meta = load_tensors(out / "prior.safetensors")
    assert int(meta["steps"]) == 40
    assert not list(out.rglob("*.tmp")), "temporary files left behind"


@pytest.mark.slow
def test_resume_in_a_copied_run_folder_keeps_writing_last_ckpt(tmp_path):
    """A run folder copied elsewhere (e.g. to train a finished run longer) resumes and keeps checkpointing
    into last.ckpt, the file --resume reads; Lightning would otherwise start a last-v1.ckpt beside it."""
    import shutil

    first = tmp_path / "first"
    done = _fit(first, "trainer.max_steps=4")
    assert done.wait(timeout=300) == 0, done.communicate()[0][-2000:]
    copy = tmp_path / "copy"
    shutil.copytree(first, copy)
    longer = _fit(copy, "--resume", "trainer.max_steps=8")
    log = longer.communicate(timeout=300)[0]
    assert longer.returncode == 0, log[-3000:]
    assert sorted(p.name for p in (copy / "checkpoints").iterdir()) == ["last.ckpt"]
    assert torch.load(copy / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)["global_step"] == 8
    _, meta = load_tensors(copy / "prior.safetensors")
    assert int(meta["steps"]) == 8
