"""EG3D's triplane decoder and importance renderer, numerically as NVlabs runs them.

Shared with :mod:`pe3d.rendering` (identical maths): ray generation
(:func:`pe3d.geometry.rays.sample_rays`), plane projection and sampling
(:func:`pe3d.rendering.planes.plane_sampler`: ``grid_sample``, or without autograd on a CPU the same values from a gather table), jittered stratified depths
(:func:`pe3d.rendering.volume.sample_stratified`), field queries with density noise
(:func:`pe3d.rendering.volume.query_field`) and inverse-CDF sampling
(:func:`pe3d.rendering.volume.sample_pdf`).

Kept here because :mod:`pe3d.rendering` deliberately differs from EG3D, and imported
weights must render as they did in NVlabs' code:

* the decoder stores its weights unscaled with an equalized-lr gain (``decoder.net.0.weight``);
* depths are always jittered (EG3D has no deterministic mode);
* importance samples are drawn over the coarse *midpoints* with the smoothed weights
  shifted by one (NeRF's layout), not per interval;
* transmittance is a cumulative product of ``1 - alpha + 1e-10``;
* the depth is clamped to the min/max depth of the *whole batch*, and colours are
  rescaled to ``[-1, 1]`` (``white_back`` adds ``1 - opacity`` first).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pe3d.eg3d.config import EG3DRenderingConfig
from pe3d.eg3d.stylegan2 import FullyConnectedLayer
from pe3d.rendering.decoder import RGB_PADDING, DecoderOutput
from pe3d.rendering.planes import plane_sampler
from pe3d.rendering.volume import query_field, sample_pdf, sample_stratified


class OSGDecoder(nn.Module):
    """Mean of the three plane features -> FC -> softplus -> FC: raw density + ``output_dim`` features.

    Keys ``net.0.weight``, ``net.0.bias``, ``net.2.weight``, ``net.2.bias`` as in EG3D.
    """

    def __init__(self, n_features: int, hidden_dim: int = 64, output_dim: int = 32, lr_multiplier: float = 1.0) -> None:
        super().__init__()
        self.output_dim = output_dim
        self.net = nn.Sequential(
            FullyConnectedLayer(n_features, hidden_dim, lr_multiplier=lr_multiplier),
            nn.Softplus(),
            FullyConnectedLayer(hidden_dim, 1 + output_dim, lr_multiplier=lr_multiplier),
        )

    def forward(self, sampled_features: Tensor, directions: Tensor | None = None) -> DecoderOutput:
        """``[B, 3, M, C]`` plane samples, or their mean over the planes ``[B, M, C]``
        (:func:`~pe3d.rendering.planes.plane_sampler`) -> ``features [B, M, output_dim]`` (sigmoid, padded) and raw
        ``sigma [B, M, 1]``."""
        x = self.net(sampled_features if sampled_features.dim() == 3 else sampled_features.mean(dim=1))
        features = torch.sigmoid(x[..., 1:]) * (1.0 + 2.0 * RGB_PADDING) - RGB_PADDING
        return DecoderOutput(features=features, sigma=x[..., :1])


class MarchOutput(NamedTuple):
    """EG3D ray-marcher output: ``rgb [B, N, C]`` in ``[-1, 1]``, ``depth [B, N, 1]``, interval ``weights [B, N, S-1, 1]``."""

    rgb: Tensor
    depth: Tensor
    weights: Tensor


def mip_ray_march(colors: Tensor, densities: Tensor, depths: Tensor, white_back: bool = False) -> MarchOutput:
    """EG3D's ``MipRayMarcher2``: midpoint colours/densities, ``softplus(sigma - 1)``, alpha compositing.

    Args:
        colors: ``[B, N, S, C]``; densities: ``[B, N, S, 1]`` raw; depths: ``[B, N, S, 1]`` sorted.
        white_back: composite onto white (ShapeNet); FFHQ composites onto nothing.
    """
    deltas = depths[:, :, 1:] - depths[:, :, :-1]
    colors_mid = (colors[:, :, :-1] + colors[:, :, 1:]) / 2
    densities_mid = F.softplus((densities[:, :, :-1] + densities[:, :, 1:]) / 2 - 1)
    depths_mid = (depths[:, :, :-1] + depths[:, :, 1:]) / 2
    alpha = 1 - torch.exp(-densities_mid * deltas)
    shifted = torch.cat([torch.ones_like(alpha[:, :, :1]), 1 - alpha + 1e-10], dim=-2)
    weights = alpha * torch.cumprod(shifted, dim=-2)[:, :, :-1]
    rgb = torch.sum(weights * colors_mid, dim=-2)
    total = weights.sum(dim=2)
    depth = torch.nan_to_num(torch.sum(weights * depths_mid, dim=-2) / total, float("inf"))
    depth = torch.clamp(depth, torch.min(depths), torch.max(depths))
    if white_back:
        rgb = rgb + 1 - total
    return MarchOutput(rgb=rgb * 2 - 1, depth=depth, weights=weights)


def sample_importance_midpoints(depths: Tensor, weights: Tensor, num_importance: int) -> Tensor:
    """EG3D's own importance draw over the coarse *midpoints* (NeRF's layout; pe3d's renderer uses
    :func:`pe3d.rendering.volume.sample_importance`, which keeps each weight on its interval): smooth
    the coarse weights (max-pool 2, avg-pool 2, + 0.01), then sample the midpoints with the inner weights.

    Args:
        depths: ``[B, N, S, 1]`` coarse depths; weights: ``[B, N, S-1, 1]`` from :func:`mip_ray_march`.

    Returns:
        ``[B, N, num_importance, 1]`` detached depths (unsorted).
    """
    with torch.no_grad():
        batch, rays, samples, _ = depths.shape
        z = depths.reshape(batch * rays, samples)
        w = weights.reshape(batch * rays, 1, -1).float()
        w = F.avg_pool1d(F.max_pool1d(w, 2, 1, padding=1), 2, 1).reshape(batch * rays, -1) + 0.01
        z_mid = 0.5 * (z[:, :-1] + z[:, 1:])
        fine = sample_pdf(z_mid, w[:, 1:-1], num_importance, deterministic=False)
    return fine.detach().reshape(batch, rays, num_importance, 1)


class RenderResult(NamedTuple):
    """Per-ray output of :func:`importance_render`: features ``[B, N, C]`` in ``[-1, 1]``, depth and opacity ``[B, N, 1]``."""

    features: Tensor
    depth: Tensor
    opacity: Tensor


def importance_render(planes: Tensor, decoder: OSGDecoder, origins: Tensor, directions: Tensor,
                      options: EG3DRenderingConfig) -> RenderResult:
    """EG3D's ``ImportanceRenderer.forward``: coarse pass, importance pass, march the sorted union.

    Random numbers are drawn in EG3D's order (coarse jitter, density noise, importance
    draws), so a seeded run reproduces NVlabs' renders.

    Args:
        planes: ``[B, 3, C, H, W]``; origins, directions: ``[B, N, 3]`` (unit directions).
        options: ray range, sample counts, ``box_warp``, ``density_noise``, ``white_back``.
    """

    sample = plane_sampler(planes, options.box_warp)

    def field_fn(coords: Tensor, dirs: Tensor) -> tuple[Tensor, Tensor]:
        return decoder(sample(coords), dirs)

    depths = sample_stratified(origins, directions, options.ray_start, options.ray_end, options.depth_resolution, perturb=True)
    colors, densities = query_field(field_fn, origins, directions, depths, options.density_noise)
    if options.depth_resolution_importance > 0:
        coarse = mip_ray_march(colors, densities, depths, options.white_back)
        fine_depths = sample_importance_midpoints(depths, coarse.weights, options.depth_resolution_importance)
        fine_colors, fine_densities = query_field(field_fn, origins, directions, fine_depths, options.density_noise)
        depths, order = torch.sort(torch.cat([depths, fine_depths], dim=-2), dim=-2)
        colors = torch.cat([colors, fine_colors], dim=-2).gather(-2, order.expand(-1, -1, -1, colors.shape[-1]))
        densities = torch.cat([densities, fine_densities], dim=-2).gather(-2, order)
    marched = mip_ray_march(colors, densities, depths, options.white_back)
    return RenderResult(features=marched.rgb, depth=marched.depth, opacity=marched.weights.sum(dim=2))


def copy_decoder_into(target: nn.Module, source: OSGDecoder) -> None:
    """Give a :class:`pe3d.rendering.decoder.TriplaneDecoder` the function of an EG3D decoder.

    Both are ``Linear -> Softplus -> Linear`` with the same output split; ours stores effective
    weights, so the equalized-lr gains are folded in (``W * g``, ``b * lr_mul``).

    Raises:
        ValueError: the two decoders have different sizes.
    """
    pairs = [(target.net[0], source.net[0]), (target.net[2], source.net[2])]
    for linear, fc in pairs:
        if tuple(linear.weight.shape) != tuple(fc.weight.shape):
            raise ValueError(f"decoder sizes differ: {tuple(linear.weight.shape)} (student) vs {tuple(fc.weight.shape)} (EG3D)")
    with torch.no_grad():
        for linear, fc in pairs:
            linear.weight.copy_(fc.effective_weight())
            linear.bias.copy_(fc.effective_bias())
