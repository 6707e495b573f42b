"""Pretrained Hugging Face models on disk (a diffusers pipeline, a BLIP captioner): where, on which device.

A reference is either a local folder written by ``save_pretrained`` or a hub id
(``org/name``) that is already in a local Hugging Face cache (e.g. after
``hf download org/name`` on a machine with network). Nothing here downloads:
the lookup goes through :func:`pe3d.models.prompt_base.find_in_hf_cache`. ``device`` /
``dtype`` strings of the generator configs resolve with :mod:`pe3d.devices`.
"""

from __future__ import annotations

import re
from pathlib import Path

from pe3d.models.prompt_base import find_in_hf_cache
from pe3d.errors import InputFileNotFound

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
"""Shape of a Hugging Face hub id (``org/name``)."""


def resolve_model_dir(reference: str, marker: str, what: str, cache_dir: str = "") -> Path:
    """The local folder of ``reference`` that holds ``marker`` (e.g. ``model_index.json``).

    Args:
        reference: a folder path, or a hub id looked up in the Hugging Face cache.
        marker: a file every copy of the model has at its top level.
        what: the model's role, for the error message (``"InstructPix2Pix pipeline"``).
        cache_dir: the Hugging Face cache to search (``""``: the default, ``$HF_HUB_CACHE``).

    Raises:
        FileNotFoundError: one line naming the reference and every place searched.
    """
    if not reference:
        raise InputFileNotFound(f"{what}: no model given (a save_pretrained folder or a cached hub id like org/name)")
    path = Path(reference).expanduser()
    looked = [f"folder {path.absolute()}"]
    if path.is_dir():
        if (path / marker).is_file():
            return path
        looked[0] += f" (exists, but has no {marker})"
    if HUB_ID.match(reference) and not path.is_dir():
        found = find_in_hf_cache(reference, [marker], [cache_dir or None], looked)
        if found is not None:
            return found.parent
    raise InputFileNotFound(
        f"{what} {reference!r} not found locally (pe3d never downloads); looked in: {'; '.join(looked)}. "
        f"Give a save_pretrained folder, or fetch the hub id into the Hugging Face cache beforehand "
        f"(hf download {reference if HUB_ID.match(reference) else 'ORG/NAME'})"
    )
