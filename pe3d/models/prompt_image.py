"""Image prompt encoder: a timm vision transformer (paper: MAE ViT-B/16 for image prompts).

As in the paper's code (``EncoderRef``), the reference image goes through the ViT without masking
and *all* tokens after the final norm (class token + patch tokens) become keys/values of the
cross-attention: ``[B, 1 + (S/16)^2, 768]`` for MAE ViT-B/16 at ``S = 224``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from .prompt_base import (
    PromptEncoder,
    PromptEncoderConfig,
    find_flat_file,
    find_in_hf_cache,
    load_state_dict_strict,
    not_found_error,
)

TIMM_HF_FILENAMES: Tuple[str, ...] = ("model.safetensors", "pytorch_model.bin")
"""File names timm uses on the Hugging Face hub (safetensors first)."""
MAE_DECODER_PREFIXES: Tuple[str, ...] = ("decoder_", "mask_token")
"""Keys of a full MAE pre-training checkpoint (encoder + decoder) that the encoder does not use."""


class TimmImagePromptEncoder(PromptEncoder):
    """``E_p`` for image prompts: timm ViT (``forward_features``) + token mapper.

    ``encode(images [B, 3, H, W] in [0, 1]) -> PromptTokens(tokens [B, N, out_dim], mask [B, N])`` where
    images are resized to the ViT's ``img_size`` (bicubic, antialiased unless ``resize_antialias`` is off)
    and normalized with the model's
    mean/std; ``N = num_prefix_tokens + (img_size / patch)^2`` and ``mask`` is all ``True``.

    Attributes:
        backbone: the timm model (built with ``pretrained=False, num_classes=0``); its state dict is in
            timm layout.
        img_size: ``(h, w)`` the images are resized to.
        mean, std: ``[1, 3, 1, 1]`` normalization buffers (not saved in the state dict).
    """

    mean: Tensor
    std: Tensor

    def __init__(self, cfg: PromptEncoderConfig) -> None:
        if cfg.kind != "image":
            raise ValueError(f"TimmImagePromptEncoder needs kind='image', got {cfg.kind!r}")
        super().__init__(cfg)
        import timm
        from timm.data import resolve_model_data_config

        arch = str(cfg.arch)
        pretrained_path = self.resolve_pretrained(cfg.pretrained) if cfg.pretrained else None
        kwargs = dict(cfg.tiny or {})
        kwargs.setdefault("num_classes", 0)
        try:
            self.backbone = timm.create_model(arch, pretrained=False, **kwargs)
        except TypeError as err:
            raise ValueError(
                f"timm could not build {arch!r} with prompt_encoder.tiny={cfg.tiny!r}: {err}"
            ) from err
        except RuntimeError as err:  # timm: "Unknown model (...)"
            raise ValueError(f"timm could not build {arch!r}: {err}") from err

        data_cfg = resolve_model_data_config(self.backbone)
        img_size = getattr(getattr(self.backbone, "patch_embed", None), "img_size", None)
        if img_size is None:
            img_size = tuple(data_cfg["input_size"][1:])
        self.img_size: Tuple[int, int] = (int(img_size[0]), int(img_size[1]))
        self.interpolation: str = "bicubic" if data_cfg.get("interpolation") == "bicubic" else "bilinear"
        self.in_chans: int = int(kwargs.get("in_chans", 3))
        self.register_buffer("mean", torch.tensor(data_cfg["mean"], dtype=torch.float32).view(1, -1, 1, 1),
                             persistent=False)
        self.register_buffer("std", torch.tensor(data_cfg["std"], dtype=torch.float32).view(1, -1, 1, 1),
                             persistent=False)
        self._finish_init()
        if pretrained_path is not None:
            self.load_backbone(str(pretrained_path))

    # -- PromptEncoder ------------------------------------------------------------------------
    @property
    def backbone_dim(self) -> int:
        """ViT embedding width (768 for ViT-B/16)."""
        return int(getattr(self.backbone, "num_features", None) or self.backbone.embed_dim)

    def preprocess(self, images: Tensor) -> Tensor:
        """``[B, 3, H, W]`` in ``[0, 1]`` -> resized, normalized ``[B, 3, *img_size]``.

        Raises ``ValueError`` for a wrong shape or values outside ``[0, 1]`` (e.g. ``[-1, 1]`` images).
        """
        if not isinstance(images, Tensor):
            raise TypeError(f"image prompt encoder expects a tensor [B, 3, H, W], got {type(images).__name__}")
        if images.dim() != 4 or images.shape[1] != self.in_chans:
            raise ValueError(
                f"image prompt encoder expects [B, {self.in_chans}, H, W] images, got shape {tuple(images.shape)}"
            )
        if images.shape[0] == 0:
            raise ValueError("image prompt encoder got an empty batch")
        if not images.is_floating_point():
            raise ValueError(f"image prompts must be float in [0, 1], got dtype {images.dtype}")
        lo, hi = torch.aminmax(images.detach())
        if lo.item() < -1e-3 or hi.item() > 1 + 1e-3:
            raise ValueError(
                f"image prompts must be in [0, 1], got values in [{lo.item():.3f}, {hi.item():.3f}]"
            )
        x = images.to(self.mean.dtype)
        if tuple(x.shape[-2:]) != self.img_size:
            x = F.interpolate(x, size=self.img_size, mode=self.interpolation, align_corners=False,
                              antialias=self.cfg.resize_antialias)
        return (x - self.mean) / self.std

    def _encode_backbone(self, images: Tensor) -> Tuple[Tensor, Tensor]:
        x = self.preprocess(images)
        feats = self.backbone.forward_features(x)
        if feats.dim() == 4:  # convolutional backbones: [B, C, h, w] -> [B, h*w, C]
            feats = feats.flatten(2).transpose(1, 2)
        mask = torch.ones(feats.shape[:2], dtype=torch.bool, device=feats.device)
        return feats, mask

    def _load_backbone_state_dict(self, state_dict: Dict[str, Tensor], source: str) -> None:
        sd = dict(state_dict)
        if any(k.startswith("decoder_") for k in sd):  # full MAE pre-training checkpoint
            sd = {k: v for k, v in sd.items() if not k.startswith(MAE_DECODER_PREFIXES)}
        # timm's own checkpoint filter adapts foreign layouts (official MAE/DeiT/OpenCLIP...) and
        # resamples position embeddings to this model's grid; keys and shapes are then checked strictly.
        filter_fn = getattr(sys.modules.get(type(self.backbone).__module__), "checkpoint_filter_fn", None)
        if filter_fn is not None:
            sd = filter_fn(sd, self.backbone)
        load_state_dict_strict(self.backbone, sd, source, f"timm model {self.cfg.arch!r}")

    def _resolve_tag(self, tag: str) -> Path:
        import timm
        from timm.models import get_pretrained_cfg

        arch = str(self.cfg.arch)
        if tag.startswith("hf-hub:"):
            return self.find_hf_hub_file(tag, TIMM_HF_FILENAMES, "timm weights")
        cache_dirs: List[Optional[str]] = [self.cfg.cache_dir] if self.cfg.cache_dir else [None]
        looked: List[str] = []
        base = arch.split(".")[0]
        name = f"{base}.{tag}"
        pcfg = get_pretrained_cfg(name, allow_unregistered=False) if name in timm.list_pretrained(name) else None
        if pcfg is None:
            raise ValueError(
                f"{tag!r} is neither an existing file nor a timm pretrained tag of {base!r}; tags: "
                f"{', '.join(n.split('.', 1)[1] for n in timm.list_pretrained(base + '.*')) or '(none)'}"
            )
        if pcfg.file:
            looked.append(str(pcfg.file))
            if Path(pcfg.file).is_file():
                return Path(pcfg.file)
        if pcfg.hf_hub_id:
            names = [pcfg.hf_hub_filename] if pcfg.hf_hub_filename else list(TIMM_HF_FILENAMES)
            found = find_in_hf_cache(pcfg.hf_hub_id, names, cache_dirs, looked)
            if found is not None:
                return found
        if pcfg.url:
            dirs = [self.cfg.cache_dir] if self.cfg.cache_dir else [os.path.join(torch.hub.get_dir(), "checkpoints")]
            found = find_flat_file(os.path.basename(pcfg.url), dirs, looked)
            if found is not None:
                return found
        raise not_found_error(f"timm weights {name!r}", looked)
