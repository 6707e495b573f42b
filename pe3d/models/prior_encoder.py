"""The Live3D-style prior encoder: portrait image -> EG3D triplane in one pass.

Structure (3DPE Sec. 3.1, Eq. 1: ``T = E_t(E_high(I), E_low(I))``)::

    image [B,3,S,S] in [0,1] -> [-1,1], + 2 pixel-coordinate channels -> x [B,5,S,S]
      E_low  (LowResEncoder):  ResNet stem + residual stages (no BN) -> ASPP (DeepLabV3 head)
                               -> ViT stage (overlapping patch embed, transformer blocks)
                               -> pixel shuffle, upsample to the fusion grid, convs  -> F_g [B,C_g,S_f,S_f]
      E_high (HighResEncoder): plain strided convs                                   -> F_h [B,C_h,S_f,S_f]
      (the editor inserts a prompt cross-attention here: F_a = crossatt(F_h, E_p(P)))
      E_t    (TriplaneViTDecoder): concat(F_a, F_g) -> convs -> ViT stage (LayerNorms)
                               -> pixel shuffle, [skip concat of F_a / F_g], upsample to R, convs
                                                                         -> T [B,3,C,R,R]

Paper scale (``configs/model/paper.yaml``, the numbers of the 3DPE code's "LT" encoder):
512^2 input, ResNet-34 stages 1-2 (3 + 4 basic blocks, stride 8) + ASPP(256; rates
12/24/36), a 2-block 1024-d ViT at 32^2 tokens; E_high 7 convs to 128 ch at 128^2;
E_t a 1-block 1024-d ViT (2 heads, spatial reduction 2) at 64^2 tokens, then convs to
a 3 x 32 x 256^2 triplane.

Normalization: E_low and E_high have none (Live3D drops batch norm); E_t carries
LayerNorms (and optionally GroupNorms) with affine parameters, which is what the
norm-only adaptation of Sec. 3.3 tunes (:meth:`TriplaneViTDecoder.norm_parameters`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterator, List

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pe3d.models.depth_lift import DepthLift
from pe3d.models.layers import (
    ACTIVATIONS,
    ASPP,
    COORDINATE_MODES,
    BottleneckResidual,
    ConvAct,
    ResidualBlock,
    TokenStage,
    cat_channels,
    coordinate_channels,
    init_conv_kaiming_fan_out,
)

SKIP_NAMES = ("high", "low")
"""Feature names accepted in :attr:`PriorEncoderConfig.t_skip`."""

TRIPLANE_LAYOUTS = ("eg3d", "image")
"""Values accepted in :attr:`PriorEncoderConfig.triplane_layout`."""

INPUT_CHANNELS = 5
"""Channels of the prepared encoder input: RGB in [-1, 1] plus two coordinate channels."""


@dataclass
class PriorEncoderConfig:
    """Every size of the prior encoder. Defaults are the paper scale (512^2 -> 3 x 32 x 256^2).

    Resolutions (all derived, checked in ``__post_init__``):

    * fusion grid ``S_f = image_size / prod(high_strides)`` (paper 128): E_high's output
      size, the size E_low's output is resized to, and E_t's input size.
    * E_low's residual output ``S_l = image_size / (2 * (2 if low_stem_pool) * prod(low_stage_strides))``
      (paper 64); its ViT token grid is ``S_l / low_vit_stride`` (paper 32).
    * E_t's token grid is ``S_f / t_vit_stride`` (paper 64).
    """

    image_size: int = 512
    """Input side length ``S`` (square images)."""
    triplane_resolution: int = 256
    """Triplane side length ``R``."""
    triplane_channels: int = 32
    """Channels per plane ``C`` (the triplane has ``3 * C`` channels; paper 32 -> 96)."""
    activation: str = "leaky_relu"
    """Activation of E_high, E_low's head and E_t's convs."""

    # --- E_low: ResNet-34 (no BN) stages + DeepLabV3 ASPP + ViT ---------------------
    low_activation: str = "relu"
    """Activation inside E_low's residual stages and ASPP."""
    low_stem_channels: int = 64
    low_stem_kernel: int = 7
    """Stem conv kernel (stride 2)."""
    low_stem_pool: bool = True
    """3x3 max-pool at stride 2 after the stem (ResNet)."""
    low_stage_widths: List[int] = field(default_factory=lambda: [64, 128])
    low_stage_depths: List[int] = field(default_factory=lambda: [3, 4])
    """Basic blocks per stage (ResNet-34's first two stages: 3, 4)."""
    low_stage_strides: List[int] = field(default_factory=lambda: [1, 2])
    low_zero_init_residual: bool = True
    """Start each residual branch at zero (trains stably without normalization)."""
    low_aspp_channels: int = 256
    """ASPP width; 0 disables the ASPP."""
    low_aspp_rates: List[int] = field(default_factory=lambda: [12, 24, 36])
    low_aspp_pooling: bool = True
    low_vit_dim: int = 1024
    low_vit_depth: int = 2
    low_vit_heads: int = 4
    low_vit_mlp_ratio: float = 2.0
    low_vit_patch_size: int = 7
    low_vit_stride: int = 2
    low_vit_sr_ratio: int = 1
    low_head_widths: List[int] = field(default_factory=lambda: [128, 128])
    """Convs after resizing to the fusion grid; the last width is ``C_g`` (no activation after it)."""

    # --- E_high: plain convs ---------------------------------------------------------
    high_widths: List[int] = field(default_factory=lambda: [64, 128, 128, 128, 128, 128, 128])
    """Conv widths; the last is ``C_h`` (no activation after it)."""
    high_kernels: List[int] = field(default_factory=lambda: [7, 3, 3, 3, 3, 3, 3])
    high_strides: List[int] = field(default_factory=lambda: [2, 2, 1, 1, 1, 1, 1])

    # --- E_t: fusion convs + ViT + conv head -------------------------------------------
    t_fuse_widths: List[int] = field(default_factory=lambda: [256])
    """Convs on ``concat(F_a, F_g)`` before the ViT."""
    t_vit_dim: int = 1024
    t_vit_depth: int = 1
    t_vit_heads: int = 2
    t_vit_mlp_ratio: float = 2.0
    t_vit_patch_size: int = 7
    t_vit_stride: int = 2
    t_vit_sr_ratio: int = 2
    t_skip: List[str] = field(default_factory=list)
    """Features concatenated to the ViT output before the head: any of ``"high"`` (F_a), ``"low"`` (F_g)."""
    t_head_widths: List[int] = field(default_factory=lambda: [256, 128, 128, 96])
    """Head convs; the map is resized to ``triplane_resolution`` after the first one."""
    t_norm_groups: int = 0
    """GroupNorm groups in E_t's convs (0: none, as in Live3D); adds norm-adaptable parameters."""
    t_refine_blocks: int = 0
    """Residual blocks at the full triplane resolution between the head convs and the output conv
    (0: none, as in Live3D). Each is ``x + conv(act(norm(conv(x))))`` with the last conv starting at
    zero, so blocks added to a trained encoder leave its output unchanged until they train."""
    t_refine_width: int = 64
    """Inner width of each ``t_refine_blocks`` block."""
    t_input_skip: bool = False
    """Concatenate the encoder input (image and coordinate channels), resized to the triplane
    resolution, to the head's features right after the resize: a full-resolution path that keeps
    the planes as sharp as the input (off in the paper's encoder)."""
    triplane_layout: str = "eg3d"
    """How E_t's output map lies on the planes. ``"eg3d"``: as is (the paper). ``"image"``: the map
    is laid out like the input image and turned into EG3D's plane axes by fixed flips and transposes
    (the xy plane's rows flipped so image rows follow world -y, the zx plane transposed so its
    columns follow world x like the other two), so convolutions need not learn a global flip."""
    t_depth_lift: int = 0
    """Channels lifted along each image column into the two depth planes (:class:`pe3d.models.depth_lift.DepthLift`):
    every full-resolution pixel of E_t's head predicts a distribution over the planes' depth rows and a feature,
    and the column's sum lands on the ``(x, z)`` and ``(z, x)`` planes through a zero-initialised convolution.
    Needs ``triplane_layout: image`` (where those planes' columns follow the image's). 0: none (the paper)."""
    t_plane_bias: bool = False
    """A learned tensor of the output planes' shape (``3 * C x R x R``, before any ``plane_border``), added to E_t's
    output for every input and starting at zero: one cell-by-cell offset shared by all identities (e.g. the mean
    head's depth profile in the depth planes, which E_t's convolutions can place only through its coarse
    token grid). Grown onto a trained encoder it leaves the output unchanged until it trains. False: none (the paper)."""
    plane_border: int = 0
    """Cells added on each side of every output plane by repeating its edge cells (replicate padding):
    the planes become ``triplane_resolution + 2 * plane_border`` wide and the renderer's triplane box
    grows with them (:func:`pe3d.models.prior.renderer_config`; ``renderer.ray_march.box_warp`` stays the
    side that the ``triplane_resolution`` cells span). A box that matches the input frame (the mini
    models') cannot hold what a novel view shows beyond it: at pitch +15 deg 22 % of the head's
    foreground, the torso below the frame (docs/results/quality/visibility.md). 0: none (the paper)."""
    mix_ffn: bool = True
    """Depthwise 3x3 conv inside the transformer MLPs (SegFormer Mix-FFN; gives position)."""

    # --- Switches for the 3DPE / Live3D code's variant (defaults: pe3d's own) ---------------
    coordinates: str = "unit"
    """Coordinate channels: ``"unit"`` (row/column in [-1, 1]) or ``"pixels"`` (raw indices 0..S-1, 3DPE code)."""
    vit_qkv_bias: bool = True
    """Biases on the ViT attentions' q and kv projections (3DPE code: none)."""
    vit_final_norm: bool = True
    """LayerNorm after the ViT blocks of E_low and E_t (3DPE code: none)."""
    align_corners: bool = False
    """``align_corners`` of the bilinear resizes in E_low and E_t (3DPE code: ``True``, ``UpsamplingBilinear2d``)."""
    t_fuse_activation: bool = True
    """Activation after E_t's last fuse conv (3DPE code's LT encoder: none)."""

    def __post_init__(self) -> None:
        self.validate()

    # Derived sizes -----------------------------------------------------------------
    @property
    def fusion_resolution(self) -> int:
        """``S_f``: E_high's output size and E_t's input size."""
        return self.image_size // math.prod(self.high_strides)

    @property
    def low_feature_resolution(self) -> int:
        """Side of E_low's residual-stage output (input of its ASPP and ViT)."""
        return self.image_size // self.low_stride

    @property
    def plane_resolution(self) -> int:
        """Side of the output planes: ``triplane_resolution`` plus ``plane_border`` cells on each side."""
        return self.triplane_resolution + 2 * self.plane_border

    @property
    def low_stride(self) -> int:
        """Total downsampling of E_low's residual stages."""
        return 2 * (2 if self.low_stem_pool else 1) * math.prod(self.low_stage_strides)

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first inconsistent field."""
        def need(cond: bool, msg: str) -> None:
            if not cond:
                raise ValueError(f"PriorEncoderConfig: {msg}")

        need(self.coordinates in COORDINATE_MODES, f"coordinates={self.coordinates!r} not in {COORDINATE_MODES}")
        for name in ("activation", "low_activation"):
            need(getattr(self, name) in ACTIVATIONS, f"{name}={getattr(self, name)!r} not in {ACTIVATIONS}")
        n = len(self.low_stage_widths)
        need(n >= 1 and len(self.low_stage_depths) == n and len(self.low_stage_strides) == n,
             "low_stage_widths/depths/strides must be non-empty lists of equal length")
        n = len(self.high_widths)
        need(n >= 1 and len(self.high_kernels) == n and len(self.high_strides) == n,
             "high_widths/kernels/strides must be non-empty lists of equal length")
        need(len(self.low_head_widths) >= 1, "low_head_widths must not be empty")
        need(len(self.t_head_widths) >= 1, "t_head_widths must not be empty")
        need(len(self.t_fuse_widths) >= 1, "t_fuse_widths must not be empty")
        need(self.t_refine_blocks >= 0 and self.t_refine_width >= 1,
             f"t_refine_blocks={self.t_refine_blocks} must be >= 0 and t_refine_width={self.t_refine_width} >= 1")
        need(all(s in SKIP_NAMES for s in self.t_skip), f"t_skip={list(self.t_skip)} must hold only {SKIP_NAMES}")
        need(self.image_size % math.prod(self.high_strides) == 0,
             f"image_size {self.image_size} not divisible by prod(high_strides)={math.prod(self.high_strides)}")
        need(self.image_size % self.low_stride == 0,
             f"image_size {self.image_size} not divisible by E_low's stride {self.low_stride}")
        need(self.low_feature_resolution % self.low_vit_stride == 0,
             f"E_low map {self.low_feature_resolution} not divisible by low_vit_stride {self.low_vit_stride}")
        need(self.fusion_resolution % self.t_vit_stride == 0,
             f"fusion grid {self.fusion_resolution} not divisible by t_vit_stride {self.t_vit_stride}")
        for prefix in ("low_vit", "t_vit"):
            dim, heads, stride, patch = (getattr(self, f"{prefix}_{k}") for k in ("dim", "heads", "stride", "patch_size"))
            need(patch % 2 == 1 and patch >= stride, f"{prefix}_patch_size {patch} must be odd and >= {prefix}_stride")
            need(dim % heads == 0, f"{prefix}_dim {dim} not divisible by {prefix}_heads {heads}")
            need(dim % (stride * stride) == 0, f"{prefix}_dim {dim} not divisible by {prefix}_stride**2")
        t_tokens = self.fusion_resolution // self.t_vit_stride
        need(t_tokens % self.t_vit_sr_ratio == 0, f"E_t token grid {t_tokens} not divisible by t_vit_sr_ratio")
        l_tokens = self.low_feature_resolution // self.low_vit_stride
        need(l_tokens % self.low_vit_sr_ratio == 0, f"E_low token grid {l_tokens} not divisible by low_vit_sr_ratio")
        need(self.triplane_resolution >= 1 and self.triplane_channels >= 1, "triplane sizes must be positive")
        need(self.plane_border >= 0, f"plane_border must be >= 0, got {self.plane_border}")
        need(self.triplane_layout in TRIPLANE_LAYOUTS, f"triplane_layout={self.triplane_layout!r} not in {TRIPLANE_LAYOUTS}")
        need(self.t_depth_lift >= 0, f"t_depth_lift must be >= 0, got {self.t_depth_lift}")
        need(self.t_depth_lift == 0 or self.triplane_layout == "image",
             f"t_depth_lift={self.t_depth_lift} needs triplane_layout='image' (the depth planes' columns must "
             f"follow the image's), got {self.triplane_layout!r}")


class LowResEncoder(nn.Module):
    """E_low: global, low-frequency (geometry) features ``F_g``.

    ``x [B, C_in, S, S]`` (image in [-1,1] + coordinate channels) -> ``F_g [B, C_g, S_f, S_f]``
    with ``C_g = low_head_widths[-1]`` and ``S_f`` the fusion grid.
    """

    def __init__(self, cfg: PriorEncoderConfig, in_channels: int = 5) -> None:
        super().__init__()
        act = cfg.low_activation
        stem: list[nn.Module] = [ConvAct(in_channels, cfg.low_stem_channels, cfg.low_stem_kernel, stride=2,
                                         activation=act)]
        if cfg.low_stem_pool:
            stem.append(nn.MaxPool2d(3, stride=2, padding=1))
        self.stem = nn.Sequential(*stem)
        blocks: list[nn.Module] = []
        width = cfg.low_stem_channels
        for w, d, s in zip(cfg.low_stage_widths, cfg.low_stage_depths, cfg.low_stage_strides):
            for i in range(d):
                blocks.append(ResidualBlock(width, w, stride=s if i == 0 else 1, activation=act,
                                            zero_init_last=cfg.low_zero_init_residual))
                width = w
        self.stages = nn.Sequential(*blocks)
        self.aspp: nn.Module = nn.Identity()
        if cfg.low_aspp_channels > 0:
            self.aspp = ASPP(width, cfg.low_aspp_channels, cfg.low_aspp_rates, cfg.low_aspp_pooling, act)
            width = cfg.low_aspp_channels
        self.vit = TokenStage(width, cfg.low_vit_dim, cfg.low_vit_depth, cfg.low_vit_heads, cfg.low_vit_mlp_ratio,
                              cfg.low_vit_patch_size, cfg.low_vit_stride, cfg.low_vit_sr_ratio, cfg.mix_ffn,
                              qkv_bias=cfg.vit_qkv_bias, final_norm=cfg.vit_final_norm)
        self.out_resolution = cfg.fusion_resolution
        self.align_corners = cfg.align_corners
        self.head = _conv_stack(self.vit.out_channels, cfg.low_head_widths, cfg.activation)
        self.out_channels = cfg.low_head_widths[-1]

    def forward(self, x: Tensor) -> Tensor:
        """``[B, C_in, S, S]`` -> ``F_g [B, C_g, S_f, S_f]``."""
        y = self.vit(self.aspp(self.stages(self.stem(x))))
        return self.head(_resize(y, self.out_resolution, align_corners=self.align_corners))


class HighResEncoder(nn.Module):
    """E_high: local, high-frequency (appearance) features ``F_h``.

    ``x [B, C_in, S, S]`` -> ``F_h [B, C_h, S_f, S_f]`` with ``C_h = high_widths[-1]``,
    ``S_f = S / prod(high_strides)``. The last conv has no activation.
    """

    def __init__(self, cfg: PriorEncoderConfig, in_channels: int = 5) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = in_channels
        last = len(cfg.high_widths) - 1
        for i, (w, k, s) in enumerate(zip(cfg.high_widths, cfg.high_kernels, cfg.high_strides)):
            layers.append(ConvAct(width, w, k, stride=s, activation=None if i == last else cfg.activation))
            width = w
        self.net = nn.Sequential(*layers)
        self.out_channels = width

    def forward(self, x: Tensor) -> Tensor:
        """``[B, C_in, S, S]`` -> ``F_h [B, C_h, S_f, S_f]``."""
        return self.net(x)


class TriplaneViTDecoder(nn.Module):
    """E_t: fuses ``F_a`` (high branch, possibly prompt-conditioned) and ``F_g`` into the triplane.

    ``f_a [B, C_h, S_f, S_f]``, ``f_g [B, C_g, S_f, S_f]`` -> planes ``[B, 3, C, R, R]``.
    Holds LayerNorms (patch embed, each block's two pre-norms, spatial-reduction norms,
    the final token norm) and, when ``t_norm_groups > 0``, GroupNorms in its convs.
    """

    def __init__(self, cfg: PriorEncoderConfig, high_channels: int, low_channels: int) -> None:
        super().__init__()
        self.skip = tuple(cfg.t_skip)
        self.triplane_channels = cfg.triplane_channels
        self.resolution = cfg.triplane_resolution
        groups = cfg.t_norm_groups
        self.align_corners = cfg.align_corners
        self.fuse = _conv_stack(high_channels + low_channels, cfg.t_fuse_widths, cfg.activation,
                                last_activation=cfg.t_fuse_activation, norm_groups=groups)
        self.vit = TokenStage(cfg.t_fuse_widths[-1], cfg.t_vit_dim, cfg.t_vit_depth,
                              cfg.t_vit_heads, cfg.t_vit_mlp_ratio, cfg.t_vit_patch_size, cfg.t_vit_stride,
                              cfg.t_vit_sr_ratio, cfg.mix_ffn, qkv_bias=cfg.vit_qkv_bias,
                              final_norm=cfg.vit_final_norm)
        head_in = self.vit.out_channels + ("high" in self.skip) * high_channels + ("low" in self.skip) * low_channels
        widths = list(cfg.t_head_widths)
        self.input_skip = cfg.t_input_skip
        self.layout = cfg.triplane_layout
        self.border = cfg.plane_border
        self.head_first = ConvAct(head_in, widths[0], 3, activation=cfg.activation, norm_groups=groups)
        rest_in = widths[0] + INPUT_CHANNELS * self.input_skip
        self.head_rest = _conv_stack(rest_in, widths[1:], cfg.activation, last_activation=True, norm_groups=groups)
        head_out = widths[-1] if len(widths) > 1 else rest_in
        self.refine = nn.Sequential(*(BottleneckResidual(head_out, cfg.t_refine_width, cfg.activation, groups)
                                      for _ in range(cfg.t_refine_blocks)))
        self.out = nn.Conv2d(head_out, 3 * cfg.triplane_channels, 3, padding=1)
        self.lift = (DepthLift(head_out, cfg.t_depth_lift, cfg.triplane_resolution, cfg.triplane_channels)
                     if cfg.t_depth_lift else None)
        self.plane_bias = (nn.Parameter(torch.zeros(1, 3 * cfg.triplane_channels, cfg.triplane_resolution,
                                                    cfg.triplane_resolution)) if cfg.t_plane_bias else None)

    def norm_parameters(self) -> Iterator[nn.Parameter]:
        """The affine parameters of every LayerNorm/GroupNorm in E_t (what norm-only adaptation trains)."""
        for module in self.modules():
            if isinstance(module, (nn.LayerNorm, nn.GroupNorm)):
                yield from module.parameters(recurse=False)

    def forward(self, f_a: Tensor, f_g: Tensor, x: Tensor | None = None) -> Tensor:
        """``f_a [B, C_h, S_f, S_f]``, ``f_g [B, C_g, S_f, S_f]`` (and the prepared input
        ``x [B, 5, S, S]`` when ``t_input_skip``) -> ``[B, 3, C, R, R]``."""
        y = self.vit(self.fuse(cat_channels([f_a, f_g])))
        skips = [f for name, f in (("high", f_a), ("low", f_g)) if name in self.skip]
        if skips:
            y = cat_channels([y, *skips])
        y = _resize(self.head_first(y), self.resolution, align_corners=self.align_corners)
        if self.input_skip:
            if x is None:
                raise ValueError("this E_t has t_input_skip=true: pass the prepared input image x")
            y = cat_channels([y, _resize(x, self.resolution, antialias=True)])
        features = self.refine(self.head_rest(y))
        planes = self.out(features)
        if self.lift is not None:
            depth_planes = planes[:, self.triplane_channels:] + self.lift(features)
            planes = torch.cat([planes[:, :self.triplane_channels], depth_planes], dim=1)
        if self.plane_bias is not None:
            planes = planes + self.plane_bias
        if self.border:
            planes = F.pad(planes, (self.border,) * 4, mode="replicate")
        b, _, r, _ = planes.shape
        planes = planes.view(b, 3, self.triplane_channels, r, r)
        return image_layout_to_eg3d(planes) if self.layout == "image" else planes


class PriorEncoder(nn.Module):
    """The prior (Live3D-style) encoder ``T = E_t(E_high(I), E_low(I))``.

    ``forward(image [B, 3, S, S] in [0, 1]) -> planes [B, 3, C, R, R]``. The input is
    mapped to [-1, 1] and two pixel-coordinate channels are appended inside
    (:meth:`prepare_input`). The editor calls the stages separately to put its prompt
    cross-attention between :meth:`encode_high` and :meth:`decode`.
    """

    def __init__(self, config: PriorEncoderConfig | None = None) -> None:
        super().__init__()
        self.config = config if config is not None else PriorEncoderConfig()
        cfg = self.config
        self.low = LowResEncoder(cfg, in_channels=5)
        self.high = HighResEncoder(cfg, in_channels=5)
        self.decoder = TriplaneViTDecoder(cfg, self.high.out_channels, self.low.out_channels)
        self.apply(init_conv_kaiming_fan_out)
        for module in self.modules():
            if isinstance(module, (ResidualBlock, BottleneckResidual, DepthLift)):
                module.reset_last()

    @property
    def high_feature_channels(self) -> int:
        """``C_h``: channels of ``F_h``/``F_a`` (what the prompt cross-attention sees)."""
        return self.high.out_channels

    @property
    def low_feature_channels(self) -> int:
        """``C_g``: channels of ``F_g``."""
        return self.low.out_channels

    @property
    def feature_resolution(self) -> int:
        """``S_f``: side of ``F_h``, ``F_a`` and ``F_g``."""
        return self.config.fusion_resolution

    def norm_parameters(self) -> Iterator[nn.Parameter]:
        """E_t's normalization parameters (see :meth:`TriplaneViTDecoder.norm_parameters`)."""
        return self.decoder.norm_parameters()

    def lift_parameters(self) -> Iterator[nn.Parameter]:
        """The depth lift's parameters (``t_depth_lift``; none when it is off)."""
        if self.decoder.lift is not None:
            yield from self.decoder.lift.parameters()

    def plane_bias_parameters(self) -> Iterator[nn.Parameter]:
        """The learned plane offset (``t_plane_bias``; none when it is off)."""
        if self.decoder.plane_bias is not None:
            yield self.decoder.plane_bias

    def prepare_input(self, image: Tensor) -> Tensor:
        """Check ``image [B, 3, S, S]`` in [0, 1]; return ``[B, 5, S, S]`` = (2 * image - 1, row, column).

        The coordinate channels follow :attr:`PriorEncoderConfig.coordinates`.
        """
        s = self.config.image_size
        if image.dim() != 4 or image.shape[1] != 3 or image.shape[2] != s or image.shape[3] != s:
            raise ValueError(f"PriorEncoder expected an image of shape [B, 3, {s}, {s}], got {list(image.shape)}")
        if not image.is_floating_point():
            raise TypeError(f"PriorEncoder expects a float image in [0, 1], got dtype {image.dtype}")
        coords = coordinate_channels(image.shape[0], s, s, device=image.device, dtype=image.dtype,
                                     mode=self.config.coordinates)
        return torch.cat([image * 2.0 - 1.0, coords], dim=1)

    def encode_low(self, image: Tensor) -> Tensor:
        """E_low: ``image [B, 3, S, S]`` in [0, 1] -> ``F_g [B, C_g, S_f, S_f]``."""
        return self.low(self.prepare_input(image))

    def encode_high(self, image: Tensor) -> Tensor:
        """E_high: ``image [B, 3, S, S]`` in [0, 1] -> ``F_h [B, C_h, S_f, S_f]``."""
        return self.high(self.prepare_input(image))

    def decode(self, f_a: Tensor, f_g: Tensor, image: Tensor | None = None) -> Tensor:
        """E_t: ``f_a [B, C_h, S_f, S_f]``, ``f_g [B, C_g, S_f, S_f]`` -> planes ``[B, 3, C, R, R]``.

        ``image [B, 3, S, S]`` in [0, 1] is needed when the config has ``t_input_skip``."""
        x = self.prepare_input(image) if image is not None and self.config.t_input_skip else None
        return self.decoder(f_a, f_g, x)

    def forward(self, image: Tensor) -> Tensor:
        """``image [B, 3, S, S]`` in [0, 1] -> planes ``[B, 3, C, R, R]``."""
        x = self.prepare_input(image)
        return self.decoder(self.high(x), self.low(x), x)


def _conv_stack(in_channels: int, widths: List[int], activation: str, last_activation: bool = False,
                norm_groups: int = 0) -> nn.Sequential:
    """3x3 ``ConvAct`` layers of the given widths; the last one without activation unless asked."""
    layers: list[nn.Module] = []
    for i, w in enumerate(widths):
        act = activation if (i < len(widths) - 1 or last_activation) else None
        layers.append(ConvAct(in_channels, w, 3, activation=act, norm_groups=norm_groups if act else 0))
        in_channels = w
    return nn.Sequential(*layers)


def _resize(x: Tensor, size: int, antialias: bool = False, align_corners: bool = False) -> Tensor:
    """Bilinear resize of ``[B, C, H, W]`` to ``[B, C, size, size]`` (no-op when already that size)."""
    if x.shape[-2] == size and x.shape[-1] == size:
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=align_corners, antialias=antialias)


def image_layout_to_eg3d(planes: Tensor) -> Tensor:
    """Planes ``[B, 3, C, R, R]`` laid out like the input image -> EG3D's plane axes.

    EG3D's planes are indexed (column, row) = (x, y), (x, z) and (z, x) (see
    :func:`pe3d.rendering.planes.project_onto_planes`), while image rows run along world -y.
    The xy plane is flipped vertically and the zx plane transposed, so that in the image
    layout every plane's columns follow image columns (world x) and the xy plane's rows
    follow image rows. Parameter-free; its own inverse up to the transpose.
    """
    return torch.stack([planes[:, 0].flip(-2), planes[:, 1], planes[:, 2].transpose(-1, -2)], dim=1)
