"""When a benchmark may reuse a run folder of an earlier run: only when what trained it is unchanged.

A run folder records a fingerprint of its inputs (resolved configs, the style's settings, hashes of
the weight files it starts from) before training starts. A later run of the benchmark reuses the
folder's results, or resumes its interrupted training, only when the fingerprint matches; otherwise
the run is trained again from scratch (new shipped weights or a changed default must not be
scored from stale snapshots).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from pe3d.io import atomic_write_text

if TYPE_CHECKING:
    from pe3d.styles.spec import StyleSpec

FINGERPRINT_FILE = "inputs.sha256"
"""File in a run folder holding the fingerprint of the inputs that trained it."""


def _plain(value: object) -> object:
    """``value`` with its dataclasses turned into dicts, inside lists, tuples and dicts too."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    return value


def inputs_fingerprint(*parts: object) -> str:
    """SHA-256 of ``parts`` (dataclass configs, dicts, strings such as weight hashes), JSON-encoded
    with sorted keys; values JSON cannot encode are written with ``str``."""
    payload = json.dumps([_plain(p) for p in parts], sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()


def matches_fingerprint(folder: str | Path, fingerprint: str) -> bool:
    """Whether ``folder`` was trained from inputs with this fingerprint."""
    path = Path(folder) / FINGERPRINT_FILE
    return path.is_file() and path.read_text().strip() == fingerprint


def record_fingerprint(folder: str | Path, fingerprint: str) -> None:
    """Write ``fingerprint`` into ``folder`` (created if needed), atomically."""
    Path(folder).mkdir(parents=True, exist_ok=True)
    atomic_write_text(Path(folder) / FINGERPRINT_FILE, fingerprint + "\n")


def prior_file_hash(setting: str) -> str:
    """SHA-256 of the prior file a recipe's ``prior`` setting resolves to (the shipped mini prior
    when empty)."""
    from pe3d.io import file_sha256
    from pe3d.weights import resolve_weights

    return file_sha256(resolve_weights(setting, "prior_mini"))


def resolved_styles(
    names: Sequence[str], style_dirs: Sequence[str] = (), overrides: Sequence[str] = ()
) -> list[StyleSpec]:
    """The named styles' settings as a recipe resolves them (its extra style folders and
    overrides applied), so that editing a style's prompts or filter changes the fingerprint."""
    from pe3d.recipes.editing import style_search_dirs
    from pe3d.styles.discovery import load_named_style

    return [load_named_style(name, style_search_dirs(style_dirs), overrides=overrides) for name in names]
