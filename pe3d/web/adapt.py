"""The adapt tab's work: uploaded before/after pairs become a new style, then norm-only adaptation.

The pairs are checked (:mod:`pe3d.web.limits`), re-encoded as PNGs into a new style folder
under :func:`pe3d.config.user_styles_dir` that uses the ``folder`` pair generator with
``align: auto`` (photos with a face are aligned and get an estimated camera, exactly as the
edit tab treats its input; others are centre-cropped), and
:func:`pe3d.recipes.editing.fit_adapt` (the recipe behind ``pe3d fit adapt``) trains and
exports ``<style>/adapter.safetensors``; the style is then listed like any other. A
:class:`~pe3d.web.progress.StepProgress` callback reports the steps to the page's progress bar.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Optional, Sequence

import yaml
from PIL import Image
from torch import Tensor

from pe3d.config import runs_dir, user_styles_dir
from pe3d.io import atomic_write_text
from pe3d.styles.spec import NAME_PATTERN, STYLE_FILE, is_safe_name
from pe3d.turntable import to_uint8
from pe3d.web.limits import UploadLimits, UploadRejected, check_prompt, display_name, load_uploaded_image
from pe3d.web.settings import WebSettings

PAIRS_FOLDER = "pairs"
"""Sub-folder of a web-made style holding ``before/`` and ``after/``."""

Progress = Callable[[int, int], None]
"""``progress(done_steps, total_steps)``."""


@dataclass
class AdaptRequest:
    """One adaptation asked for in the page."""

    name: str
    prompt: str
    before: Sequence[str]
    after: Sequence[str]
    steps: int


def match_pairs(before: Sequence[str], after: Sequence[str], limits: UploadLimits) -> list[tuple[str, str]]:
    """Pair the two uploads: by file name (stem) when the names agree, otherwise in the order given."""
    if not before or not after:
        raise UploadRejected("upload the 'before' images and the 'after' images (about 10 of each)")
    if len(before) != len(after):
        raise UploadRejected(f"{len(before)} 'before' images but {len(after)} 'after' images; give one 'after' per 'before'")
    if len(before) > limits.max_pairs:
        raise UploadRejected(f"{len(before)} pairs is over the limit of {limits.max_pairs}")
    by_stem = {Path(display_name(p)).stem: p for p in after}
    stems = [Path(display_name(p)).stem for p in before]
    if len(by_stem) == len(after) and sorted(stems) == sorted(by_stem):
        return [(b, by_stem[s]) for b, s in zip(before, stems)]
    return list(zip(before, after))


def _check_request(request: AdaptRequest, settings: WebSettings) -> str:
    name = request.name
    if not is_safe_name(name):
        raise UploadRejected(f"style name {name!r}: use lower-case letters, digits, '_' and '-' ({NAME_PATTERN.pattern})")
    from pe3d.styles.discovery import list_styles

    if name in list_styles():
        raise UploadRejected(f"a style called {name!r} already exists; choose another name")
    if not 1 <= request.steps <= settings.adapt_max_steps:
        raise UploadRejected(f"steps must be in [1, {settings.adapt_max_steps}], got {request.steps}")
    return name


def _save_png(image: Tensor, path: Path) -> None:
    """Re-encode a checked upload as PNG (the ``folder`` generator aligns or centre-crops it, then resizes)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(to_uint8(image)).save(path)


def write_style_folder(folder: Path, prompt: str, pairs: list[tuple[str, str]], limits: UploadLimits,
                       resolution: int, steps: int, max_minutes: float) -> None:
    """A complete ``folder`` style at ``folder`` (staged in a hidden sibling, then renamed)."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        for index, (before, after) in enumerate(pairs):
            _save_png(load_uploaded_image(before, limits), staging / PAIRS_FOLDER / "before" / f"{index:04d}.png")
            _save_png(load_uploaded_image(after, limits), staging / PAIRS_FOLDER / "after" / f"{index:04d}.png")
        spec = {
            "name": folder.name,
            "description": f"made in the web interface from {len(pairs)} before/after pairs",
            "generator": "folder",
            "params": {"dir": PAIRS_FOLDER, "align": "auto"},  # photos are face-aligned like edit inputs
            "pairs": {"count": len(pairs), "resolution": resolution, "pose": {"kind": "frontal"}},
            "adapt": {"num_pairs": len(pairs), "max_steps": steps, "max_minutes": max_minutes},
            "prompts": {"train": [prompt], "test": [prompt]},
        }
        atomic_write_text(staging / STYLE_FILE, yaml.safe_dump(spec, sort_keys=False))
        staging.rename(folder)
    finally:
        if staging.exists():
            shutil.rmtree(staging)


class AdaptService:
    """Runs one adaptation at a time; each makes a new style under :func:`pe3d.config.user_styles_dir`."""

    def __init__(self, settings: WebSettings, input_size: Callable[[], int]) -> None:
        self.settings = settings
        self._input_size = input_size
        self._busy = threading.Lock()

    def adapt(self, request: AdaptRequest, progress: Optional[Progress] = None) -> Path:
        """Make the style and its adapter; returns the adapter path. ``progress(step, total)`` is called per step."""
        from pe3d.recipes.editing import AdaptFitConfig, fit_adapt
        from pe3d.web.progress import StepProgress

        settings = self.settings
        name = _check_request(request, settings)
        prompt = check_prompt(request.prompt, settings.limits) or f"apply the {name} style"
        pairs = match_pairs(request.before, request.after, settings.limits)
        if not self._busy.acquire(blocking=False):
            raise UploadRejected("another adaptation is running; try again when it has finished")
        folder = user_styles_dir() / name
        try:
            write_style_folder(folder, prompt, pairs, settings.limits, self._input_size(), request.steps,
                               settings.adapt_max_minutes)
            run = Path(settings.runs_dir or runs_dir() / "web-adapt") / name
            cfg = AdaptFitConfig(
                base=settings.weights, prior=settings.prior, style=name, pairs_dir=str(run / "pairs"), out=str(run),
                # the recipe's trainer defaults (the style's where it defers to it, e.g. the gradient clip)
                trainer=replace(AdaptFitConfig().trainer, max_steps=request.steps, max_minutes=settings.adapt_max_minutes,
                                progress=False, logger="none", checkpoint_every_n_steps=request.steps),
            )
            callbacks = [StepProgress(progress)] if progress is not None else []
            return fit_adapt(cfg, callbacks=callbacks)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        finally:
            self._busy.release()
