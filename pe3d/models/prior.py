"""The 3D prior: the Live3D-style encoder plus the triplane renderer ``R``.

``PriorModel(image) -> triplane``; ``PriorModel.render(triplane, cameras)`` gives
images, depth and opacity. Checkpoints are safetensors files whose header holds the
resolved model config, so a file is all that is needed to rebuild the model.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Optional

import torch
from torch import Tensor, nn

from pe3d.eg3d.triplane_renderer import EG3DRendererConfig, EG3DTriplaneRenderer
from pe3d.models.checkpoints import load_model, save_model
from pe3d.models.prior_encoder import PriorEncoder, PriorEncoderConfig
from pe3d.rendering.renderer import RenderOutput, RendererConfig, TriplaneRenderer

PRIOR_KIND = "pe3d-prior"


@dataclass
class PriorModelConfig:
    """Sizes of the prior: ``encoder`` (E_low, E_high, E_t) and ``renderer`` (R).

    ``eg3d_renderer``, when set, makes ``R`` EG3D's decoder + importance renderer +
    super-resolution with a constant style (:class:`~pe3d.eg3d.triplane_renderer.EG3DTriplaneRenderer`,
    what the 3DPE / Live3D checkpoints were trained with); ``renderer`` is then unused.
    """

    encoder: PriorEncoderConfig = field(default_factory=PriorEncoderConfig)
    renderer: RendererConfig = field(default_factory=RendererConfig)
    eg3d_renderer: Optional[EG3DRendererConfig] = None


class PriorModel(nn.Module):
    """Image ``[B,3,H,W]`` in [0,1] -> triplane ``[B,3,C,R,R]``; renders it at any camera."""

    def __init__(self, cfg: PriorModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.encoder = PriorEncoder(cfg.encoder)
        self.renderer: nn.Module = (EG3DTriplaneRenderer(cfg.eg3d_renderer) if cfg.eg3d_renderer is not None
                                    else TriplaneRenderer(renderer_config(cfg)))

    def forward(self, image: Tensor) -> Tensor:
        """Triplane of ``image`` ``[B,3,H,W]`` -> ``[B,3,C,R,R]``."""
        return self.encoder(image)

    def render(self, planes: Tensor, labels: Tensor, resolution: int | None = None, **kwargs) -> RenderOutput:
        """Render ``planes [B,3,C,R,R]`` at cameras ``labels [B,25]``."""
        return self.renderer(planes, labels, resolution=resolution, **kwargs)


def renderer_config(cfg: PriorModelConfig) -> RendererConfig:
    """The renderer's settings for ``cfg``'s planes: ``cfg.renderer`` with the triplane box widened by the
    encoder's ``plane_border`` cells on each side (``box_warp`` scaled by ``plane_resolution / triplane_resolution``),
    so a plane cell keeps its size and the border reaches beyond the input frame.

    Raises:
        ValueError: a border with EG3D's renderer (its planes are the generator's: no border).
    """
    enc = cfg.encoder
    if not enc.plane_border:
        return cfg.renderer
    if cfg.eg3d_renderer is not None:
        raise ValueError(f"encoder.plane_border={enc.plane_border} needs pe3d's renderer; EG3D's renderer (eg3d_renderer) takes no border")
    ray_march = replace(cfg.renderer.ray_march, box_warp=cfg.renderer.ray_march.box_warp * enc.plane_resolution / enc.triplane_resolution)
    return replace(cfg.renderer, ray_march=ray_march)


def model_config_from_yaml(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> PriorModelConfig:
    """The prior's part (``encoder`` + ``renderer``) of a model YAML such as ``configs/model/mini.yaml``."""
    from pe3d.models.editor import editor_config_from_yaml

    return editor_config_from_yaml(path, overrides).prior


def save_prior(model: PriorModel, path: str | Path, extra_metadata: dict | None = None, dtype: str = "float32") -> Path:
    """Write ``model`` as safetensors with its config (YAML) and content hash in the header."""
    return save_model(model, model.cfg, PRIOR_KIND, path, extra_metadata, dtype)


def load_prior(path: str | Path, map_location: str | torch.device = "cpu") -> PriorModel:
    """Rebuild a :class:`PriorModel` from a file written by :func:`save_prior` (strict keys), its convolutions
    stored channels-last on a CPU (:func:`~pe3d.devices.inference_memory_layout`: faster, same values)."""
    from pe3d.devices import inference_memory_layout

    model, _ = load_model(path, PRIOR_KIND, PriorModelConfig, PriorModel)
    return inference_memory_layout(model.to(map_location))
