"""The EG3D generator (NVlabs ``TriPlaneGenerator``) in plain PyTorch.

``z [B, z_dim]`` + camera label ``c [B, 25]`` -> mapping -> ``ws`` -> StyleGAN2 backbone
-> a ``3 * C``-channel image viewed as a triplane ``[B, 3, C, R, R]`` -> importance
rendering at ``neural_rendering_resolution`` (feature image, depth) -> super-resolution
of the raw RGB to ``img_resolution``. Images are in ``[-1, 1]`` as in EG3D.

State-dict keys equal NVlabs' (``backbone.mapping.fc0.weight``,
``backbone.synthesis.b4.conv1.affine.weight``, ``superresolution.block0...``,
``decoder.net.0.weight``), so :mod:`pe3d.eg3d.importer` loads official weights with
``strict=True``. Everything runs on CPU (no custom CUDA ops).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from pe3d.eg3d.config import EG3DConfig
from pe3d.eg3d.renderer import OSGDecoder, importance_render
from pe3d.eg3d.stylegan2 import StyleGAN2Backbone
from pe3d.eg3d.superres import SuperresolutionHybrid8XDC
from pe3d.geometry.rays import sample_rays


@dataclass
class EG3DOutput:
    """What :meth:`TriPlaneGenerator.synthesis` returns (EG3D's dict, plus the triplane and opacity).

    Attributes:
        image: ``[B, 3, img_resolution^2]`` super-resolved RGB in about ``[-1, 1]``.
        image_raw: ``[B, 3, r, r]`` volume-rendered RGB (the first 3 features) in ``[-1, 1]``.
        image_depth: ``[B, 1, r, r]`` expected ray distance.
        features: ``[B, F, r, r]`` all rendered features (``[-1, 1]``).
        opacity: ``[B, 1, r, r]`` accumulated weight of each ray.
        planes: ``[B, 3, C, R, R]`` the triplane.
    """

    image: Tensor
    image_raw: Tensor
    image_depth: Tensor
    features: Tensor
    opacity: Tensor
    planes: Tensor


def to_unit_range(image: Tensor) -> Tensor:
    """EG3D's ``[-1, 1]`` images -> ``[0, 1]`` (clamped)."""
    return ((image + 1) / 2).clamp(0, 1)


class TriPlaneGenerator(nn.Module):
    """EG3D: latent + camera -> triplane -> rendered and super-resolved portrait.

    Args:
        cfg: :class:`~pe3d.eg3d.config.EG3DConfig` (``load_eg3d_config('ffhq512')`` for the official sizes).
    """

    def __init__(self, cfg: EG3DConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.z_dim, self.c_dim, self.w_dim = cfg.z_dim, cfg.c_dim, cfg.w_dim
        self.img_resolution = cfg.img_resolution
        self.backbone = StyleGAN2Backbone(
            cfg.z_dim, cfg.c_dim, cfg.w_dim, img_resolution=cfg.triplane_resolution,
            img_channels=3 * cfg.triplane_channels, channel_base=cfg.channel_base, channel_max=cfg.channel_max,
            conv_clamp=cfg.conv_clamp, mapping_layers=cfg.mapping.num_layers,
            mapping_lr_multiplier=cfg.mapping.lr_multiplier, w_avg_beta=cfg.mapping.w_avg_beta,
        )
        self.superresolution = SuperresolutionHybrid8XDC(
            cfg.decoder_output_dim, cfg.sr_input_resolution, cfg.sr_channels, cfg.w_dim,
            antialias=cfg.rendering.sr_antialias, conv_clamp=cfg.sr_conv_clamp,
        )
        self.decoder = OSGDecoder(cfg.triplane_channels, cfg.decoder_hidden_dim, cfg.decoder_output_dim, cfg.rendering.decoder_lr_mul)
        self.neural_rendering_resolution = cfg.neural_rendering_resolution

    @property
    def num_ws(self) -> int:
        """Number of ``w`` vectors the backbone consumes."""
        return self.backbone.num_ws

    def mapping(self, z: Tensor, c: Tensor, truncation_psi: float = 1.0, truncation_cutoff: int | None = None,
                update_emas: bool = False) -> Tensor:
        """``z [B, z_dim]``, conditioning camera ``c [B, 25]`` -> ``ws [B, num_ws, w_dim]``.

        The label is zeroed when ``rendering.c_gen_conditioning_zero`` and scaled by
        ``rendering.c_scale`` (EG3D's generator pose conditioning).
        """
        rendering = self.cfg.rendering
        if rendering.c_gen_conditioning_zero:
            c = torch.zeros_like(c)
        return self.backbone.mapping(z, c * rendering.c_scale, truncation_psi=truncation_psi,
                                     truncation_cutoff=truncation_cutoff, update_emas=update_emas)

    def synthesize_planes(self, ws: Tensor, noise_mode: str = "random") -> Tensor:
        """``ws`` -> triplane ``[B, 3, C, R, R]`` (the backbone image split into three planes)."""
        planes = self.backbone.synthesis(ws, noise_mode=noise_mode)
        return planes.view(planes.shape[0], 3, self.cfg.triplane_channels, planes.shape[-2], planes.shape[-1])

    def render_planes(self, planes: Tensor, ws: Tensor, c: Tensor, neural_rendering_resolution: int | None = None,
                      super_resolve: bool = True) -> EG3DOutput:
        """Render a triplane at cameras ``c [B, 25]``; ``ws`` modulates the super-resolution.

        ``super_resolve=False`` skips the SR head (``image`` is then the raw RGB).
        """
        resolution = neural_rendering_resolution or self.neural_rendering_resolution
        superres = self.superresolution if super_resolve else None
        return render_eg3d_planes(planes, self.decoder, superres, ws, c, resolution, self.cfg.rendering)

    def synthesis(self, ws: Tensor, c: Tensor, neural_rendering_resolution: int | None = None, noise_mode: str = "random",
                  super_resolve: bool = True) -> EG3DOutput:
        """``ws`` + rendering cameras ``c`` -> :class:`EG3DOutput` (EG3D's ``synthesis``)."""
        planes = self.synthesize_planes(ws, noise_mode=noise_mode)
        return self.render_planes(planes, ws, c, neural_rendering_resolution, super_resolve)

    def forward(self, z: Tensor, c: Tensor, truncation_psi: float = 1.0, truncation_cutoff: int | None = None,
                neural_rendering_resolution: int | None = None, noise_mode: str = "random") -> EG3DOutput:
        """Generate with ``c`` as both the conditioning and the rendering camera (EG3D's ``forward``)."""
        ws = self.mapping(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff)
        return self.synthesis(ws, c, neural_rendering_resolution=neural_rendering_resolution, noise_mode=noise_mode)


def render_eg3d_planes(planes: Tensor, decoder: nn.Module, superresolution: nn.Module | None, ws: Tensor | None,
                       c: Tensor, resolution: int, rendering) -> EG3DOutput:
    """EG3D's rendering of ``planes [B, 3, C, H, W]`` at cameras ``c [B, 25]``: importance rendering at
    ``resolution``², then ``superresolution`` (modulated by ``ws``) unless it is ``None`` (``image`` is then
    the raw RGB). Shared by the generator and the triplane renderer of imported models."""
    origins, directions = sample_rays(c, resolution)
    result = importance_render(planes, decoder, origins, directions, rendering)
    batch = planes.shape[0]

    def image(values: Tensor) -> Tensor:
        return values.permute(0, 2, 1).reshape(batch, values.shape[-1], resolution, resolution).contiguous()

    features = image(result.features)
    rgb = features[:, :3]
    sr = rgb
    if superresolution is not None:
        sr = superresolution(rgb, features, ws, noise_mode=rendering.superresolution_noise_mode)
    return EG3DOutput(image=sr, image_raw=rgb, image_depth=image(result.depth), features=features,
                      opacity=image(result.opacity), planes=planes)
