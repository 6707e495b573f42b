"""LPIPS with real backbone weights from local files only.

The ``lpips`` package ships its small linear heads but downloads the torchvision
backbone (AlexNet / VGG16) on first use, which fails offline and would otherwise
leave a *random* backbone with no perceptual meaning. :func:`build_lpips` builds the
network with a random backbone, then loads the torchvision backbone weights from a
local file (an explicit path, or torch hub's checkpoint cache); when none is found it
raises :class:`PerceptualWeightsNotFound` naming every place it looked.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from pe3d.errors import InputFileNotFound

BACKBONE_FILES = {
    "alex": "alexnet-owt-7be5be79.pth",
    "vgg": "vgg16-397923af.pth",
}
"""File names torchvision uses for the LPIPS backbones."""


class PerceptualWeightsNotFound(InputFileNotFound):
    """No local backbone weights for LPIPS were found."""


def backbone_search_paths(net: str, explicit: str | None = None) -> list[Path]:
    """Candidate files for the ``net`` backbone weights, in search order."""
    name = BACKBONE_FILES[net]
    candidates: list[Path] = []
    if explicit:
        candidates.append(Path(explicit).expanduser())
    torch_home = Path(os.environ.get("TORCH_HOME", Path.home() / ".cache" / "torch")).expanduser()
    candidates.append(torch_home / "hub" / "checkpoints" / name)
    candidates.append(Path(torch.hub.get_dir()) / "checkpoints" / name)
    unique: list[Path] = []
    for path in candidates:
        if path not in unique:
            unique.append(path)
    return unique


def _load_backbone(model: nn.Module, weights_path: Path) -> None:
    state = torch.load(weights_path, map_location="cpu", weights_only=True)
    features = {key[len("features."):]: value for key, value in state.items() if key.startswith("features.")}
    targets: dict[str, torch.Tensor] = {}
    for slice_name, slice_module in model.net.named_children():
        if not slice_name.startswith("slice"):
            continue
        for name, param in slice_module.state_dict().items():
            targets[f"{slice_name}.{name}"] = param
    mapped: dict[str, torch.Tensor] = {}
    for key in targets:
        _, layer, param = key.split(".")
        source = f"{layer}.{param}"
        if source not in features:
            raise KeyError(f"{weights_path}: backbone weights lack '{source}' needed by LPIPS")
        mapped[key] = features[source]
    model.net.load_state_dict(mapped, strict=True)


def build_lpips(net: str = "alex", weights_path: str | None = None) -> nn.Module:
    """A frozen ``lpips.LPIPS`` whose backbone weights come from a local file.

    Args:
        net: ``"alex"`` or ``"vgg"``.
        weights_path: explicit path to the torchvision backbone weights; otherwise the
            torch hub cache is searched.

    Raises:
        PerceptualWeightsNotFound: when no file exists; the message lists the paths tried.
    """
    import lpips

    if net not in BACKBONE_FILES:
        raise ValueError(f"LPIPS net must be one of {sorted(BACKBONE_FILES)}, got {net!r}")
    paths = backbone_search_paths(net, weights_path)
    found = next((path for path in paths if path.is_file()), None)
    if found is None:
        tried = ", ".join(str(path) for path in paths)
        raise PerceptualWeightsNotFound(
            f"LPIPS needs the torchvision '{net}' backbone weights ({BACKBONE_FILES[net]}); looked in: {tried}. "
            "Place the file there (or set loss.image.lpips_weights=PATH), or choose another perceptual term "
            "(e.g. loss.image.perceptual=ssim)."
        )
    model = lpips.LPIPS(net=net, pretrained=True, pnet_rand=True, verbose=False)
    _load_backbone(model, found)
    model.eval()
    for param in model.parameters():
        param.requires_grad_(False)
    return model
