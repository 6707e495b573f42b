"""ArcFace IR-SE50: the face-identity network behind the paper's ``ID_t`` and 3D-consistency scores.

The paper (Sec. 4.1) measures identity with ArcFace; its authors (like pSp, e4e and EG3D-era
work) use the IR-SE50 network distributed with pSp as ``model_ir_se50.pth``: a 50-layer
"improved residual" ResNet with squeeze-and-excitation units, input 112 x 112 in ``[-1, 1]``,
output a unit-length 512-d embedding. :class:`IRSE50` is written from that description so
that its ``state_dict`` keys match the file exactly (``input_layer.0.weight``,
``body.N.res_layer.M...``, ``body.N.shortcut_layer...``, ``output_layer.3.weight``, ...).

Preprocessing (:func:`arcface_input`) follows the paper's code (3DPE ``criteria/id_loss.py``,
itself pSp's): resize the aligned portrait to 256 x 256, keep rows 35:223 and columns 32:220
(the inner face of an FFHQ-aligned crop), average-pool to 112 x 112. It therefore expects
portraits framed like FFHQ / EG3D crops, which is what the editor takes and renders.

The weights are never downloaded: :func:`load_arcface` reads a local file with
``torch.load(weights_only=True)`` and loads it strictly.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pe3d.metrics.weights import first_existing_file
from pe3d.models.prompt_base import load_state_dict_strict, read_state_dict

ARCFACE_FILE = "model_ir_se50.pth"
"""File name under which pSp / e4e / 3DPE distribute the IR-SE50 weights."""
ARCFACE_ENV = "PE3D_ARCFACE_WEIGHTS"
"""Environment variable naming the IR-SE50 weights file."""
IR_SE50_STAGES: tuple[tuple[int, int], ...] = ((64, 3), (128, 4), (256, 14), (512, 3))
"""``(channels, units)`` of the four stages; the first unit of each stage halves the resolution."""
ARCFACE_SIZE = 112
"""Side of the network input."""
FACE_CROP = (35, 223, 32, 220)
"""``(top, bottom, left, right)`` of the inner face in a 256 x 256 aligned portrait (pSp / 3DPE)."""


class SqueezeExcitation(nn.Module):
    """Channel gating: ``x * sigmoid(fc2(relu(fc1(mean_hw(x)))))`` with bias-free 1x1 convolutions."""

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(channels, channels // reduction, kernel_size=1, bias=False)
        self.fc2 = nn.Conv2d(channels // reduction, channels, kernel_size=1, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        """``[B, C, H, W] -> [B, C, H, W]``."""
        gate = torch.sigmoid(self.fc2(F.relu(self.fc1(x.mean(dim=(2, 3), keepdim=True)))))
        return x * gate


class IRSEUnit(nn.Module):
    """One improved-residual unit with squeeze-and-excitation.

    ``res_layer``: BN -> 3x3 conv -> PReLU -> 3x3 conv (stride ``stride``) -> BN -> SE.
    ``shortcut_layer``: 1x1 conv + BN when the width changes, else plain subsampling by ``stride``.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        if in_channels == out_channels:
            self.shortcut_layer: nn.Module = nn.MaxPool2d(kernel_size=1, stride=stride)
        else:
            self.shortcut_layer = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )
        self.res_layer = nn.Sequential(
            nn.BatchNorm2d(in_channels),
            nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=1, padding=1, bias=False),
            nn.PReLU(out_channels),
            nn.Conv2d(out_channels, out_channels, kernel_size=3, stride=stride, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            SqueezeExcitation(out_channels),
        )

    def forward(self, x: Tensor) -> Tensor:
        """``[B, C_in, H, W] -> [B, C_out, H / stride, W / stride]``."""
        return self.res_layer(x) + self.shortcut_layer(x)


class IRSE50(nn.Module):
    """ArcFace IR-SE50 backbone: ``[B, 3, 112, 112]`` in ``[-1, 1]`` -> unit-length ``[B, 512]``.

    Keys of :meth:`state_dict` are those of pSp's ``model_ir_se50.pth``.
    """

    def __init__(self, embedding_dim: int = 512, dropout: float = 0.6) -> None:
        super().__init__()
        self.input_layer = nn.Sequential(
            nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False), nn.BatchNorm2d(64), nn.PReLU(64)
        )
        units: list[nn.Module] = []
        channels = 64
        for width, count in IR_SE50_STAGES:
            for index in range(count):
                units.append(IRSEUnit(channels, width, stride=2 if index == 0 else 1))
                channels = width
        self.body = nn.Sequential(*units)
        side = ARCFACE_SIZE // 2 ** len(IR_SE50_STAGES)
        self.output_layer = nn.Sequential(
            nn.BatchNorm2d(channels),
            nn.Dropout(dropout),
            nn.Flatten(),
            nn.Linear(channels * side * side, embedding_dim),
            nn.BatchNorm1d(embedding_dim),
        )

    def forward(self, x: Tensor) -> Tensor:
        """``[B, 3, 112, 112]`` in ``[-1, 1]`` -> ``[B, 512]`` unit-length identity embeddings."""
        if x.shape[-2:] != (ARCFACE_SIZE, ARCFACE_SIZE):
            raise ValueError(f"IR-SE50 takes [B, 3, {ARCFACE_SIZE}, {ARCFACE_SIZE}] inputs, got {tuple(x.shape)}")
        return F.normalize(self.output_layer(self.body(self.input_layer(x))), dim=1)


def arcface_input(images: Tensor) -> Tensor:
    """Aligned portraits ``[B, 3, H, W]`` in ``[0, 1]`` -> IR-SE50 input ``[B, 3, 112, 112]`` in ``[-1, 1]``.

    Resize to 256 x 256 (bilinear), crop :data:`FACE_CROP`, average-pool to 112 x 112, as in the
    paper's identity code.
    """
    x = images.float() * 2.0 - 1.0
    x = F.interpolate(x, size=(256, 256), mode="bilinear", align_corners=False)
    top, bottom, left, right = FACE_CROP
    return F.adaptive_avg_pool2d(x[:, :, top:bottom, left:right], ARCFACE_SIZE)


def default_arcface_paths() -> list[Path]:
    """Where :func:`find_arcface_weights` looks: ``$PE3D_ARCFACE_WEIGHTS``, ``./pretrained_models/`` of the
    current directory (the pSp / e4e / 3DPE layout), ``~/.cache/pe3d/``."""
    paths = [Path(os.environ[ARCFACE_ENV])] if os.environ.get(ARCFACE_ENV) else []
    paths += [Path.cwd() / "pretrained_models" / ARCFACE_FILE, Path.home() / ".cache" / "pe3d" / ARCFACE_FILE]
    return paths


def find_arcface_weights(path: str | os.PathLike | None = None) -> Path:
    """``path`` if it is a file, else the first of :func:`default_arcface_paths`; :class:`MetricWeightsMissing` otherwise."""
    candidates = [Path(path)] if path is not None else default_arcface_paths()
    return first_existing_file(
        "ArcFace IR-SE50 (model_ir_se50.pth)",
        candidates,
        hint=f"Get model_ir_se50.pth as distributed with pSp/e4e and pass its path (or set ${ARCFACE_ENV})",
    )


def arcface_from_state_dict(state_dict: dict[str, Tensor], source: str = "state dict") -> IRSE50:
    """A frozen :class:`IRSE50` (eval mode) holding ``state_dict``, loaded strictly.

    Batch-norm ``num_batches_tracked`` counters may be absent (checkpoints from old PyTorch);
    every other key must be present with its shape, and no other key may exist.

    Raises:
        StateDictMismatchError: listing missing / unexpected keys and shape mismatches.
    """
    model = IRSE50()
    state = dict(state_dict)
    for key, value in model.state_dict().items():
        if key.endswith("num_batches_tracked") and key not in state:
            state[key] = value
    load_state_dict_strict(model, state, source, "ArcFace IR-SE50 (keys of pSp's model_ir_se50.pth)")
    model.eval()
    model.requires_grad_(False)
    return model


def load_arcface(path: str | os.PathLike | None = None) -> IRSE50:
    """IR-SE50 with weights read from a local file (see :func:`find_arcface_weights`), never pickled code.

    Raises:
        MetricWeightsMissing: no file (the message names every path searched).
        ValueError: the file is not a plain tensor dict.
        StateDictMismatchError: wrong keys or shapes (listed).
    """
    found = find_arcface_weights(path)
    return arcface_from_state_dict(read_state_dict(found), str(found))
