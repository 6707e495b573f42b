"""A small learned super-resolution head for raw feature images.

This is deliberately simple: plain convolutions, no StyleGAN modulation. It upsamples
the raw feature image in factor-2 stages and adds a predicted residual to the
bilinearly upsampled RGB. Its last convolution starts at zero, so an untrained head
outputs exactly the bilinear upsampling of the raw RGB.

EG3D's full super-resolution network (``SuperresolutionHybrid8XDC``: StyleGAN2
synthesis blocks modulated by ``ws``) belongs with the EG3D generator in
:mod:`pe3d.models`, not here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch.nn.functional as F
from torch import Tensor, nn


@dataclass
class SuperResolutionConfig:
    """Settings of :class:`SuperResolution`.

    Attributes:
        enabled: build the head (off by default; the renderer then returns ``image_sr=None``).
        out_resolution: side of the output image.
        channels: hidden convolution channels.
    """

    enabled: bool = False
    out_resolution: int = 128
    channels: int = 64

    def __post_init__(self) -> None:
        if self.out_resolution < 1 or self.channels < 1:
            raise ValueError("out_resolution and channels must be positive")


def _resize(image: Tensor, size: int) -> Tensor:
    """Bilinear resize of ``[B, C, H, W]`` to ``[B, C, size, size]`` (antialiased when shrinking)."""
    if image.shape[-2:] == (size, size):
        return image
    return F.interpolate(image, size=(size, size), mode="bilinear", align_corners=False, antialias=True)


def _conv_block(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, padding=1), nn.LeakyReLU(0.2))


class SuperResolution(nn.Module):
    """Upsample a raw feature image to RGB at ``out_resolution``.

    Inputs not at ``in_resolution`` are first resized to it (as EG3D's SR does), then
    features go through ``conv -> (x2 upsample -> conv) * n -> resize -> conv`` and the
    result is added to the bilinearly upsampled RGB. The output is not clamped.

    Args:
        in_channels: feature channels ``F`` of the raw feature image.
        in_resolution: expected input side (the neural rendering resolution).
        out_resolution: output side (``>= in_resolution``).
        channels: hidden channels.
    """

    def __init__(self, in_channels: int, in_resolution: int, out_resolution: int, channels: int = 64) -> None:
        super().__init__()
        if out_resolution < in_resolution:
            raise ValueError(f"out_resolution ({out_resolution}) must be >= in_resolution ({in_resolution})")
        self.in_resolution = in_resolution
        self.out_resolution = out_resolution
        num_stages = int(math.floor(math.log2(out_resolution / in_resolution) + 1e-9))
        self.stem = _conv_block(in_channels, channels)
        self.stages = nn.ModuleList(_conv_block(channels, channels) for _ in range(num_stages))
        self.to_rgb = nn.Conv2d(channels, 3, 3, padding=1)
        nn.init.zeros_(self.to_rgb.weight)
        nn.init.zeros_(self.to_rgb.bias)

    def forward(self, rgb: Tensor, features: Tensor) -> Tensor:
        """Super-resolve.

        Args:
            rgb: ``[B, 3, r, r]`` raw RGB in ``[0, 1]``.
            features: ``[B, F, r, r]`` raw feature image.

        Returns:
            ``[B, 3, out_resolution, out_resolution]`` RGB, about ``[0, 1]``.
        """
        x = self.stem(_resize(features, self.in_resolution))
        for stage in self.stages:
            x = stage(F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False))
        residual = self.to_rgb(_resize(x, self.out_resolution))
        return _resize(_resize(rgb, self.in_resolution), self.out_resolution) + residual
