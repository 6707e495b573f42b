"""The refined teacher's triplanes on disk, made once per pair and reused by every later run.

With ``system.teacher_refine_steps`` the teacher's triplane of each pair's 2D edit is fitted a few Adam
steps further to that edit (:func:`pe3d.refinement.fit_detail_residual`). That costs a full render's forward
and backward per step and pair: 29 of the 32.7 minutes of the shipped editor's refined-teacher stage on the
2-core CPU went to the 1,536 pairs' first epoch. The in-memory :class:`~pe3d.systems.frozen_cache.FrozenOutputCache`
keeps the result for the rest of one run; :class:`RefinedTeacherStore` keeps it across runs, so the next stage
on the same pairs, prior and refinement settings (the shipped recipe's vocabulary stage, a rerun with another
learning rate) reads it instead of fitting it again.

One safetensors file per pair, ``<root>/<provenance>/<style>/<id>.safetensors``: the provenance is a hash of the
teacher's weights and configuration and of the refinement's settings (and of this store's format), so another
prior or other settings use another folder; each file holds the fingerprint of the pair's edited image and
camera, and an entry whose fingerprint differs (a pair folder made again with other images) is fitted again
and overwritten. Files are written atomically, so a killed run leaves none half-written.

A file keeps only the refinement's residual, in float16: the feed-forward part is one teacher pass, which the
reading run recomputes (0.39 MB a pair at the mini size instead of 0.75 MB for the float32 triplane; the
run that writes uses the rounded residual too). On 24 world pairs and the shipped prior the rounding moved the
refined triplanes by at most 3e-5 and their renders by nothing visible (112 dB PSNR at least;
``python tools/teacher_store_precision.py runs/pairs-bg``). A store written before (float32 triplanes, in the
folder named without the format) is converted pair by pair as a run asks for them: its triplane minus the
feed-forward one is written in the new format, the old file is left where it was.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Hashable

import torch
from torch import Tensor, nn

from pe3d.io import CorruptFileError, load_tensors, save_tensors
from pe3d.models.checkpoints import model_hash
from pe3d.systems.frozen_cache import image_fingerprints

logger = logging.getLogger(__name__)

__all__ = ["RESIDUAL_DTYPE", "RefinedTeacherStore", "STORE_FORMAT", "stored_fingerprints", "teacher_provenance"]

STORE_FORMAT = "residual-float16"
"""What a store file holds (part of the provenance, so a store of another format is another folder)."""

RESIDUAL_DTYPE = torch.float16
"""The storage type of a refinement residual on disk (loaded back as float32)."""


def stored_fingerprints(images: Tensor) -> Tensor:
    """Per item, :func:`~pe3d.systems.frozen_cache.image_fingerprints` (sum, sum of squares) and the sum weighted
    by a ramp over the pixels: ``[B, 3]`` (float64). The ramp tells a mirrored or shifted image from the one a
    stored triplane was made from, which the two moments alone do not (a pair folder made again can hold one)."""
    flat = images.detach().flatten(1).double()
    ramp = torch.linspace(0.0, 1.0, flat.shape[1], dtype=flat.dtype, device=flat.device)
    return torch.cat([image_fingerprints(images), (flat * ramp).sum(1, keepdim=True)], 1)


def teacher_provenance(teacher: nn.Module, settings: str, store_format: str | None = STORE_FORMAT) -> str:
    """A 16-digit hash naming what a refined triplane depends on besides the pair: the teacher's weights, its
    configuration (``teacher.cfg``, e.g. the renderer's ray samples), ``settings`` (the refinement's) and the
    store's format; ``store_format=None`` gives the name of a store written before the format was part of it
    (float32 triplanes, which :class:`RefinedTeacherStore` converts)."""
    digest = hashlib.sha256()
    digest.update(model_hash(teacher).encode())
    digest.update(repr(getattr(teacher, "cfg", None)).encode())
    digest.update(settings.encode())
    if store_format is not None:
        digest.update(store_format.encode())
    return digest.hexdigest()[:16]


class RefinedTeacherStore:
    """Refined teacher residuals kept in ``root``, one file per pair (see the module docstring).

    Args:
        root: the store's folder (made when the first triplane is written).
        provenance: :func:`teacher_provenance` of the teacher and refinement that make the triplanes.
        legacy_provenance: the name the same teacher and refinement had before the store's format was part of
            it (``teacher_provenance(..., store_format=None)``): its float32 triplanes are converted when asked for.

    Attributes:
        reads / writes: residuals served from / written to disk over the store's life.
        converted: of the writes, those converted from the legacy folder instead of fitted.
    """

    def __init__(self, root: str | Path, provenance: str, legacy_provenance: str | None = None) -> None:
        for name in [provenance] + ([legacy_provenance] if legacy_provenance is not None else []):
            if not name or any(c in name for c in "/\\"):
                raise ValueError(f"provenance must be a non-empty name without path separators, got {name!r}")
        self.folder = Path(root) / provenance
        self.legacy_folder = None if legacy_provenance is None else Path(root) / legacy_provenance
        self.reads = 0
        self.writes = 0
        self.converted = 0

    def path(self, key: Hashable, folder: Path | None = None) -> Path:
        """The file of a pair key ``(style, id)`` (in ``folder``, by default the store's own)."""
        style, index = key
        return (folder or self.folder) / str(style) / f"{int(index)}.safetensors"

    def _read(self, path: Path, fingerprint: Tensor, name: str) -> Tensor | None:
        """Tensor ``name`` of ``path`` when the file is readable and its fingerprint equals ``fingerprint``."""
        if not path.is_file():
            return None
        try:
            tensors, _ = load_tensors(path)
        except CorruptFileError as error:
            logger.warning("refined teacher store: %s is unreadable (%s); fitting it again", path, error)
            return None
        stored = tensors.get("fingerprint")
        if (stored is None or name not in tensors or stored.shape != fingerprint.shape
                or not torch.allclose(stored, fingerprint.detach().cpu().double(), rtol=1e-9, atol=0.0)):
            return None
        return tensors[name]

    def load(self, key: Hashable, fingerprint: Tensor, feed_forward: Tensor | None = None) -> Tensor | None:
        """The stored residual of ``key`` (float32) when its fingerprint equals ``fingerprint``, else ``None``; an
        unreadable file is reported (once per file, as a warning) and treated as absent. With ``feed_forward``
        (the teacher's triplane of the pair, ``[3, C, R, R]``) a pair found only in the legacy folder is converted:
        its triplane minus ``feed_forward`` is written in this store's format and returned as stored."""
        residual = self._read(self.path(key), fingerprint, "residual")
        if residual is not None:
            self.reads += 1
            return residual.float()
        if self.legacy_folder is None or feed_forward is None:
            return None
        planes = self._read(self.path(key, self.legacy_folder), fingerprint, "planes")
        if planes is None or planes.shape != feed_forward.shape:
            return None
        self.converted += 1
        return self.save(key, fingerprint, planes.float() - feed_forward.detach().cpu().float())

    def save(self, key: Hashable, fingerprint: Tensor, residual: Tensor) -> Tensor:
        """Write the refinement residual of ``key`` (float16, atomically) with the fingerprint it was made from;
        returns it as :meth:`load` will give it back (rounded to float16, as float32, on ``residual``'s device)."""
        stored = residual.detach().to("cpu", RESIDUAL_DTYPE).contiguous()
        save_tensors(self.path(key), {"residual": stored, "fingerprint": fingerprint.detach().cpu().double()},
                     {"kind": "refined teacher residual", "format": STORE_FORMAT})
        self.writes += 1
        return stored.to(residual.device, torch.float32)

    def summary(self) -> str:
        """One line for the end of a run (``""`` when the store was not used)."""
        if not self.reads and not self.writes:
            return ""
        converted = f" ({self.converted} of them converted from {self.legacy_folder})" if self.converted else ""
        return f"refined teacher residuals: {self.reads} read from, {self.writes} written to {self.folder}{converted}"
