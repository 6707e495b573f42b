"""EG3D's renderer for encoder triplanes: decoder + importance renderer + ``SuperresolutionHybrid8XDC``.

The 3DPE and Live3D code renders the triplanes its encoder predicts with EG3D's own
pieces (their ``TriplaneRenderer``): the equalised-lr ``OSGDecoder``, the importance
renderer, and the 512^2 super-resolution head, whose style input is a *learned constant*
``w`` (``const [1, 1, w_dim]``) instead of the generator's ``ws``. This module is that
renderer on top of :mod:`pe3d.eg3d` (the faithful re-implementation of NVlabs' code), with
their state-dict keys (``const``, ``decoder.net.0.weight``, ``superresolution.block0...``),
so a :class:`~pe3d.models.prior.PriorModel` or editor selects it by config
(``eg3d_renderer:`` in a model YAML).

It speaks pe3d's renderer interface (:class:`~pe3d.rendering.renderer.RenderOutput`, images
in ``[0, 1]``); :meth:`EG3DTriplaneRenderer.render_eg3d` returns EG3D's own ``[-1, 1]``
output for comparisons with their code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional

import torch
from torch import Tensor, nn

from pe3d.eg3d.config import EG3DRenderingConfig
from pe3d.eg3d.generator import EG3DOutput, render_eg3d_planes
from pe3d.eg3d.renderer import OSGDecoder
from pe3d.eg3d.superres import SuperresolutionHybrid8XDC
from pe3d.rendering.decoder import DecoderOutput
from pe3d.rendering.planes import plane_sampler
from pe3d.rendering.renderer import RenderOutput
from pe3d.rendering.volume import RayMarchOptions


@dataclass
class EG3DRendererConfig:
    """Sizes and settings of :class:`EG3DTriplaneRenderer` (defaults: the 3DPE / Live3D release).

    Attributes:
        triplane_channels: channels per plane read by the decoder (32).
        decoder_hidden_dim, decoder_output_dim: the ``OSGDecoder`` MLP (64, 32 features).
        w_dim: width of the constant style vector ``const`` (512).
        sr_channels: widths of the two super-resolution blocks (256, 128).
        sr_input_resolution: side the raw image is resized to before SR (128); output is 4x.
        sr_conv_clamp: SR activation clamp; their renderer builds the SR with
            ``sr_num_fp16_res=0``, hence no clamp (``None``).
        neural_rendering_resolution: volume-rendering side (128).
        rendering: EG3D ``rendering_kwargs`` (ray range, samples, ``box_warp``, SR noise mode, antialias).
        eval_seed: in ``eval()`` mode, EG3D's sample jitter is drawn from a generator seeded with this
            value, so repeated renders (a turntable, a web preview) are identical; ``None`` draws from
            torch's global generator as EG3D does.
    """

    triplane_channels: int = 32
    decoder_hidden_dim: int = 64
    decoder_output_dim: int = 32
    w_dim: int = 512
    sr_channels: List[int] = field(default_factory=lambda: [256, 128])
    sr_input_resolution: int = 128
    sr_conv_clamp: Optional[float] = None
    neural_rendering_resolution: int = 128
    rendering: EG3DRenderingConfig = field(default_factory=EG3DRenderingConfig)
    eval_seed: Optional[int] = 0

    def __post_init__(self) -> None:
        if len(self.sr_channels) != 2:
            raise ValueError(f"eg3d_renderer.sr_channels must list 2 widths, got {list(self.sr_channels)}")
        if self.decoder_output_dim < 3:
            raise ValueError(f"eg3d_renderer.decoder_output_dim must be >= 3 (RGB first), got {self.decoder_output_dim}")
        if not self.rendering.ray_start < self.rendering.ray_end:
            raise ValueError("eg3d_renderer.rendering: ray_start must be < ray_end")

    @property
    def ray_march(self) -> RayMarchOptions:
        """These settings in pe3d's renderer terms (what :mod:`pe3d.mesh` reads): EG3D's density is
        ``softplus(sigma - 1)`` (``softplus_shift``), the box is ``rendering.box_warp`` wide."""
        r = self.rendering
        return RayMarchOptions(ray_start=r.ray_start, ray_end=r.ray_end, depth_resolution=r.depth_resolution,
                               depth_resolution_importance=r.depth_resolution_importance, box_warp=r.box_warp,
                               density_activation="softplus_shift", density_noise=r.density_noise)

    @property
    def image_resolution(self) -> int:
        """Side of the super-resolved image (``4 * sr_input_resolution``)."""
        return 4 * self.sr_input_resolution


class EG3DTriplaneRenderer(nn.Module):
    """Render triplanes ``[B, 3, C, H, W]`` at EG3D cameras ``[B, 25]`` as the 3DPE/Live3D code does.

    Submodules (their keys): ``const`` ``[1, 1, w_dim]``, ``decoder`` (:class:`~pe3d.eg3d.renderer.OSGDecoder`),
    ``superresolution`` (:class:`~pe3d.eg3d.superres.SuperresolutionHybrid8XDC`).
    """

    supports_ray_indices = False
    """Whole images only (see :meth:`forward`); training systems render full views with it."""
    training_render_kwargs = {"super_resolve": False}
    """What training systems pass: their losses compare the raw render, so the 512^2 super-resolution is skipped."""

    def __init__(self, config: EG3DRendererConfig | None = None) -> None:
        super().__init__()
        self.config = cfg = config if config is not None else EG3DRendererConfig()
        self.const = nn.Parameter(torch.randn(1, 1, cfg.w_dim))
        self.decoder = OSGDecoder(cfg.triplane_channels, cfg.decoder_hidden_dim, cfg.decoder_output_dim,
                                  cfg.rendering.decoder_lr_mul)
        self.superresolution = SuperresolutionHybrid8XDC(
            cfg.decoder_output_dim, cfg.sr_input_resolution, cfg.sr_channels, cfg.w_dim,
            antialias=cfg.rendering.sr_antialias, conv_clamp=cfg.sr_conv_clamp,
        )

    def query_field(self, planes: Tensor, coords: Tensor, directions: Tensor | None = None) -> DecoderOutput:
        """Decoder output at world points ``coords [B, M, 3]`` (features in EG3D's sigmoid range, raw sigma)."""
        return self.decoder(plane_sampler(planes, self.config.rendering.box_warp)(coords), directions)

    def render_eg3d(self, planes: Tensor, label: Tensor, resolution: int | None = None,
                    super_resolve: bool = True) -> EG3DOutput:
        """EG3D's output for ``planes [B, 3, C, H, W]`` at ``label [B, 25]``: images in ``[-1, 1]``.

        Draws its random numbers from torch's global generator (as their ``TriplaneRenderer.synthesis``).
        """
        if planes.dim() != 4 + 1 or planes.shape[1] != 3 or planes.shape[2] != self.config.triplane_channels:
            raise ValueError(f"EG3D renderer expected planes [B, 3, {self.config.triplane_channels}, H, W], "
                             f"got {list(planes.shape)}")
        resolution = resolution or self.config.neural_rendering_resolution
        ws = self.const.repeat(planes.shape[0], 1, 1) if super_resolve else None
        superres = self.superresolution if super_resolve else None
        return render_eg3d_planes(planes, self.decoder, superres, ws, label, resolution, self.config.rendering)

    def forward(self, planes: Tensor, label: Tensor, resolution: int | None = None,
                ray_indices: Tensor | None = None, generator: torch.Generator | None = None,
                super_resolve: bool = True, images_only: bool = False) -> RenderOutput:
        """pe3d's renderer interface: :class:`RenderOutput` with images in ``[0, 1]``.

        ``image`` is the raw volume-rendered RGB at ``resolution`` and ``image_sr`` the 4x
        super-resolved one. ``generator`` (or, in eval mode, ``config.eval_seed``) seeds EG3D's
        sample jitter. Ray subsets (``ray_indices``) are not supported: EG3D clamps depths over the
        whole batch and super-resolves whole images. ``images_only`` is accepted as
        :meth:`pe3d.rendering.TriplaneRenderer.forward` takes it and changes nothing here: EG3D's
        super-resolution reads every decoded channel.
        """
        if ray_indices is not None:
            raise ValueError("the EG3D renderer renders whole images only (ray_indices is not supported)")
        seed = None
        if generator is not None:
            seed = int(torch.randint(0, 2**62, (1,), generator=generator))
        elif not self.training and self.config.eval_seed is not None:
            seed = int(self.config.eval_seed)
        if seed is None:
            out = self.render_eg3d(planes, label, resolution, super_resolve)
        else:
            devices = [planes.device] if planes.device.type == "cuda" else []
            with torch.random.fork_rng(devices=devices):
                torch.manual_seed(seed)
                out = self.render_eg3d(planes, label, resolution, super_resolve)
        features = (out.features + 1) / 2
        return RenderOutput(image=features[:, :3], features=features, depth=out.image_depth, weights=out.opacity,
                            image_sr=(out.image + 1) / 2 if super_resolve else None)
