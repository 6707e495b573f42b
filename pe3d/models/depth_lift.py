"""A geometric path from image rows to the depth planes: features lifted along each image column.

With the triplane laid out like the input image (``triplane_layout: image``) the frontal plane's cells sit
under the input pixels, but the two planes that hold depth, EG3D's ``(x, z)`` and ``(z, x)``, have their rows
along world ``z``: what the image shows at row ``y`` of column ``x`` belongs in row ``z(x, y)`` of column ``x``.
Convolutions cannot move it there (the shift is as long as the head is deep), so the plain decoder leaves it to
its one small ViT block. :class:`DepthLift` does it explicitly, as Lift-Splat-style encoders do: every pixel
predicts a distribution over the ``D`` depth rows and a feature vector; the two depth planes of column ``x``
receive, at row ``d``, the sum over the column's pixels of their probability of lying at ``d`` times their
feature. A zero-initialised output convolution adds the result to the two planes, so a lift grown onto a
trained encoder leaves its output unchanged until it trains.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class DepthLift(nn.Module):
    """Features ``[B, F, R, R]`` on the image grid -> additions ``[B, 2 * C, R, R]`` to the two depth planes.

    ``channels`` features are lifted per pixel; ``plane_channels`` is ``C`` (channels per plane). The depth
    axis has ``R`` bins, one per plane row, so the lifted map lies on the planes cell for cell. The sum
    over a column is divided by its length, which keeps the lifted values at the scale of one pixel's
    feature whatever ``R`` is.
    """

    def __init__(self, in_channels: int, channels: int, resolution: int, plane_channels: int) -> None:
        super().__init__()
        if channels < 1 or resolution < 1 or plane_channels < 1:
            raise ValueError(f"DepthLift: channels={channels}, resolution={resolution} and "
                             f"plane_channels={plane_channels} must be positive")
        self.resolution = resolution
        self.depth_logits = nn.Conv2d(in_channels, resolution, 1)
        self.features = nn.Conv2d(in_channels, channels, 1)
        self.out = nn.Conv2d(channels, 2 * plane_channels, 3, padding=1)

    def reset_last(self) -> None:
        """Zero the output convolution (called after any global init): the lift starts as no change."""
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def depth_distribution(self, x: Tensor) -> Tensor:
        """``[B, F, R, R]`` -> each pixel's probability over the ``R`` depth rows, ``[B, R (depth), R, R]``."""
        return torch.softmax(self.depth_logits(x), dim=1)

    def forward(self, x: Tensor) -> Tensor:
        """``x [B, F, R, R]`` (rows: image rows, columns: image columns) -> ``[B, 2 * C, R (depth), R]``."""
        if x.dim() != 4 or x.shape[-1] != self.resolution or x.shape[-2] != self.resolution:
            raise ValueError(f"DepthLift expected features [B, F, {self.resolution}, {self.resolution}], "
                             f"got {list(x.shape)}")
        probability = self.depth_distribution(x)
        lifted = torch.einsum("bdyx,bcyx->bcdx", probability, self.features(x)) / self.resolution
        return self.out(lifted)
