"""The StyleGAN2 generator EG3D uses as its triplane backbone (and its SR blocks).

Module and parameter names follow NVlabs' ``networks_stylegan2`` exactly, so an EG3D
state dict loads with ``strict=True``: ``mapping.fc0.weight``, ``mapping.w_avg``,
``synthesis.b4.const``, ``synthesis.b8.conv0.affine.weight``, ``...noise_const``,
``...resample_filter``, ``...torgb.weight`` and so on.

Weights are stored unscaled (``N(0, 1)`` at init) and multiplied by their
equalized-learning-rate gain at run time, as in StyleGAN2; that is what makes the
stored tensors identical to NVlabs' files.
"""

from __future__ import annotations

import math
from typing import Iterator, Sequence

import torch
from torch import Tensor, nn

from pe3d.eg3d.ops import ACTIVATION_GAINS, bias_act, modulated_conv2d, normalize_2nd_moment, setup_filter, upsample2d

NOISE_MODES = ("random", "const", "none")
"""Per-pixel noise of the synthesis layers: fresh Gaussian, the stored ``noise_const``, or none."""
RESAMPLE_TAPS = (1.0, 3.0, 3.0, 1.0)
"""StyleGAN2's low-pass filter taps for upsampling."""


class FullyConnectedLayer(nn.Module):
    """Linear layer with equalized learning rate: ``act((x @ (W * g).T) + b * lr_mul)``, ``g = lr_mul / sqrt(in)``.

    Args:
        in_features, out_features: sizes.
        activation: ``linear`` or ``lrelu`` (the latter scaled by ``sqrt(2)``).
        lr_multiplier: learning-rate multiplier folded into the stored weights (``W ~ N(0, 1/lr_mul^2)``).
        bias_init: initial bias value.
    """

    def __init__(self, in_features: int, out_features: int, activation: str = "linear", lr_multiplier: float = 1.0,
                 bias_init: float = 0.0, bias: bool = True) -> None:
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.activation = activation
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_multiplier)
        self.bias = nn.Parameter(torch.full([out_features], float(bias_init))) if bias else None
        self.weight_gain = lr_multiplier / math.sqrt(in_features)
        self.bias_gain = lr_multiplier

    def effective_weight(self) -> Tensor:
        """``W * g``: the weight the layer actually multiplies by."""
        return self.weight * self.weight_gain

    def effective_bias(self) -> Tensor | None:
        """``b * lr_mul``."""
        return None if self.bias is None else self.bias * self.bias_gain

    def forward(self, x: Tensor) -> Tensor:
        """``[..., in] -> [..., out]``."""
        w, b = self.effective_weight().to(x.dtype), self.effective_bias()
        if self.activation == "linear" and b is not None:
            return torch.addmm(b.to(x.dtype).unsqueeze(0), x.reshape(-1, x.shape[-1]), w.t()).reshape(*x.shape[:-1], -1)
        return bias_act(x.matmul(w.t()), b, act=self.activation, dim=x.ndim - 1)


class MappingNetwork(nn.Module):
    """``(z, c) -> ws [B, num_ws, w_dim]``: pixel-normed ``z`` and embedded ``c``, an MLP, broadcast, truncation.

    Args:
        z_dim, c_dim, w_dim: latent, label and intermediate sizes (``c_dim = 0``: unconditional).
        num_ws: how many copies of ``w`` the synthesis network consumes.
        num_layers: MLP depth (EG3D FFHQ: 2).
        lr_multiplier: learning-rate multiplier of the MLP (0.01).
        w_avg_beta: decay of the tracked mean ``w_avg`` used by truncation.
    """

    def __init__(self, z_dim: int, c_dim: int, w_dim: int, num_ws: int, num_layers: int = 8,
                 lr_multiplier: float = 0.01, w_avg_beta: float = 0.998) -> None:
        super().__init__()
        self.z_dim, self.c_dim, self.w_dim, self.num_ws = z_dim, c_dim, w_dim, num_ws
        self.num_layers = num_layers
        self.w_avg_beta = w_avg_beta
        embed_features = w_dim if c_dim > 0 else 0
        features = [z_dim + embed_features] + [w_dim] * num_layers
        if c_dim > 0:
            self.embed = FullyConnectedLayer(c_dim, embed_features)
        for index in range(num_layers):
            layer = FullyConnectedLayer(features[index], features[index + 1], activation="lrelu", lr_multiplier=lr_multiplier)
            setattr(self, f"fc{index}", layer)
        self.register_buffer("w_avg", torch.zeros([w_dim]))

    def forward(self, z: Tensor, c: Tensor, truncation_psi: float = 1.0, truncation_cutoff: int | None = None,
                update_emas: bool = False) -> Tensor:
        """``z [B, z_dim]``, ``c [B, c_dim]`` -> ``ws [B, num_ws, w_dim]``.

        Truncation moves ``w`` towards ``w_avg`` (``w_avg + psi * (w - w_avg)``) for all ``ws``
        or only the first ``truncation_cutoff``. ``update_emas`` updates ``w_avg`` from the batch.
        """
        parts = []
        if self.z_dim > 0:
            parts.append(normalize_2nd_moment(z.to(torch.float32)))
        if self.c_dim > 0:
            parts.append(normalize_2nd_moment(self.embed(c.to(torch.float32))))
        x = torch.cat(parts, dim=1)
        for index in range(self.num_layers):
            x = getattr(self, f"fc{index}")(x)
        if update_emas:
            with torch.no_grad():
                self.w_avg.copy_(x.detach().mean(dim=0).lerp(self.w_avg, self.w_avg_beta))
        x = x.unsqueeze(1).repeat(1, self.num_ws, 1)
        if truncation_psi != 1:
            cutoff = self.num_ws if truncation_cutoff is None else truncation_cutoff
            truncated = self.w_avg.lerp(x[:, :cutoff], truncation_psi)
            x = torch.cat([truncated, x[:, cutoff:]], dim=1)
        return x


class SynthesisLayer(nn.Module):
    """Modulated 3x3 convolution (optionally 2x up) + noise + bias + leaky ReLU (gain ``sqrt(2)``), clamped.

    Args:
        in_channels, out_channels, w_dim: sizes.
        resolution: output side (the size of ``noise_const``).
        up: 1 or 2.
        conv_clamp: clamp of the activations, ``None`` = off (EG3D: 256 in the fp16 SR blocks).
    """

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int, up: int = 1,
                 conv_clamp: float | None = None, kernel_size: int = 3) -> None:
        super().__init__()
        self.in_channels, self.out_channels, self.resolution, self.up = in_channels, out_channels, resolution, up
        self.conv_clamp = conv_clamp
        self.padding = kernel_size // 2
        self.register_buffer("resample_filter", setup_filter(RESAMPLE_TAPS))
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.register_buffer("noise_const", torch.randn(resolution, resolution))
        self.noise_strength = nn.Parameter(torch.zeros([]))
        self.bias = nn.Parameter(torch.zeros(out_channels))

    def forward(self, x: Tensor, w: Tensor, noise_mode: str = "random", gain: float = 1.0) -> Tensor:
        """``x [B, in, r/up, r/up]``, ``w [B, w_dim]`` -> ``[B, out, r, r]``."""
        if noise_mode not in NOISE_MODES:
            raise ValueError(f"noise_mode must be one of {NOISE_MODES}, got {noise_mode!r}")
        styles = self.affine(w)
        noise = None
        if noise_mode == "random":
            noise = torch.randn(x.shape[0], 1, self.resolution, self.resolution, device=x.device) * self.noise_strength
        elif noise_mode == "const":
            noise = self.noise_const * self.noise_strength
        x = modulated_conv2d(x, self.weight, styles, noise=noise, up=self.up, padding=self.padding,
                             resample_filter=self.resample_filter, flip_weight=(self.up == 1))
        act_gain = ACTIVATION_GAINS["lrelu"] * gain
        clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        return bias_act(x, self.bias, act="lrelu", gain=act_gain, clamp=clamp)


class ToRGBLayer(nn.Module):
    """Modulated 1x1 convolution without demodulation: features -> ``out_channels`` image channels."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, conv_clamp: float | None = None) -> None:
        super().__init__()
        self.conv_clamp = conv_clamp
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, 1, 1))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.weight_gain = 1.0 / math.sqrt(in_channels)

    def forward(self, x: Tensor, w: Tensor) -> Tensor:
        """``x [B, in, r, r]``, ``w [B, w_dim]`` -> ``[B, out, r, r]``."""
        styles = self.affine(w) * self.weight_gain
        x = modulated_conv2d(x, self.weight, styles, demodulate=False)
        return bias_act(x, self.bias, clamp=self.conv_clamp)


class SynthesisBlock(nn.Module):
    """One resolution of the 'skip' generator: (const | 2x-up conv0) -> conv1 -> ToRGB added to the upsampled image.

    Args:
        in_channels: 0 for the first (4x4, learned constant input) block.
        out_channels, w_dim, resolution, img_channels: sizes.
        conv_clamp: activation clamp of its layers.
    """

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int, img_channels: int,
                 conv_clamp: float | None = None) -> None:
        super().__init__()
        self.in_channels, self.resolution, self.w_dim = in_channels, resolution, w_dim
        self.register_buffer("resample_filter", setup_filter(RESAMPLE_TAPS))
        if in_channels == 0:
            self.const = nn.Parameter(torch.randn(out_channels, resolution, resolution))
        else:
            self.conv0 = SynthesisLayer(in_channels, out_channels, w_dim, resolution, up=2, conv_clamp=conv_clamp)
        self.conv1 = SynthesisLayer(out_channels, out_channels, w_dim, resolution, conv_clamp=conv_clamp)
        self.torgb = ToRGBLayer(out_channels, img_channels, w_dim, conv_clamp=conv_clamp)
        self.num_conv = 1 if in_channels == 0 else 2
        self.num_torgb = 1

    def forward(self, x: Tensor | None, img: Tensor | None, ws: Tensor, noise_mode: str = "random") -> tuple[Tensor, Tensor]:
        """``ws [B, num_conv + 1, w_dim]``; returns the features and the running image at this resolution."""
        if ws.shape[1:] != (self.num_conv + self.num_torgb, self.w_dim):
            raise ValueError(f"block {self.resolution}: ws must be [B, {self.num_conv + 1}, {self.w_dim}], got {tuple(ws.shape)}")
        w_iter: Iterator[Tensor] = iter(ws.unbind(dim=1))
        if self.in_channels == 0:
            x = self.const.unsqueeze(0).repeat(ws.shape[0], 1, 1, 1)
        else:
            x = self.conv0(x, next(w_iter), noise_mode=noise_mode)
        x = self.conv1(x, next(w_iter), noise_mode=noise_mode)
        if img is not None:
            img = upsample2d(img, self.resample_filter)
        y = self.torgb(x, next(w_iter)).to(torch.float32)
        return x, (img + y if img is not None else y)


def block_channels(resolutions: Sequence[int], channel_base: int, channel_max: int) -> dict[int, int]:
    """StyleGAN2's channel schedule ``min(channel_base // res, channel_max)``."""
    return {res: min(channel_base // res, channel_max) for res in resolutions}


class SynthesisNetwork(nn.Module):
    """Blocks ``b4, b8, ..., b{img_resolution}``; returns the last block's image ``[B, img_channels, R, R]``.

    ``num_ws`` counts each block's convolutions plus the final ToRGB (consecutive blocks share
    the ``w`` of a ToRGB and the next conv0, as in StyleGAN2).
    """

    def __init__(self, w_dim: int, img_resolution: int, img_channels: int, channel_base: int = 32768,
                 channel_max: int = 512, conv_clamp: float | None = None) -> None:
        super().__init__()
        if img_resolution < 4 or img_resolution & (img_resolution - 1):
            raise ValueError(f"img_resolution must be a power of two >= 4, got {img_resolution}")
        self.w_dim, self.img_resolution, self.img_channels = w_dim, img_resolution, img_channels
        self.block_resolutions = [2 ** i for i in range(2, int(math.log2(img_resolution)) + 1)]
        channels = block_channels(self.block_resolutions, channel_base, channel_max)
        self.num_ws = 0
        for res in self.block_resolutions:
            in_channels = channels[res // 2] if res > 4 else 0
            block = SynthesisBlock(in_channels, channels[res], w_dim, res, img_channels, conv_clamp=conv_clamp)
            self.num_ws += block.num_conv + (block.num_torgb if res == img_resolution else 0)
            setattr(self, f"b{res}", block)

    def forward(self, ws: Tensor, noise_mode: str = "random") -> Tensor:
        """``ws [B, num_ws, w_dim]`` -> image ``[B, img_channels, R, R]``."""
        if ws.shape[1:] != (self.num_ws, self.w_dim):
            raise ValueError(f"ws must be [B, {self.num_ws}, {self.w_dim}], got {tuple(ws.shape)}")
        ws = ws.to(torch.float32)
        x = img = None
        start = 0
        for res in self.block_resolutions:
            block = getattr(self, f"b{res}")
            x, img = block(x, img, ws.narrow(1, start, block.num_conv + block.num_torgb), noise_mode=noise_mode)
            start += block.num_conv
        return img


class StyleGAN2Backbone(nn.Module):
    """``mapping`` + ``synthesis``: EG3D renders its 3 x C-channel triplane as one StyleGAN2 'image'."""

    def __init__(self, z_dim: int, c_dim: int, w_dim: int, img_resolution: int, img_channels: int,
                 channel_base: int, channel_max: int, conv_clamp: float | None, mapping_layers: int,
                 mapping_lr_multiplier: float, w_avg_beta: float) -> None:
        super().__init__()
        self.synthesis = SynthesisNetwork(w_dim, img_resolution, img_channels, channel_base, channel_max, conv_clamp)
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(z_dim, c_dim, w_dim, self.num_ws, mapping_layers, mapping_lr_multiplier, w_avg_beta)
