"""Reusable building blocks for the encoders.

Everything here is a plain ``nn.Module`` or a pure function. Convolutions carry a
bias and never use batch norm (Live3D trains its encoder without it, and batch
statistics would couple the samples of a batch). Token tensors are ``[B, N, D]``
with ``N = H * W`` in row-major order; feature maps are ``[B, C, H, W]``.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

ACTIVATIONS = ("relu", "leaky_relu", "gelu", "silu")
"""Names accepted wherever a block takes an ``activation`` argument."""


def make_activation(name: str) -> nn.Module:
    """An activation module from its short name (one of :data:`ACTIVATIONS`)."""
    if name == "relu":
        return nn.ReLU()
    if name == "leaky_relu":
        return nn.LeakyReLU(negative_slope=0.01)
    if name == "gelu":
        return nn.GELU()
    if name == "silu":
        return nn.SiLU()
    raise ValueError(f"unknown activation {name!r}; expected one of {ACTIVATIONS}")


def make_group_norm(channels: int, groups: int) -> nn.Module:
    """``GroupNorm`` with affine parameters, or ``Identity`` when ``groups == 0``.

    ``groups`` is reduced to the largest divisor of ``channels`` that does not exceed it.
    """
    if groups <= 0:
        return nn.Identity()
    g = min(groups, channels)
    while channels % g:
        g -= 1
    return nn.GroupNorm(g, channels, affine=True)


COORDINATE_MODES = ("unit", "pixels")
"""Accepted ``mode`` values of :func:`coordinate_channels`."""


def coordinate_channels(batch: int, height: int, width: int, *, device: torch.device | None = None,
                        dtype: torch.dtype = torch.float32, mode: str = "unit") -> Tensor:
    """Pixel-coordinate channels ``[B, 2, H, W]``: (row, column).

    Live3D feeds the encoder two extra channels holding pixel coordinates so the
    convolutions know where they are in the portrait. ``mode="unit"`` (ours) spaces each
    linearly in [-1, 1], the range of the image; ``mode="pixels"`` gives the raw pixel
    indices ``0 .. H-1`` / ``0 .. W-1`` as the 3DPE and Live3D code does.
    """
    if mode == "unit":
        rows = torch.linspace(-1.0, 1.0, height, device=device, dtype=dtype)
        cols = torch.linspace(-1.0, 1.0, width, device=device, dtype=dtype)
    elif mode == "pixels":
        rows = torch.arange(height, device=device, dtype=dtype)
        cols = torch.arange(width, device=device, dtype=dtype)
    else:
        raise ValueError(f"unknown coordinate mode {mode!r}; expected one of {COORDINATE_MODES}")
    grid = torch.stack(torch.meshgrid(rows, cols, indexing="ij"), dim=0)
    return grid.unsqueeze(0).expand(batch, -1, -1, -1)


def map_to_tokens(x: Tensor) -> Tensor:
    """``[B, C, H, W]`` -> ``[B, H*W, C]`` (row-major tokens)."""
    return x.flatten(2).transpose(1, 2)


def tokens_to_map(tokens: Tensor, height: int, width: int) -> Tensor:
    """``[B, H*W, C]`` -> ``[B, C, H, W]``; inverse of :func:`map_to_tokens`."""
    b, n, c = tokens.shape
    if n != height * width:
        raise ValueError(f"cannot fold {n} tokens into a {height}x{width} map")
    return tokens.transpose(1, 2).reshape(b, c, height, width)


def init_conv_kaiming_fan_out(module: nn.Module) -> None:
    """He-normal (fan-out) init for convolutions, truncated-normal(0.02) for linears, zero biases.

    Apply with ``module.apply(init_conv_kaiming_fan_out)``; norm layers keep weight 1, bias 0.
    """
    if isinstance(module, nn.Conv2d):
        fan_out = module.kernel_size[0] * module.kernel_size[1] * module.out_channels // module.groups
        nn.init.normal_(module.weight, 0.0, math.sqrt(2.0 / fan_out))
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


def cat_channels(tensors: Sequence[Tensor]) -> Tensor:
    """``torch.cat(tensors, dim=1)`` of ``[B, C_i, H, W]`` maps, laid out channels-last when most of its values are.

    ``torch.cat`` of mixed layouts returns a contiguous (channels-first) map, which a channels-last
    convolution (:func:`pe3d.devices.inference_memory_layout`) then copies once more; moving the minority
    (an image, a pooled vector, an upsampled map) to the majority's layout first saves most of that copy
    (E_t's full-resolution head: 0.4 ms of the mini edit). Same values either way.
    """
    def channels_last(t: Tensor) -> bool:
        return t.dim() == 4 and t.is_contiguous(memory_format=torch.channels_last) and not t.is_contiguous()

    tensors = list(tensors)
    if 2 * sum(t.numel() for t in tensors if channels_last(t)) >= sum(t.numel() for t in tensors):
        tensors = [t.contiguous(memory_format=torch.channels_last) for t in tensors]
    return torch.cat(tensors, dim=1)


def dilated_conv_on_onednn(conv: nn.Conv2d, x: Tensor) -> Tensor | None:
    """``conv(x)`` through oneDNN for a dilated convolution without autograd on a CPU, else ``None``.

    PyTorch sends a batch-1 convolution with a 3x3 kernel and a small input (under 20,480 values) to
    its reference kernels, which for a dilated one are slow: the mini E_low's ASPP branches (64
    channels at 16^2, rates 2 and 4) take 0.76 ms a call there against 0.24 ms through oneDNN (same
    values to ~1e-5). Undilated ones are left to the dispatcher (its choice is as fast there).
    """
    if (conv.dilation == (1, 1) or torch.is_grad_enabled() or x.device.type != "cpu" or x.dtype != torch.float32
            or conv.padding_mode != "zeros" or isinstance(conv.padding, str) or not torch.backends.mkldnn.is_available()):
        return None
    return torch.mkldnn_convolution(x, conv.weight, conv.bias, list(conv.padding), list(conv.stride),
                                    list(conv.dilation), conv.groups)


class ConvAct(nn.Module):
    """Conv2d (with bias) -> optional GroupNorm -> optional activation.

    Shapes: ``[B, C_in, H, W]`` -> ``[B, C_out, ceil(H / stride), ceil(W / stride)]``
    (``padding = dilation * (kernel_size // 2)``, odd kernels).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
                 dilation: int = 1, activation: str | None = "leaky_relu", norm_groups: int = 0) -> None:
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"ConvAct needs an odd kernel_size, got {kernel_size}")
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride,
                              padding=dilation * (kernel_size // 2), dilation=dilation, bias=True)
        self.norm = make_group_norm(out_channels, norm_groups)
        self.act = make_activation(activation) if activation else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        """``[B, C_in, H, W]`` -> ``[B, C_out, H', W']``."""
        y = dilated_conv_on_onednn(self.conv, x)
        return self.act(self.norm(self.conv(x) if y is None else y))


class ResidualBlock(nn.Module):
    """ResNet basic block without batch norm: ``act(x' + conv(act(conv(x))))``.

    ``x'`` is ``x`` or a strided 1x1 projection when the shape changes. With
    ``zero_init_last`` the second convolution starts at zero, so a fresh block is
    the (projected) identity followed by the activation, which lets a deep stack
    without normalization train from scratch.

    Shapes: ``[B, C_in, H, W]`` -> ``[B, C_out, ceil(H / stride), ceil(W / stride)]``.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, activation: str = "relu",
                 zero_init_last: bool = True) -> None:
        super().__init__()
        self.conv1 = ConvAct(in_channels, out_channels, 3, stride=stride, activation=activation)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=True)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=True)
        self.act = make_activation(activation)
        self.zero_init_last = zero_init_last

    def reset_last(self) -> None:
        """Zero the second convolution (called after any global init)."""
        if self.zero_init_last:
            nn.init.zeros_(self.conv2.weight)
            nn.init.zeros_(self.conv2.bias)

    def forward(self, x: Tensor) -> Tensor:
        """``[B, C_in, H, W]`` -> ``[B, C_out, H', W']``."""
        return self.act(self.shortcut(x) + self.conv2(self.conv1(x)))


class BottleneckResidual(nn.Module):
    """``x + conv(act(norm(conv(x))))`` with a ``width``-channel middle and no activation after the sum.

    The second convolution starts at zero (:meth:`reset_last`), so a new block is exactly the
    identity: blocks added to a trained network leave its output unchanged until they train.

    Shapes: ``[B, C, H, W]`` -> ``[B, C, H, W]``.
    """

    def __init__(self, channels: int, width: int, activation: str = "leaky_relu", norm_groups: int = 0) -> None:
        super().__init__()
        self.conv1 = ConvAct(channels, width, 3, activation=activation, norm_groups=norm_groups)
        self.conv2 = nn.Conv2d(width, channels, 3, padding=1, bias=True)

    def reset_last(self) -> None:
        """Zero the second convolution (called after any global init)."""
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)

    def forward(self, x: Tensor) -> Tensor:
        """``[B, C, H, W]`` -> ``[B, C, H, W]``."""
        return x + self.conv2(self.conv1(x))


class ASPP(nn.Module):
    """DeepLabV3 atrous spatial pyramid pooling without batch norm.

    Branches: a 1x1 conv, one dilated 3x3 conv per rate, and (optionally) global
    average pooling; their concatenation is projected by a 1x1 conv and refined by
    a 3x3 conv (the DeepLabV3 decoder head).

    Shapes: ``[B, C_in, H, W]`` -> ``[B, C_out, H, W]``.
    """

    def __init__(self, in_channels: int, out_channels: int, rates: Sequence[int],
                 image_pooling: bool = True, activation: str = "relu") -> None:
        super().__init__()
        branches = [ConvAct(in_channels, out_channels, 1, activation=activation)]
        branches += [ConvAct(in_channels, out_channels, 3, dilation=r, activation=activation) for r in rates]
        self.branches = nn.ModuleList(branches)
        self.pool: nn.Module | None = None
        if image_pooling:
            self.pool = ConvAct(in_channels, out_channels, 1, activation=activation)
        n = len(branches) + (1 if image_pooling else 0)
        self.project = ConvAct(n * out_channels, out_channels, 1, activation=activation)
        self.refine = ConvAct(out_channels, out_channels, 3, activation=activation)

    def forward(self, x: Tensor) -> Tensor:
        """``[B, C_in, H, W]`` -> ``[B, C_out, H, W]``."""
        outs = [branch(x) for branch in self.branches]
        if self.pool is not None:
            pooled = self.pool(x.mean(dim=(2, 3), keepdim=True))
            outs.append(pooled.expand(-1, -1, x.shape[2], x.shape[3]))
        return self.refine(self.project(cat_channels(outs)))


class OverlapPatchEmbed(nn.Module):
    """Overlapping patch embedding: a ``patch_size`` conv at ``stride`` then LayerNorm.

    ``padding = patch_size // 2``, so for an odd ``patch_size`` the token grid is
    ``ceil(H / stride) x ceil(W / stride)``. ``patch_size = 1`` gives a plain strided
    1x1 projection.

    Shapes: ``[B, C, H, W]`` -> tokens ``[B, H'*W', D]`` and ``(H', W')``.
    """

    def __init__(self, in_channels: int, embed_dim: int, patch_size: int = 7, stride: int = 4) -> None:
        super().__init__()
        if patch_size % 2 != 1:
            raise ValueError(f"OverlapPatchEmbed needs an odd patch_size, got {patch_size}")
        if patch_size < stride:
            raise ValueError(f"patch_size ({patch_size}) < stride ({stride}) would skip pixels")
        self.stride = stride
        self.proj = nn.Conv2d(in_channels, embed_dim, patch_size, stride=stride, padding=patch_size // 2)
        self.norm = nn.LayerNorm(embed_dim)

    def forward(self, x: Tensor) -> tuple[Tensor, tuple[int, int]]:
        """``[B, C, H, W]`` -> (``[B, H'*W', D]``, ``(H', W')``)."""
        x = self.proj(x)
        h, w = x.shape[2], x.shape[3]
        return self.norm(map_to_tokens(x)), (h, w)


class SpatialReductionAttention(nn.Module):
    """Multi-head self-attention whose keys/values come from a ``sr_ratio``-downsampled map.

    With ``sr_ratio == 1`` this is ordinary multi-head self-attention. Otherwise the
    token map is reduced by a strided conv + LayerNorm before the key/value
    projection (the SegFormer/PVT "efficient attention"), cutting the cost of
    attention over large token grids by ``sr_ratio ** 2``.

    ``qkv_bias=False`` drops the biases of the query and key/value projections (SegFormer's
    default, used by the 3DPE/Live3D code).

    Shapes: tokens ``[B, H*W, D]`` -> ``[B, H*W, D]``.
    """

    def __init__(self, dim: int, num_heads: int, sr_ratio: int = 1, qkv_bias: bool = True) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.q = nn.Linear(dim, dim, bias=qkv_bias)
        self.kv = nn.Linear(dim, 2 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.sr_ratio = sr_ratio
        self.sr: nn.Module | None = None
        self.sr_norm: nn.Module | None = None
        if sr_ratio > 1:
            self.sr = nn.Conv2d(dim, dim, sr_ratio, stride=sr_ratio)
            self.sr_norm = nn.LayerNorm(dim)

    def _heads(self, t: Tensor) -> Tensor:
        b, n, d = t.shape
        return t.reshape(b, n, self.num_heads, d // self.num_heads).transpose(1, 2)

    def forward(self, x: Tensor, hw: tuple[int, int]) -> Tensor:
        """``x [B, H*W, D]``, ``hw = (H, W)`` -> ``[B, H*W, D]``."""
        b, n, d = x.shape
        source = x
        if self.sr is not None and self.sr_norm is not None:
            source = self.sr_norm(map_to_tokens(self.sr(tokens_to_map(x, *hw))))
        k, v = self.kv(source).chunk(2, dim=-1)
        out = F.scaled_dot_product_attention(self._heads(self.q(x)), self._heads(k), self._heads(v))
        return self.proj(out.transpose(1, 2).reshape(b, n, d))


class MixFFN(nn.Module):
    """Transformer MLP, optionally with a 3x3 depthwise conv between the two linears.

    The depthwise conv (SegFormer's Mix-FFN) gives the tokens positional
    information, so no position embedding is needed.

    Shapes: tokens ``[B, H*W, D]`` -> ``[B, H*W, D]``.
    """

    def __init__(self, dim: int, hidden_dim: int, depthwise_conv: bool = True) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.dwconv: nn.Module | None = None
        if depthwise_conv:
            self.dwconv = nn.Conv2d(hidden_dim, hidden_dim, 3, padding=1, groups=hidden_dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_dim, dim)

    def forward(self, x: Tensor, hw: tuple[int, int]) -> Tensor:
        """``x [B, H*W, D]``, ``hw = (H, W)`` -> ``[B, H*W, D]``."""
        x = self.fc1(x)
        if self.dwconv is not None:
            x = map_to_tokens(self.dwconv(tokens_to_map(x, *hw)))
        return self.fc2(self.act(x))


class TransformerBlock(nn.Module):
    """Pre-norm transformer block: ``x + attn(LN(x))``, then ``x + mlp(LN(x))``.

    Both LayerNorms carry affine parameters (they are what norm-only adaptation tunes).

    Shapes: tokens ``[B, H*W, D]`` -> ``[B, H*W, D]``.
    """

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, sr_ratio: int = 1,
                 depthwise_conv: bool = True, qkv_bias: bool = True) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = SpatialReductionAttention(dim, num_heads, sr_ratio, qkv_bias)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = MixFFN(dim, int(round(dim * mlp_ratio)), depthwise_conv)

    def forward(self, x: Tensor, hw: tuple[int, int]) -> Tensor:
        """``x [B, H*W, D]``, ``hw = (H, W)`` -> ``[B, H*W, D]``."""
        x = x + self.attn(self.norm1(x), hw)
        return x + self.mlp(self.norm2(x), hw)


class TokenStage(nn.Module):
    """Overlapping patch embed -> transformer blocks -> LayerNorm -> pixel shuffle back to a map.

    The token grid is ``stride`` times coarser than the input; the ``D`` token
    channels are folded back by ``PixelShuffle(stride)`` into ``D / stride**2``
    channels at the input resolution (``D`` must be divisible by ``stride**2``).
    ``final_norm=False`` leaves out the LayerNorm after the blocks and ``qkv_bias=False``
    the attention's q/kv biases (both as in the 3DPE/Live3D code).

    Shapes: ``[B, C_in, H, W]`` -> ``[B, D / stride**2, H, W]`` (``H, W`` divisible by ``stride``).
    """

    def __init__(self, in_channels: int, dim: int, depth: int, num_heads: int, mlp_ratio: float,
                 patch_size: int, stride: int, sr_ratio: int = 1, depthwise_conv: bool = True,
                 qkv_bias: bool = True, final_norm: bool = True) -> None:
        super().__init__()
        if dim % (stride * stride):
            raise ValueError(f"token dim {dim} is not divisible by stride**2 = {stride * stride}")
        self.embed = OverlapPatchEmbed(in_channels, dim, patch_size, stride)
        self.blocks = nn.ModuleList(
            TransformerBlock(dim, num_heads, mlp_ratio, sr_ratio, depthwise_conv, qkv_bias) for _ in range(depth))
        self.norm: nn.Module = nn.LayerNorm(dim) if final_norm else nn.Identity()
        self.unshuffle = nn.PixelShuffle(stride)
        self.out_channels = dim // (stride * stride)

    def forward(self, x: Tensor) -> Tensor:
        """``[B, C_in, H, W]`` -> ``[B, D / stride**2, H, W]``."""
        tokens, hw = self.embed(x)
        for block in self.blocks:
            tokens = block(tokens, hw)
        return self.unshuffle(tokens_to_map(self.norm(tokens), *hw))
