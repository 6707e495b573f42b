"""Device and dtype names of the configs (``"auto"``, ``"cpu"``, ``"cuda:1"``, ``"bfloat16"``...) as torch objects.

One place for every component that takes a device string: the EG3D teacher of the prior
recipe, the InstructPix2Pix pair generator and the BLIP captioner.
"""

from __future__ import annotations

import os

import torch

from pe3d.errors import InvalidInput

STORAGE_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
"""Floating dtypes by name (also the storage types of exported weights)."""

DTYPES = ("auto", *STORAGE_DTYPES)
"""Accepted ``dtype`` strings of :func:`resolve_dtype`."""


def resolve_device(device: str) -> torch.device:
    """``auto``: this process's GPU when CUDA is available, else the CPU; other names as torch reads them.

    Under a distributed launch (torchrun, Lightning) the GPU is ``cuda:$LOCAL_RANK``, which is
    known before Lightning selects the rank's device; otherwise the current CUDA device.

    Raises:
        ValueError: a name torch does not know, quoted.
    """
    if device == "auto":
        if not torch.cuda.is_available():
            return torch.device("cpu")
        local_rank = os.environ.get("LOCAL_RANK")
        return torch.device("cuda", int(local_rank) if local_rank is not None else torch.cuda.current_device())
    try:
        return torch.device(device)
    except RuntimeError as error:
        raise InvalidInput(f"unknown device {device!r} (use 'auto', 'cpu', 'cuda' or 'cuda:N')") from error


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """``auto``: float16 on CUDA, float32 elsewhere; otherwise one of :data:`STORAGE_DTYPES`.

    Raises:
        ValueError: a name not in :data:`DTYPES`.
    """
    if dtype == "auto":
        return torch.float16 if device.type == "cuda" else torch.float32
    if dtype not in STORAGE_DTYPES:
        raise InvalidInput(f"unknown dtype {dtype!r}; use one of {list(DTYPES)}")
    return STORAGE_DTYPES[dtype]


def inference_memory_layout(model: torch.nn.Module) -> torch.nn.Module:
    """Store ``model``'s 4-d weights (its convolutions) channels-last when it lives on the CPU, in place.

    oneDNN's CPU convolutions then skip a reorder on every call: the mini editor's pass is about
    12 % faster, its triplanes equal to ~1e-4. Values, names, hashes and saved files are unchanged
    (files are written contiguous), and the model still trains. Returns ``model``.
    """
    first = next(model.parameters(), None)
    if first is not None and first.device.type == "cpu":
        model.to(memory_format=torch.channels_last)
    return model
