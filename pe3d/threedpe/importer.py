"""Import the authors' 3DPE checkpoint (an editor) and Live3D "LT" checkpoint (a prior), safely.

``pe3d import-3dpe SRC.pt OUT.safetensors``:

1. ``torch.load(weights_only=True)`` (no pickled code runs; a file that asks for any other
   global is refused by name, a truncated file is a one-line error);
2. the two state dicts (``encoder_state_dict``, ``renderer_state_dict``) are renamed with
   :mod:`pe3d.threedpe.keymap`; a key without a rule, a tensor our model lacks or does not
   get, and a shape that differs are refused, listing the keys;
3. the model is built from ``configs/model/threedpe.yaml`` (their architecture as pe3d
   switches), loaded strictly, and written as a pe3d editor (3DPE: ``Ref_encoder.*`` present)
   or prior (Live3D) safetensors file with its config, the source name and SHA-256 in the header.

Training extras their trainer saves beside the weights (optimizer, discriminator, options,
step) are skipped; ResNet ``layer3``/``layer4`` tensors, which their forward pass never
uses, are dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from pe3d.models.checkpoints import load_strict, short_list
from pe3d.eg3d.importer import _load_converted
from pe3d.errors import InputFileNotFound, InvalidInput
from pe3d.io import file_sha256
from pe3d.models.editor import EditorConfig, EditorCore, editor_config_from_yaml, save_editor
from pe3d.models.prior import PriorModel, save_prior
from pe3d.threedpe.keymap import ENCODER_PART, IGNORED, PARTS, RENDERER_PART, map_key

DEFAULT_MODEL = "threedpe"
"""The built-in model config (``configs/model/threedpe.yaml``) describing their release."""
TRAINING_EXTRAS = frozenset({
    "discriminator_state", "opts", "best_val_loss", "step", "encoder_optimizer", "renderer_optimizer",
})
"""Top-level entries their trainers save next to the weights; not needed for inference."""
REF_PREFIX = "Ref_encoder."
"""Keys of 3DPE's reference branch (MAE + cross-attention); absent from a Live3D prior."""


class ThreeDPEImportError(InvalidInput):
    """The file is readable but is not a 3DPE / Live3D "LT" checkpoint that maps onto our model."""


@dataclass
class ThreeDPECheckpoint:
    """The weights of one of their checkpoints, mapped to our names.

    Attributes:
        tensors: our state-dict keys -> tensors.
        kind: ``"editor"`` (3DPE, with the reference branch) or ``"prior"`` (Live3D).
        ignored: their keys that were dropped on purpose (unused ResNet stages).
        skipped: top-level training extras that were not read.
    """

    tensors: dict[str, torch.Tensor]
    kind: str
    ignored: list[str]
    skipped: list[str]


def model_config(model: str | Path = DEFAULT_MODEL) -> EditorConfig:
    """The :class:`EditorConfig` of their architecture (a built-in name or a model YAML path)."""
    from pe3d.config.paths import named_config

    return editor_config_from_yaml(named_config("model", model, "model config"))


def read_checkpoint(path: str | Path, cfg: EditorConfig) -> ThreeDPECheckpoint:
    """Read ``path`` without running pickled code and rename its tensors to ours (not yet shape-checked)."""
    path = Path(path)
    if not path.is_file():
        raise InputFileNotFound(f"{path}: file not found")
    data: Any = _load_converted(path)
    if not isinstance(data, Mapping) or any(part not in data for part in PARTS):
        found = sorted(map(str, data)) if isinstance(data, Mapping) else type(data).__name__
        raise ThreeDPEImportError(f"{path}: not a 3DPE/Live3D checkpoint (expected {list(PARTS)}, found {found})")
    unknown_top = sorted(str(k) for k in data if k not in PARTS and k not in TRAINING_EXTRAS)
    if unknown_top:
        raise ThreeDPEImportError(f"{path}: unknown top-level entries {unknown_top}")
    tensors: dict[str, torch.Tensor] = {}
    ignored: list[str] = []
    unknown: list[str] = []
    for part in PARTS:
        state = data[part]
        if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
            raise ThreeDPEImportError(f"{path}: {part} must be a state dict of tensors")
        for key, value in state.items():
            ours = map_key(part, str(key), cfg.prior.encoder)
            if ours is None:
                unknown.append(f"{part}:{key}")
            elif ours == IGNORED:
                ignored.append(str(key))
            else:
                tensors[ours] = value.detach()
    if unknown:
        raise ThreeDPEImportError(f"{path}: unknown keys {short_list(unknown)}")
    head = data[ENCODER_PART].get("Final_encoder.output_net.0.weight")
    expected_in = cfg.prior.encoder.t_vit_dim // cfg.prior.encoder.t_vit_stride ** 2
    if isinstance(head, torch.Tensor) and head.dim() == 4 and head.shape[1] != expected_in:
        raise ThreeDPEImportError(f"{path}: Final_encoder.output_net.0.weight takes {head.shape[1]} channels, not "
                                  f"{expected_in}: a Live3D 'Normal' mode encoder; only 'LT' checkpoints are supported")
    kind = "editor" if any(str(k).startswith(REF_PREFIX) for k in data[ENCODER_PART]) else "prior"
    skipped = sorted(str(k) for k in data if k in TRAINING_EXTRAS)
    return ThreeDPECheckpoint(tensors=tensors, kind=kind, ignored=sorted(ignored), skipped=skipped)


def strict_load(model: nn.Module, tensors: Mapping[str, torch.Tensor], source: str) -> None:
    """Load ``tensors`` key-for-key; a missing, unexpected or mis-shaped tensor is an error listing them."""
    load_strict(model, dict(tensors), source, ThreeDPEImportError, "the model config")


def build_model(ckpt: ThreeDPECheckpoint, cfg: EditorConfig, source: str) -> nn.Module:
    """An :class:`EditorCore` (3DPE) or :class:`PriorModel` (Live3D) holding the checkpoint's weights, in eval mode."""
    model: nn.Module = EditorCore(cfg) if ckpt.kind == "editor" else PriorModel(cfg.prior)
    strict_load(model, ckpt.tensors, source)
    return model.eval()


def load_threedpe(src: str | Path, model: str | Path = DEFAULT_MODEL) -> nn.Module:
    """Read their checkpoint ``src`` and return our model (editor or prior) with its weights."""
    cfg = model_config(model)
    return build_model(read_checkpoint(src, cfg), cfg, str(src))


def import_threedpe(src: str | Path, out: str | Path, model: str | Path = DEFAULT_MODEL,
                    dtype: str = "float32") -> tuple[Path, str]:
    """``pe3d import-3dpe SRC OUT``: write their checkpoint as a pe3d editor or prior file.

    Returns:
        ``(path written, kind)`` with kind ``"editor"`` or ``"prior"``.
    """
    cfg = model_config(model)
    ckpt = read_checkpoint(src, cfg)
    built = build_model(ckpt, cfg, str(src))
    meta = {"source": Path(src).name, "source_sha256": file_sha256(src, 64),
            "source_format": "3dpe" if ckpt.kind == "editor" else "live3d-lt"}
    if isinstance(built, EditorCore):
        return save_editor(built, out, meta, dtype), ckpt.kind
    return save_prior(built, out, meta, dtype), ckpt.kind  # type: ignore[arg-type]


__all__ = [
    "DEFAULT_MODEL",
    "ThreeDPECheckpoint",
    "ThreeDPEImportError",
    "build_model",
    "import_threedpe",
    "load_threedpe",
    "model_config",
    "read_checkpoint",
    "strict_load",
]
