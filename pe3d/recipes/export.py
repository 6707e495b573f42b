"""How the training recipes end: one rank-zero export path, where adapters go, what ``--resume`` needs.

* :func:`export_on_rank_zero`: after ``trainer.fit`` every rank holds the trained model; the
  ranks first agree that their weights are identical (a hash gathered from every process),
  then global rank 0 alone writes the file. Other ranks return the same path without writing.
* :func:`adapter_destination`: a style's adapter is written next to its ``style.yaml`` when
  the style lives in a user folder; a built-in style (shipped inside the package) is first
  copied into :func:`pe3d.config.user_styles_dir`, so nothing is written into the installed
  package and the adapted copy takes the built-in's place in discovery.
* :func:`checkpoint_to_resume`: ``--resume`` with nothing to resume is an error, not a fresh start.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Callable, Optional

import lightning as L
from torch import nn

from pe3d.adapters import ADAPTER_FILE
from pe3d.config import is_builtin, user_styles_dir
from pe3d.errors import InputFileNotFound
from pe3d.models.checkpoints import model_hash

__all__ = ["RanksDivergedError", "adapter_destination", "checkpoint_to_resume", "export_on_rank_zero", "gathered_hashes"]

STYLE_COPY_SUFFIXES = (".yaml", ".yml", ".txt", ".md", ".json", ".py")
"""Files of a built-in style folder copied into the user's folder (never adapters, pairs or caches)."""


class RanksDivergedError(RuntimeError):
    """The processes of a distributed run ended with different weights (nothing is exported)."""


def gathered_hashes(trainer: L.Trainer, model: nn.Module) -> list[str]:
    """``model_hash(model)`` of every process, in rank order (one entry without a process group)."""
    import torch.distributed as dist

    digest = model_hash(model)
    if trainer.world_size <= 1 or not (dist.is_available() and dist.is_initialized()):
        return [digest]
    hashes: list[Optional[str]] = [None] * dist.get_world_size()
    dist.all_gather_object(hashes, digest)
    return [str(h) for h in hashes]


def export_on_rank_zero(trainer: L.Trainer, model: nn.Module, path: Path, write: Callable[[], Path], what: str) -> Path:
    """Check that every rank holds the same ``model`` weights, then call ``write()`` on global rank 0 only.

    Returns ``path`` on every rank (the file exists once rank 0 has returned). ``what`` names the
    export in the printed line (e.g. ``"base editor"``).

    Raises:
        RanksDivergedError: the ranks' weights differ (their hashes are named).
    """
    hashes = gathered_hashes(trainer, model)
    if len(set(hashes)) > 1:
        raise RanksDivergedError(f"{what}: the {len(hashes)} ranks ended with different weights ({hashes}); nothing exported")
    if not trainer.is_global_zero:
        return path
    written = write()
    ranks = f"identical on {len(hashes)} ranks, " if len(hashes) > 1 else ""
    print(f"{what} written to {written} (weights {ranks}hash {hashes[0]})")
    return written


def adapter_destination(style_folder: Path, style_name: str) -> Path:
    """Where ``pe3d fit adapt`` writes the adapter of the style in ``style_folder``.

    A user style: ``<style_folder>/adapter.safetensors``. A built-in style:
    ``<user styles dir>/<name>/adapter.safetensors``, after copying the style's own files there
    (an existing ``style.yaml`` in that folder is kept).
    """
    if not is_builtin(style_folder):
        return style_folder / ADAPTER_FILE
    target = user_styles_dir() / style_name
    if target.resolve() != style_folder.resolve() and not (target / "style.yaml").is_file():
        target.mkdir(parents=True, exist_ok=True)
        for item in sorted(style_folder.iterdir()):
            if item.is_file() and item.suffix in STYLE_COPY_SUFFIXES:
                shutil.copy2(item, target / item.name)
        reference = _style_reference(style_folder)
        if reference is not None and reference.is_file():  # the style's reference image goes with it
            (target / reference.relative_to(style_folder)).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(reference, target / reference.relative_to(style_folder))
    return target / ADAPTER_FILE


def _style_reference(style_folder: Path) -> Optional[Path]:
    """The ``reference`` image named in a style's ``style.yaml`` (``None`` when there is none)."""
    import yaml

    try:
        data = yaml.safe_load((style_folder / "style.yaml").read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        return None
    name = data.get("reference") if isinstance(data, dict) else None
    return style_folder / name if isinstance(name, str) and name else None


def checkpoint_to_resume(run_dir: Path, resume: bool) -> Optional[str]:
    """``<run_dir>/checkpoints/last.ckpt`` when ``resume``; ``None`` when not resuming.

    Raises:
        InputFileNotFound: ``resume`` is set but there is no checkpoint to resume from.
    """
    from pe3d.systems.runner import resume_path

    if not resume:
        return None
    last = run_dir / "checkpoints" / "last.ckpt"
    if not last.is_file():
        raise InputFileNotFound(f"--resume: nothing to resume, no checkpoint at {last} (run without --resume to start afresh)")
    return resume_path(run_dir, resume)
