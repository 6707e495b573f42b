"""EG3D's 512^2 super-resolution head (``SuperresolutionHybrid8XDC``).

Two StyleGAN2 'skip' synthesis blocks, each upsampling 2x: the raw feature image
(resized to ``input_resolution`` first) goes through ``block0`` and ``block1`` while the
raw RGB is FIR-upsampled alongside and receives each block's ToRGB residual. Every
layer is modulated by the *last* ``w`` of the backbone. Keys: ``block0.conv0.weight``,
``block1.torgb.affine.weight``, ... (no filter buffer at the top level, as in EG3D).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from pe3d.eg3d.stylegan2 import SynthesisBlock


class SuperresolutionHybrid8XDC(nn.Module):
    """Raw RGB ``[B,3,r,r]`` + features ``[B,C,r,r]`` -> RGB ``[B,3,4*R_in,4*R_in]`` (``R_in = input_resolution``).

    Args:
        channels: feature channels of the raw image (EG3D: 32).
        input_resolution: side both inputs are resized to (EG3D: 128).
        block_channels: widths of the two blocks (EG3D: 256, 128).
        w_dim: latent size (EG3D: 512).
        antialias: antialiased bilinear resize of the inputs (EG3D FFHQ: on).
        conv_clamp: activation clamp (EG3D: 256, because its SR is configured for float16).
    """

    def __init__(self, channels: int, input_resolution: int, block_channels: tuple[int, int] | list[int], w_dim: int,
                 antialias: bool = True, conv_clamp: float | None = 256.0) -> None:
        super().__init__()
        self.input_resolution = input_resolution
        self.antialias = antialias
        first, second = block_channels
        self.block0 = SynthesisBlock(channels, first, w_dim, 2 * input_resolution, img_channels=3, conv_clamp=conv_clamp)
        self.block1 = SynthesisBlock(first, second, w_dim, 4 * input_resolution, img_channels=3, conv_clamp=conv_clamp)

    def _resize(self, x: Tensor) -> Tensor:
        if x.shape[-1] == self.input_resolution:
            return x
        size = (self.input_resolution, self.input_resolution)
        return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=self.antialias)

    def forward(self, rgb: Tensor, features: Tensor, ws: Tensor, noise_mode: str = "none") -> Tensor:
        """Super-resolve; ``ws [B, num_ws, w_dim]`` (only the last is used), images in ``[-1, 1]``."""
        ws = ws[:, -1:, :].repeat(1, 3, 1)
        x, img = self.block0(self._resize(features), self._resize(rgb), ws, noise_mode=noise_mode)
        _, img = self.block1(x, img, ws, noise_mode=noise_mode)
        return img
