"""Style adapters (read by inference, written by ``pe3d fit adapt``): only the tensors a norm-only adaptation trained, in one safetensors file.

Header metadata: ``style``, ``adapter_kind`` (``norm-only``), ``base_hash`` (content hash
of the base editor it was trained on), ``pe3d_version`` and the resolved ``config``.
Loading refuses an adapter made for another base (naming both hashes) and one whose
tensor names differ from what the editor expects (naming the keys).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import torch
from torch import nn

import pe3d
from pe3d.errors import InvalidInput
from pe3d.io import load_tensors, save_tensors
from pe3d.models.checkpoints import model_hash

__all__ = [
    "ADAPTER_FILE",
    "Adapter",
    "AdapterMismatchError",
    "adapter_parameter_names",
    "apply_adapter",
    "check_adapter",
    "load_adapter_into",
    "read_adapter",
    "save_adapter",
]

ADAPTER_FILE = "adapter.safetensors"
"""File name of a style's adapter inside its folder."""


class AdapterMismatchError(InvalidInput):
    """The adapter does not fit this base editor (other base hash or other tensor names)."""


@dataclass
class Adapter:
    """Loaded adapter: tensors by parameter name plus header metadata."""

    tensors: dict[str, torch.Tensor]
    style: str
    kind: str
    base_hash: str
    metadata: dict[str, str]


def adapter_parameter_names(editor: nn.Module, parameters: Iterable[nn.Parameter]) -> list[str]:
    """Names (as in ``editor.named_parameters()``) of the given parameter objects."""
    wanted = {id(p) for p in parameters}
    return [name for name, p in editor.named_parameters() if id(p) in wanted]


def optional_adapter_parameters(editor: nn.Module) -> list[nn.Parameter]:
    """Parameters an adapter may carry besides ``editor.adaptation_parameters()``: all or none of the renderer's
    decoder MLP (``editor.decoder_adaptation_parameters()``)."""
    return list(editor.decoder_adaptation_parameters())


def save_adapter(
    path: str | Path,
    editor: nn.Module,
    names: list[str],
    style: str,
    base_hash: str,
    kind: str = "norm-only",
    config_yaml: str = "",
) -> Path:
    """Write the named parameters of ``editor`` as an adapter (atomic)."""
    params = dict(editor.named_parameters())
    tensors = {name: params[name].detach().clone() for name in names}
    metadata = {
        "format": "pe3d-adapter",
        "style": style,
        "adapter_kind": kind,
        "base_hash": base_hash,
        "pe3d_version": pe3d.__version__,
        "config": config_yaml,
    }
    return save_tensors(path, tensors, metadata)


def read_adapter(path: str | Path) -> Adapter:
    """Read and check an adapter file's header (safetensors checks included)."""
    tensors, metadata = load_tensors(path)
    if metadata.get("format") != "pe3d-adapter":
        raise AdapterMismatchError(f"{path}: not a pe3d adapter (format={metadata.get('format')!r})")
    return Adapter(tensors, metadata.get("style", ""), metadata.get("adapter_kind", ""), metadata.get("base_hash", ""), metadata)


def check_adapter(adapter: Adapter, editor: nn.Module, base_hash: str, source: str = "adapter") -> None:
    """Raise :class:`AdapterMismatchError` unless ``adapter`` fits ``editor`` with hash ``base_hash``."""
    if adapter.base_hash != base_hash:
        raise AdapterMismatchError(
            f"{source}: made for base model {adapter.base_hash}, but the loaded base model is {base_hash}"
        )
    params = dict(editor.named_parameters())
    expected = set(adapter_parameter_names(editor, editor.adaptation_parameters()))
    optional = set(adapter_parameter_names(editor, optional_adapter_parameters(editor)))
    if optional & set(adapter.tensors):  # adapted with the renderer's decoder (fit adapt decoder_lr_scale > 0)
        expected |= optional
    extra, missing = sorted(set(adapter.tensors) - expected), sorted(expected - set(adapter.tensors))
    if extra or missing:
        raise AdapterMismatchError(f"{source}: tensor names do not match this editor: missing {missing}, extra {extra}")
    for name, value in adapter.tensors.items():
        if value.shape != params[name].shape:
            raise AdapterMismatchError(f"{source}: tensor {name} has shape {tuple(value.shape)}, editor expects {tuple(params[name].shape)}")


def apply_adapter(editor: nn.Module, adapter: Adapter) -> None:
    """Copy the adapter's tensors into ``editor`` in place (call :func:`check_adapter` first). An editor that
    reads its prompts through known words (``EditorCore.prompt_vocabulary``) also learns the words of the
    adapter style's training prompts, so that they are read as written, as its adaptation read them."""
    params = dict(editor.named_parameters())
    with torch.no_grad():
        for name, value in adapter.tensors.items():
            params[name].copy_(value.to(params[name]))
    vocabulary = getattr(editor, "prompt_vocabulary", None)
    if vocabulary is not None and adapter.style:
        from pe3d.prompt_vocabulary import training_words

        editor.prompt_vocabulary = vocabulary.with_style(adapter.style, training_words([adapter.style]) or ())


def load_adapter_into(editor: nn.Module, path: str | Path, base_hash: str | None = None) -> Adapter:
    """Read, check against ``editor`` (its current hash unless given) and apply an adapter."""
    adapter = read_adapter(path)
    check_adapter(adapter, editor, base_hash or model_hash(editor), str(path))
    apply_adapter(editor, adapter)
    return adapter
