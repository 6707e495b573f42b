"""Prompt cross-attention after E_high (3DPE Sec. 3.2, Eq. 2: ``F_a = crossatt(E_high(I), E_p(P))``).

The high-branch feature map is embedded into tokens (overlapping patch embedding,
as in the 3DPE code, or a strided 1x1 projection with ``patch_size = 1``), the
tokens query the prompt tokens (keys/values), and the result is projected back to a
feature map at the original resolution and added to ``f_high``::

    f_high [B,C,H,W] -> (3x3 conv) -> patch embed (+LN) -> q [B,h*w,E]        h = H/stride
    prompt [B,L,D]   -> LN -> k, v [B,L,E]
    attn -> out_proj (zero-initialised) -> [B,h*w,C*stride^2] -> pixel shuffle -> delta [B,C,H,W]
    f_a = f_high + delta

The output projection starts at zero, so an untrained block returns ``f_high``
exactly and the editor starts as the prior encoder.

Paper dimensions (``configs/model/paper.yaml``): ``f_high`` is ``[B, 128, 128, 128]``
(E_high at 512^2 input); tokens from a 7x7 / stride-4 patch embedding, 32^2 tokens of
width ``E = 768``. Prompt width ``D = 768`` for MAE ViT-B/16 image tokens (197 tokens
with the class token); for CLIP text tokens use the text width (512 for ViT-B, 768
for ViT-L) or let the prompt encoder map to 768.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pe3d.models.layers import OverlapPatchEmbed, init_conv_kaiming_fan_out, tokens_to_map

UPSAMPLE_MODES = ("pixel_shuffle", "bilinear")
OUTPUT_MODES = ("linear", "shuffle_conv")
"""Values of :attr:`PromptCrossAttentionConfig.output`."""


@dataclass
class PromptCrossAttentionConfig:
    """Sizes of :class:`PromptCrossAttention`. Defaults are the paper scale."""

    feature_channels: int = 128
    """``C``: channels of ``f_high`` (must equal the encoder's ``high_feature_channels``)."""
    prompt_dim: int = 768
    """``D``: width of the prompt tokens (MAE ViT-B/16: 768; CLIP text: 512 or 768)."""
    embed_dim: int = 768
    """``E``: width of the image tokens and of the attention."""
    num_heads: int = 8
    pre_conv_channels: int = 96
    """3x3 conv on ``f_high`` before the patch embedding (0: none)."""
    patch_size: int = 7
    """Patch-embedding kernel (odd; 1 gives a strided 1x1 projection)."""
    stride: int = 4
    """Token grid is ``stride`` times coarser than ``f_high``."""
    upsample: str = "pixel_shuffle"
    """How the attention output returns to ``H x W`` after the ``linear`` output: ``pixel_shuffle`` or ``bilinear``."""

    # --- Switches for the 3DPE code's ``EncoderRef`` (defaults: pe3d's own block) ---------------
    projections: bool = True
    """Learned Q/K/V projections (3DPE code: none; tokens and prompt attend directly, ``E = D``)."""
    prompt_norm: bool = True
    """LayerNorm on the prompt tokens before attention (3DPE code: none; MAE already ends with one)."""
    residual: bool = True
    """``f_a = f_high + delta`` (ours; an untrained block is the identity) or, when false, ``f_a = delta``:
    the attention output *replaces* ``f_high`` (3DPE code)."""
    output: str = "linear"
    """How tokens return to a ``C x H x W`` map: ``"linear"`` (zero-initialised linear, then ``upsample``) or
    ``"shuffle_conv"`` (3DPE code: ``PixelShuffle(2)`` -> bias-free 1x1 conv to ``C * (stride/2)^2`` channels ->
    ``PixelShuffle(stride/2)``)."""

    def __post_init__(self) -> None:
        if self.embed_dim % self.num_heads:
            raise ValueError(f"PromptCrossAttentionConfig: embed_dim {self.embed_dim} not divisible by "
                             f"num_heads {self.num_heads}")
        if self.upsample not in UPSAMPLE_MODES:
            raise ValueError(f"PromptCrossAttentionConfig: upsample={self.upsample!r} not in {UPSAMPLE_MODES}")
        if self.patch_size % 2 != 1 or self.stride < 1:
            raise ValueError("PromptCrossAttentionConfig: patch_size must be odd and stride >= 1")
        if self.output not in OUTPUT_MODES:
            raise ValueError(f"PromptCrossAttentionConfig: output={self.output!r} not in {OUTPUT_MODES}")
        if not self.projections and self.embed_dim != self.prompt_dim:
            raise ValueError(f"PromptCrossAttentionConfig: projections=false needs embed_dim ({self.embed_dim}) "
                             f"== prompt_dim ({self.prompt_dim})")
        if self.output == "shuffle_conv" and (self.stride % 2 or self.embed_dim % 4):
            raise ValueError(f"PromptCrossAttentionConfig: output='shuffle_conv' needs an even stride ({self.stride}) "
                             f"and embed_dim divisible by 4 ({self.embed_dim})")


class PromptCrossAttention(nn.Module):
    """Residual multi-head cross-attention from high-branch features to prompt tokens.

    ``forward(f_high [B, C, H, W], prompt_tokens [B, L, D], prompt_mask [B, L] | None) -> f_a [B, C, H, W]``
    with ``H`` and ``W`` divisible by ``stride``. Untrained, ``f_a`` equals ``f_high`` bit for bit.
    """

    def __init__(self, config: PromptCrossAttentionConfig | None = None) -> None:
        super().__init__()
        self.config = cfg = config if config is not None else PromptCrossAttentionConfig()
        c = cfg.feature_channels
        self.pre_conv: nn.Module = nn.Identity()
        if cfg.pre_conv_channels > 0:
            self.pre_conv = nn.Conv2d(c, cfg.pre_conv_channels, 3, padding=1)
        embed_in = cfg.pre_conv_channels if cfg.pre_conv_channels > 0 else c
        self.embed = OverlapPatchEmbed(embed_in, cfg.embed_dim, cfg.patch_size, cfg.stride)
        self.prompt_norm: nn.Module = nn.LayerNorm(cfg.prompt_dim) if cfg.prompt_norm else nn.Identity()
        self.to_q: nn.Module = nn.Identity()
        self.to_k: nn.Module = nn.Identity()
        self.to_v: nn.Module = nn.Identity()
        if cfg.projections:
            self.to_q = nn.Linear(cfg.embed_dim, cfg.embed_dim)
            self.to_k = nn.Linear(cfg.prompt_dim, cfg.embed_dim)
            self.to_v = nn.Linear(cfg.prompt_dim, cfg.embed_dim)
        if cfg.output == "linear":
            out_dim = c * cfg.stride * cfg.stride if cfg.upsample == "pixel_shuffle" else c
            self.out_proj = nn.Linear(cfg.embed_dim, out_dim)
        else:
            half = cfg.stride // 2
            self.out_conv = nn.Conv2d(cfg.embed_dim // 4, c * half * half, 1, bias=False)
        self.apply(init_conv_kaiming_fan_out)
        self.reset_output()

    def reset_output(self) -> None:
        """Zero the output projection so the block is the identity on ``f_high`` (only with ``residual``;
        a replacing block keeps its random init)."""
        if not self.config.residual:
            return
        out = self.out_proj if self.config.output == "linear" else self.out_conv
        nn.init.zeros_(out.weight)
        if out.bias is not None:
            nn.init.zeros_(out.bias)

    def _check(self, f_high: Tensor, prompt_tokens: Tensor, prompt_mask: Tensor | None) -> None:
        cfg = self.config
        if f_high.dim() != 4 or f_high.shape[1] != cfg.feature_channels:
            raise ValueError(f"PromptCrossAttention expected f_high [B, {cfg.feature_channels}, H, W], "
                             f"got {list(f_high.shape)}")
        h, w = f_high.shape[2:]
        if h % cfg.stride or w % cfg.stride:
            raise ValueError(f"PromptCrossAttention needs H, W divisible by stride {cfg.stride}, got {h}x{w}")
        b = f_high.shape[0]
        if prompt_tokens.dim() != 3 or prompt_tokens.shape[0] != b or prompt_tokens.shape[2] != cfg.prompt_dim:
            raise ValueError(f"PromptCrossAttention expected prompt_tokens [{b}, L, {cfg.prompt_dim}], "
                             f"got {list(prompt_tokens.shape)}")
        if prompt_mask is not None:
            if prompt_mask.dtype != torch.bool or tuple(prompt_mask.shape) != tuple(prompt_tokens.shape[:2]):
                raise ValueError(f"PromptCrossAttention expected a bool prompt_mask {list(prompt_tokens.shape[:2])}, "
                                 f"got {prompt_mask.dtype} {list(prompt_mask.shape)}")

    def _heads(self, t: Tensor) -> Tensor:
        b, n, e = t.shape
        return t.reshape(b, n, self.config.num_heads, e // self.config.num_heads).transpose(1, 2)

    def attend(self, f_high: Tensor, prompt_tokens: Tensor, prompt_mask: Tensor | None = None) -> Tensor:
        """The residual update ``delta [B, C, H, W]`` (zero for an untrained block), or ``f_a`` itself
        when the block does not add a residual (``residual=false``).

        ``prompt_mask`` is True for real tokens and False for padding; a sample whose
        mask is all False gets ``delta = 0`` (no prompt, no edit).
        """
        self._check(f_high, prompt_tokens, prompt_mask)
        b, c, h, w = f_high.shape
        tokens, (th, tw) = self.embed(self.pre_conv(f_high))
        prompt = self.prompt_norm(prompt_tokens)
        q, k, v = self._heads(self.to_q(tokens)), self._heads(self.to_k(prompt)), self._heads(self.to_v(prompt))
        attn_mask = None
        empty = None
        if prompt_mask is not None:
            empty = ~prompt_mask.any(dim=1)  # [B]
            valid = prompt_mask | empty[:, None]  # keep softmax finite for empty prompts
            attn_mask = valid[:, None, None, :]  # [B, 1, 1, L]
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
        out = out.transpose(1, 2).reshape(b, th * tw, -1)
        if self.config.output == "linear":
            delta = tokens_to_map(self.out_proj(out), th, tw)
            if self.config.upsample == "pixel_shuffle":
                delta = F.pixel_shuffle(delta, self.config.stride)
            else:
                delta = F.interpolate(delta, size=(h, w), mode="bilinear", align_corners=False)
        else:
            delta = F.pixel_shuffle(tokens_to_map(out, th, tw), 2)
            delta = F.pixel_shuffle(self.out_conv(delta), self.config.stride // 2)
        if empty is not None:
            fill = f_high if not self.config.residual else torch.zeros_like(delta)
            delta = torch.where(empty[:, None, None, None], fill, delta)
        return delta

    def forward(self, f_high: Tensor, prompt_tokens: Tensor, prompt_mask: Tensor | None = None) -> Tensor:
        """``f_high [B, C, H, W]``, ``prompt_tokens [B, L, D]``, ``prompt_mask [B, L]`` -> ``f_a [B, C, H, W]``.

        With ``residual`` the block adds its output to ``f_high``; without, the output is ``f_a`` itself
        (a sample with an all-False mask then keeps ``f_high``: no prompt, no edit)."""
        out = self.attend(f_high, prompt_tokens, prompt_mask)
        return f_high + out if self.config.residual else out
