"""Atomic file writing and safe tensor files (safetensors with metadata)."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Mapping

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from pe3d.errors import InputFileNotFound, InvalidInput

__all__ = [
    "CorruptFileError",
    "atomic_write",
    "atomic_write_bytes",
    "atomic_write_text",
    "file_sha256",
    "load_tensors",
    "read_metadata",
    "remove_stale_temp_files",
    "save_tensors",
    "state_dict_hash",
]


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp_path)`` then rename ``tmp_path`` onto ``path`` (same folder).

    A reader never sees a half-written file: either the old file or the new one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def remove_stale_temp_files(folder: str | Path) -> int:
    """Delete the temp files :func:`atomic_write` leaves in ``folder`` when its process is killed
    mid-write (``.<name>.<random>.tmp``); returns how many were removed."""
    folder = Path(folder)
    stale = list(folder.glob(".*.tmp")) if folder.is_dir() else []
    for tmp in stale:
        tmp.unlink(missing_ok=True)
    return len(stale)


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write UTF-8 text atomically."""
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write bytes atomically."""
    return atomic_write(path, lambda tmp: tmp.write_bytes(data))


def save_tensors(path: str | Path, tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, Any] | None = None) -> Path:
    """Save tensors as safetensors atomically; metadata values are JSON-encoded strings."""
    meta = {key: value if isinstance(value, str) else json.dumps(value) for key, value in (metadata or {}).items()}
    data = {key: value.detach().contiguous().cpu() for key, value in tensors.items()}
    return atomic_write(path, lambda tmp: save_file(data, str(tmp), metadata=meta))


class CorruptFileError(InvalidInput):
    """A tensor file is missing, truncated or not in the expected format."""


def _checked_header(path: Path) -> dict:
    """The JSON header of the safetensors file ``path``, after checking that the file holds all it announces."""
    if not path.is_file():
        raise InputFileNotFound(f"{path}: file not found")
    size = path.stat().st_size
    if size < 8:
        raise CorruptFileError(f"{path}: truncated safetensors file ({size} bytes)")
    with open(path, "rb") as handle:
        header_len = int.from_bytes(handle.read(8), "little")
        if header_len <= 0 or 8 + header_len > size:
            raise CorruptFileError(f"{path}: corrupted safetensors header (header length {header_len}, file size {size})")
        try:
            header = json.loads(handle.read(header_len))
        except ValueError as error:
            raise CorruptFileError(f"{path}: corrupted safetensors header: {error}") from error
    ends = [entry["data_offsets"][1] for key, entry in header.items() if key != "__metadata__"]
    if 8 + header_len + (max(ends) if ends else 0) > size:
        raise CorruptFileError(f"{path}: truncated safetensors file (data extends beyond {size} bytes)")
    return header


def read_metadata(path: str | Path) -> dict[str, str]:
    """The metadata of a safetensors file without reading its tensors (same checks as :func:`load_tensors`)."""
    return dict(_checked_header(Path(path)).get("__metadata__", {}))


def load_tensors(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Load a safetensors file and its metadata, with size/header checks and clear errors."""
    path = Path(path)
    header = _checked_header(path)
    try:
        tensors = load_file(str(path))
    except SafetensorError as error:
        raise CorruptFileError(f"{path}: cannot read tensors: {error}") from error
    return tensors, dict(header.get("__metadata__", {}))


def file_sha256(path: str | Path, length: int = 16) -> str:
    """Hex SHA-256 of a file (first ``length`` hex digits)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:length]


def state_dict_hash(tensors: Mapping[str, torch.Tensor], length: int = 16) -> str:
    """Content hash of a state dict (names, shapes, dtypes and values)."""
    digest = hashlib.sha256()
    for key in sorted(tensors):
        value = tensors[key].detach().contiguous().cpu()
        digest.update(key.encode())
        digest.update(str(tuple(value.shape)).encode() + str(value.dtype).encode())
        digest.update(value.reshape(-1).view(torch.uint8).numpy().tobytes() if value.numel() else b"")
    return digest.hexdigest()[:length]
