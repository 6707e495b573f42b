"""Volume rendering along rays: stratified and importance sampling, ray marching.

Follows EG3D's ``ImportanceRenderer`` + ``MipRayMarcher2``:

1. ``depth_resolution`` stratified depths in ``[ray_start, ray_end]`` (coarse pass);
2. the field is queried there, compositing weights are computed (no gradient),
   smoothed, and ``depth_resolution_importance`` more depths are drawn from them
   by inverse-CDF sampling (fine pass);
3. both sample sets are merged, sorted by depth and marched together.

Marching uses midpoint quadrature: for consecutive samples ``i, i+1`` the interval
``delta_i = t_{i+1} - t_i`` gets the mean raw density and mean colour of its two
ends, so ``S`` samples give ``S - 1`` intervals (and ``S - 1`` weights).

Shapes: ``B`` batch, ``N`` rays, ``S`` samples per ray, ``C`` feature channels.
Colours are in ``[0, 1]`` and are *not* rescaled to ``[-1, 1]`` (EG3D does that).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

DENSITY_ACTIVATIONS: tuple[str, ...] = ("softplus_shift", "identity")
"""Supported density activations: EG3D's ``softplus(sigma - 1)`` or none."""

FieldFn = Callable[[Tensor, Tensor], tuple[Tensor, Tensor]]
"""``field_fn(coords [B, M, 3], directions [B, M, 3]) -> (features [B, M, C], sigma [B, M, 1])``."""

BackgroundFn = Callable[[Tensor, Tensor], Tensor]
"""``background_fn(origins [B, N, 3], directions [B, N, 3]) -> features [B, N, C]`` seen behind the volume."""

Background = float | Tensor | None
"""What is composited behind the volume: a grey level, per-ray features ``[B, N, C]``, or nothing."""


@dataclass
class RayMarchOptions:
    """Sampling and marching settings (defaults: EG3D FFHQ).

    Attributes:
        ray_start: near bound of the coarse samples (world units along the unit ray).
        ray_end: far bound of the coarse samples.
        depth_resolution: coarse samples per ray (>= 2).
        depth_resolution_importance: importance samples per ray (0 disables the fine pass).
        box_warp: side of the cube covered by the triplane (used by the triplane field).
        density_activation: ``'softplus_shift'`` (EG3D, ``softplus(sigma - 1)``) or ``'identity'``.
        density_noise: std of Gaussian noise added to raw densities right after each
            field query (EG3D's ``density_noise``; 0 disables).
        background: grey level composited behind the volume (``rgb + (1 - opacity) * background``
            on every channel); ``None`` = no compositing (EG3D default; 1.0 = EG3D ``white_back``).
        perturb: jitter the stratified depths and draw random importance samples (training);
            ``False`` gives deterministic, evenly spaced depths and quantile importance samples.
        empty_ray_opacity: a shortcut for deterministic renders (``perturb=False``: evaluation and
            inference): rays whose coarse-pass opacity is at most this get no importance samples
            and are marched on their coarse samples alone. On the shipped mini model (1e-4) about
            60 % of a portrait's rays are empty, a render is about a quarter faster, and images move
            by less than 0.003 (88 dB); the depth of near-transparent rays, which has no meaning,
            may move. Training (``perturb=True``) always gives every ray the fine pass, as EG3D
            does, and so do renders on a GPU (not measured there; the ray count it selects varies
            from image to image, which torch.compile would have to recompile or break the graph
            for); 0 disables the shortcut.
        empty_ray_probe_stride: with the shortcut above, and rays that form a row-major image
            (:func:`render_rays`' ``image_size``), the coarse pass itself is first run on every
            ``stride``-th ray of every ``stride``-th row only (the probes); a ray whose 3 x 3
            neighbourhood of probes holds no busy probe is taken as empty without being queried: it
            shows the background, with zero opacity. Busy rays are found as before among the others.
            On the shipped mini models' portraits (8 held-out identities, 8 cameras, 64² and 128²) this
            is 17-18 % fewer field queries; images moved by at most 0.001, the opacity of nearly
            transparent rays by up to 0.045 (their depth, as above, has no meaning). The rays past the
            last probe row and column are always queried. 1 or 0 disables the probes.
        wall_inset: for a background read from the field (``RendererConfig.background_source == "field"``), plane
            cells by which the read point is kept inside the box's left, right and top faces
            (:func:`~pe3d.rendering.renderer.background_wall_points`). At a face, bilinear sampling mixes the edge cell
            half with the planes' zero padding, and the trained planes hold there a value meant for that mix: read
            at full weight in the half cell before the face, it drew a thin bright rectangle into a photo's
            background. One cell in, the edge cell is never read above half weight. 1 since 2026-12-07 (0 = at the
            faces, as before); the bottom face is left alone, since the body below the box is drawn from it, and
            so is the back face, which every background ray reads (one cell in, the planes' interior cells show
            behind every ray as a faint plaid; docs/results/quality/visibility.md; near both the read is blended
            instead: ``wall_face_blend``).
        wall_face_blend: for a background read from the field, plane cells over which a read point near the box's
            bottom or back face (within this of it, but not on it) takes its colour as a blend of the read on the
            face and the read this far in, by its distance from the face (bilinearly when near both;
            :func:`~pe3d.rendering.renderer.wall_face_blend`), instead of the bilinear read there, which weighs the
            planes' edge row above the half it has on the face. Where the rays' far points cross into the box past
            those faces that drew bright lines across a photo's background: a horizontal one below the shoulders at
            the photo's camera (bottom face), curved vertical ones beside the head in side views (back face).
            Continuous at both ends of the band; the reads on the faces (the frontal views' walls, the body below
            the box) are unchanged, and points clamped onto the bottom face are not blended towards the back.
            1.5 since 2026-12-07 (the next row's centre; 0 = off, as before).
        frontal_perspective: > 0: the triplane's ``(x, y)`` plane is read in perspective from the frontal camera
            at this distance from the origin on ``+z`` (:func:`~pe3d.rendering.planes.frontal_scale`; the mini
            model's 2.7), so that each of its cells holds what one input pixel of a frontal portrait shows, at any
            depth; 0 (the default): orthographic, as EG3D.
    """

    ray_start: float = 2.25
    ray_end: float = 3.3
    depth_resolution: int = 48
    depth_resolution_importance: int = 48
    box_warp: float = 1.0
    density_activation: str = "softplus_shift"
    density_noise: float = 0.0
    background: float | None = None
    perturb: bool = True
    empty_ray_opacity: float = 1e-4
    empty_ray_probe_stride: int = 2
    wall_inset: float = 1.0
    wall_face_blend: float = 1.5
    frontal_perspective: float = 0.0

    def __post_init__(self) -> None:
        if not self.ray_start < self.ray_end:
            raise ValueError(f"ray_start ({self.ray_start}) must be < ray_end ({self.ray_end})")
        if self.depth_resolution < 2 or self.depth_resolution_importance < 0:
            raise ValueError("depth_resolution must be >= 2 and depth_resolution_importance >= 0")
        if self.density_activation not in DENSITY_ACTIVATIONS:
            raise ValueError(f"density_activation must be one of {DENSITY_ACTIVATIONS}, got {self.density_activation!r}")
        if self.box_warp <= 0 or self.density_noise < 0:
            raise ValueError("box_warp must be > 0 and density_noise >= 0")
        if not 0.0 <= self.empty_ray_opacity < 1.0:
            raise ValueError(f"empty_ray_opacity must be in [0, 1), got {self.empty_ray_opacity}")
        if self.empty_ray_probe_stride < 0:
            raise ValueError(f"empty_ray_probe_stride must be >= 0, got {self.empty_ray_probe_stride}")
        if self.wall_inset < 0:
            raise ValueError(f"wall_inset must be >= 0 (plane cells inside the box's faces), got {self.wall_inset}")
        if self.wall_face_blend < 0:
            raise ValueError(f"wall_face_blend must be >= 0 (plane cells from the box's faces), got {self.wall_face_blend}")
        if self.frontal_perspective < 0 or 0 < self.frontal_perspective <= 0.5 * self.box_warp:
            raise ValueError(f"frontal_perspective must be 0 (orthographic) or a camera distance beyond the box's front face "
                             f"({0.5 * self.box_warp}), got {self.frontal_perspective}")


class MarchResult(NamedTuple):
    """Output of :func:`march_rays`.

    Attributes:
        rgb: ``[B, N, C]`` composited colours/features.
        depth: ``[B, N, 1]`` expected depth normalized by the accumulated weight.
        weights: ``[B, N, S-1, 1]`` compositing weight of every interval.
    """

    rgb: Tensor
    depth: Tensor
    weights: Tensor


@dataclass
class RayRenderResult:
    """Output of :func:`render_rays`.

    Attributes:
        rgb: ``[B, N, C]`` composited colours/features (EG3D's name; all ``C`` channels).
        depth: ``[B, N, 1]`` expected ray distance, ``sum(w * t) / sum(w)``, clamped to the sampled range.
        weights_sum: ``[B, N, 1]`` accumulated weight (opacity) of each ray.
    """

    rgb: Tensor
    depth: Tensor
    weights_sum: Tensor


def sample_stratified(
    origins: Tensor,
    directions: Tensor,
    ray_start: float | Tensor,
    ray_end: float | Tensor,
    num_samples: int,
    perturb: bool,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Evenly spaced depths, optionally jittered (EG3D ``sample_stratified``).

    ``num_samples`` depths ``linspace(ray_start, ray_end)``; with ``perturb`` each gets
    ``U[0, delta)`` added (``delta`` = spacing), exactly like EG3D, so jittered samples
    may exceed ``ray_end`` by up to one spacing.

    Args:
        origins: ``[B, N, 3]`` ray origins (for shape, dtype and device).
        directions: ``[B, N, 3]`` unit ray directions (for shape only).
        ray_start: float or ``[B, N, 1]`` near bounds.
        ray_end: float or ``[B, N, 1]`` far bounds.
        num_samples: ``S >= 2``.
        perturb: add the uniform jitter.
        generator: random generator for the jitter.

    Returns:
        ``[B, N, S, 1]`` depths, sorted along ``S``.
    """
    if num_samples < 2:
        raise ValueError(f"num_samples must be >= 2, got {num_samples}")
    batch, num_rays = directions.shape[:2]
    kwargs = {"dtype": origins.dtype, "device": origins.device}
    start = torch.as_tensor(ray_start, **kwargs)
    end = torch.as_tensor(ray_end, **kwargs)
    if start.ndim:
        start, end = start[..., None, :], end[..., None, :]  # [B, N, 1, 1]
    steps = torch.linspace(0.0, 1.0, num_samples, **kwargs).reshape(1, 1, num_samples, 1)
    depths = (start + steps * (end - start)).expand(batch, num_rays, num_samples, 1)
    if not perturb:
        return depths.contiguous()
    spacing = (end - start) / (num_samples - 1)
    noise = torch.rand(depths.shape, generator=generator, **kwargs)
    return depths + noise * spacing


def activate_density(densities: Tensor, activation: str = "softplus_shift") -> Tensor:
    """Turn raw densities into non-negative ones.

    Args:
        densities: raw densities, any shape.
        activation: ``'softplus_shift'`` -> ``softplus(x - 1)`` (EG3D); ``'identity'`` -> ``x``
            (for fields that are already non-negative, e.g. analytic tests).

    Returns:
        Tensor of the same shape.
    """
    if activation == "softplus_shift":
        return F.softplus(densities - 1.0)
    if activation == "identity":
        return densities
    raise ValueError(f"density_activation must be one of {DENSITY_ACTIVATIONS}, got {activation!r}")


def _midpoints(values: Tensor) -> Tensor:
    """``[..., S, D] -> [..., S-1, D]`` means of consecutive samples."""
    return 0.5 * (values[..., :-1, :] + values[..., 1:, :])


def compositing_weights(densities: Tensor, depths: Tensor, density_activation: str = "softplus_shift") -> Tensor:
    """Per-interval compositing weights with midpoint quadrature.

    ``w_i = (1 - exp(-sigma_i delta_i)) * exp(-sum_{j<i} sigma_j delta_j)`` with
    ``sigma_i = act(mean of the raw densities at both interval ends)``.

    Args:
        densities: ``[B, N, S, 1]`` raw densities.
        depths: ``[B, N, S, 1]`` sorted sample depths.
        density_activation: see :func:`activate_density`.

    Returns:
        ``[B, N, S-1, 1]`` weights, summing to the ray's opacity (<= 1).
    """
    deltas = depths[..., 1:, :] - depths[..., :-1, :]
    optical_depth = activate_density(_midpoints(densities), density_activation) * deltas
    before = F.pad(torch.cumsum(optical_depth, dim=-2)[..., :-1, :], (0, 0, 1, 0))  # exclusive cumsum
    transmittance = torch.exp(-before)
    return (1.0 - torch.exp(-optical_depth)) * transmittance


def _expected_depth(weights: Tensor, depths: Tensor, weights_sum: Tensor) -> Tensor:
    """``sum(w * t_mid) / sum(w)`` clamped per ray to ``[t_0, t_{S-1}]``; far bound if ``sum(w) == 0``.

    Shapes: weights ``[B, N, S-1, 1]``, depths ``[B, N, S, 1]``, weights_sum ``[B, N, 1]`` -> ``[B, N, 1]``.
    """
    near, far = depths[..., 0, :], depths[..., -1, :]
    numerator = torch.sum(weights * _midpoints(depths), dim=-2)
    has_weight = weights_sum > 0
    depth = numerator / torch.where(has_weight, weights_sum, torch.ones_like(weights_sum))
    depth = torch.where(has_weight, depth, far)
    return torch.minimum(torch.maximum(depth, near), far)


def sample_weights(weights: Tensor) -> Tensor:
    """Split interval weights onto their two end samples: ``v_j = (w_{j-1} + w_j) / 2``.

    Compositing per-sample values with ``v`` equals compositing their interval midpoints
    with ``w`` (EG3D's ``colors_mid``) without building the ``[B, N, S-1, C]`` midpoints.

    Args:
        weights: ``[B, N, S-1, 1]`` interval weights.

    Returns:
        ``[B, N, S, 1]`` per-sample weights with the same total.
    """
    padded = F.pad(weights, (0, 0, 1, 1))  # zero before the first and after the last interval
    return 0.5 * (padded[..., :-1, :] + padded[..., 1:, :])


def composite(values: Tensor, weights: Tensor) -> Tensor:
    """Weighted sum over samples as a batched matrix product.

    Args:
        values: ``[B, N, S, C]`` per-sample colours/features.
        weights: ``[B, N, S, 1]`` per-sample weights (see :func:`sample_weights`).

    Returns:
        ``[B, N, C]``.
    """
    return (weights.transpose(-1, -2) @ values).squeeze(-2)


def march_rays(
    colors: Tensor,
    densities: Tensor,
    depths: Tensor,
    density_activation: str = "softplus_shift",
    background: Background = None,
) -> MarchResult:
    """Composite samples along rays (EG3D ``MipRayMarcher2`` with midpoint quadrature).

    Args:
        colors: ``[B, N, S, C]`` colours/features at the samples.
        densities: ``[B, N, S, 1]`` raw densities at the samples.
        depths: ``[B, N, S, 1]`` sorted depths (``S >= 2``).
        density_activation: ``'softplus_shift'`` (EG3D) or ``'identity'``.
        background: grey level or per-ray features ``[B, N, C]`` composited behind the volume,
            or ``None`` (EG3D default).

    Returns:
        :class:`MarchResult` ``(rgb [B, N, C], depth [B, N, 1], weights [B, N, S-1, 1])``;
        ``weights.sum(-2)`` is the opacity. Depth is normalized by the opacity and clamped
        to the ray's sampled range (EG3D).
    """
    weights = compositing_weights(densities, depths, density_activation)
    weights_sum = weights.sum(dim=-2)
    rgb = _add_background(composite(colors, sample_weights(weights)), weights_sum, background)
    return MarchResult(rgb=rgb, depth=_expected_depth(weights, depths, weights_sum), weights=weights)


def _add_background(rgb: Tensor, weights_sum: Tensor, background: Background) -> Tensor:
    """``rgb + (1 - opacity) * background`` (``[B, N, C]``, ``[B, N, 1]``, a float or ``[B, N, C]``),
    or ``rgb`` when ``None``."""
    return rgb if background is None else rgb + (1.0 - weights_sum) * background


def sample_pdf(
    bins: Tensor,
    weights: Tensor,
    num_samples: int,
    deterministic: bool,
    generator: torch.Generator | None = None,
    eps: float = 1e-5,
) -> Tensor:
    """Inverse-CDF sampling of a piecewise-constant pdf (NeRF/EG3D ``sample_pdf``).

    Args:
        bins: ``[..., K+1]`` sorted bin edges.
        weights: ``[..., K]`` non-negative bin weights (``eps`` is added).
        num_samples: samples ``M`` per row.
        deterministic: use the quantiles ``linspace(0, 1, M)`` instead of uniform noise.
        generator: random generator for the uniform draws.
        eps: weight floor and minimum CDF step.

    Returns:
        ``[..., M]`` samples inside ``[bins[..., 0], bins[..., -1]]`` (no gradient).
    """
    weights = weights + eps
    pdf = weights / weights.sum(dim=-1, keepdim=True)
    cdf = torch.cat((torch.zeros_like(pdf[..., :1]), torch.cumsum(pdf, dim=-1)), dim=-1)  # [..., K+1]
    shape = (*cdf.shape[:-1], num_samples)
    if deterministic:
        u = torch.linspace(0.0, 1.0, num_samples, dtype=cdf.dtype, device=cdf.device).expand(shape).contiguous()
    else:
        u = torch.rand(shape, generator=generator, dtype=cdf.dtype, device=cdf.device)
    indices = torch.searchsorted(cdf, u, right=True)
    below = (indices - 1).clamp_min(0)
    above = indices.clamp_max(cdf.shape[-1] - 1)
    cdf_below, cdf_above = cdf.gather(-1, below), cdf.gather(-1, above)
    bins_below, bins_above = bins.gather(-1, below), bins.gather(-1, above)
    denom = cdf_above - cdf_below
    denom = torch.where(denom < eps, torch.ones_like(denom), denom)
    return bins_below + (u - cdf_below) / denom * (bins_above - bins_below)


def sample_importance(
    depths: Tensor,
    weights: Tensor,
    num_importance: int,
    deterministic: bool,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Draw fine depths where the coarse pass found mass (EG3D ``sample_importance``).

    The interval weights are smoothed as in EG3D (max-pool then avg-pool, window 2,
    then ``+ 0.01``) and sampled with :func:`sample_pdf` over the coarse intervals
    ``[t_i, t_{i+1}]``. (EG3D samples over the coarse midpoints with weights shifted by
    half an interval, a NeRF leftover; here each weight stays on its own interval.)

    Args:
        depths: ``[B, N, S, 1]`` sorted coarse depths.
        weights: ``[B, N, S-1, 1]`` coarse interval weights from :func:`compositing_weights`.
        num_importance: fine samples ``K`` per ray.
        deterministic: quantile instead of random samples.
        generator: random generator.

    Returns:
        ``[B, N, K, 1]`` fine depths (detached, not sorted).
    """
    batch, num_rays, num_coarse, _ = depths.shape
    with torch.no_grad():
        flat = weights.reshape(batch * num_rays, 1, num_coarse - 1).float()
        smoothed = F.avg_pool1d(F.max_pool1d(flat, 2, 1, padding=1), 2, 1).squeeze(1) + 0.01  # [BN, S-1]
        bins = depths.reshape(batch * num_rays, num_coarse).float()
        fine = sample_pdf(bins, smoothed, num_importance, deterministic, generator)
    return fine.to(depths.dtype).reshape(batch, num_rays, num_importance, 1)


def march_union(
    colors: tuple[Tensor, Tensor],
    densities: tuple[Tensor, Tensor],
    depths: tuple[Tensor, Tensor],
    density_activation: str,
    background: Background,
) -> tuple[Tensor, Tensor, Tensor]:
    """March the union of two unsorted sample sets (EG3D ``unify_samples`` + ray marcher).

    Only depths and densities are merged and sorted; the per-sample weights are scattered
    back to the unsorted layout so the ``C``-channel colours are never concatenated or
    gathered. Equal to ``march_rays`` on the sorted union.

    Args:
        colors: ``([B, N, Sa, C], [B, N, Sb, C])``.
        densities: ``([B, N, Sa, 1], [B, N, Sb, 1])`` raw densities.
        depths: ``([B, N, Sa, 1], [B, N, Sb, 1])``.
        density_activation: see :func:`activate_density`.
        background: see :func:`march_rays`.

    Returns:
        ``(rgb [B, N, C], depth [B, N, 1], weights_sum [B, N, 1])``.
    """
    sorted_depths, order = torch.sort(torch.cat(depths, dim=-2), dim=-2)
    sorted_densities = torch.cat(densities, dim=-2).gather(-2, order)
    weights = compositing_weights(sorted_densities, sorted_depths, density_activation)
    weights_sum = weights.sum(dim=-2)
    per_sample = sample_weights(weights)
    per_sample = torch.zeros_like(per_sample).scatter(-2, order, per_sample)  # back to concatenated order
    first, second = per_sample.split([colors[0].shape[-2], colors[1].shape[-2]], dim=-2)
    rgb = _add_background(composite(colors[0], first) + composite(colors[1], second), weights_sum, background)
    return rgb, _expected_depth(weights, sorted_depths, weights_sum), weights_sum


def query_field(
    field_fn: FieldFn,
    origins: Tensor,
    directions: Tensor,
    depths: Tensor,
    density_noise: float = 0.0,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """Evaluate ``field_fn`` at ``origin + depth * direction``.

    Args:
        field_fn: ``(coords [B, M, 3], directions [B, M, 3]) -> (features [B, M, C], sigma [B, M, 1])``.
        origins: ``[B, N, 3]``.
        directions: ``[B, N, 3]``.
        depths: ``[B, N, S, 1]``.
        density_noise: std of Gaussian noise added to the raw densities (EG3D ``density_noise``).
        generator: random generator for the noise.

    Returns:
        ``(features [B, N, S, C], sigma [B, N, S, 1])``.
    """
    batch, num_rays, num_samples, _ = depths.shape
    coords = origins.unsqueeze(-2) + depths * directions.unsqueeze(-2)  # [B, N, S, 3]
    sample_dirs = directions.unsqueeze(-2).expand(batch, num_rays, num_samples, 3)
    features, sigma = field_fn(coords.reshape(batch, -1, 3), sample_dirs.reshape(batch, -1, 3))
    if density_noise > 0:
        sigma = sigma + density_noise * torch.randn(
            sigma.shape, generator=generator, dtype=sigma.dtype, device=sigma.device
        )
    return features.reshape(batch, num_rays, num_samples, -1), sigma.reshape(batch, num_rays, num_samples, 1)


def render_rays(
    field_fn: FieldFn,
    origins: Tensor,
    directions: Tensor,
    options: RayMarchOptions,
    generator: torch.Generator | None = None,
    background_fn: BackgroundFn | None = None,
    image_size: int | None = None,
) -> RayRenderResult:
    """Two-pass volume rendering of a field (EG3D ``ImportanceRenderer.forward``).

    Coarse stratified samples -> compositing weights (no gradient) -> importance
    samples -> both sets merged, sorted and marched. With
    ``depth_resolution_importance == 0`` only the coarse samples are marched.
    Gradients flow to whatever ``field_fn`` depends on (sample positions are detached).

    Args:
        field_fn: ``(coords [B, M, 3], directions [B, M, 3]) -> (features [B, M, C], sigma [B, M, 1])``
            with raw densities (activated by ``options.density_activation``).
        origins: ``[B, N, 3]`` ray origins.
        directions: ``[B, N, 3]`` unit ray directions.
        options: :class:`RayMarchOptions`.
        generator: random generator for jitter, importance draws and density noise.
        background_fn: when given, the features it returns for each ray are composited behind
            the volume instead of ``options.background`` (a background that is part of the scene,
            e.g. read from the triplane at the far end of the ray). Opacity and depth stay those
            of the volume in front of it.
        image_size: when the ``N`` rays are the pixels of a row-major ``image_size`` x ``image_size``
            image, deterministic CPU renders may probe for empty rays on a coarser grid first
            (``options.empty_ray_probe_stride``); ``None`` (any ray set) never does.

    Returns:
        :class:`RayRenderResult` ``(rgb [B, N, C], depth [B, N, 1], weights_sum [B, N, 1])``.
    """
    background = options.background if background_fn is None else background_fn(origins, directions)
    depths = sample_stratified(
        origins, directions, options.ray_start, options.ray_end, options.depth_resolution, options.perturb, generator
    )
    shortcut = options.empty_ray_opacity > 0 and not options.perturb and origins.device.type == "cpu"
    probe = options.empty_ray_probe_stride
    if (shortcut and probe > 1 and image_size is not None and image_size >= 2 * probe and options.density_noise == 0
            and not torch.is_grad_enabled()):
        colors, densities = _probed_coarse_pass(field_fn, origins, directions, depths, options, image_size)
    else:
        colors, densities = query_field(field_fn, origins, directions, depths, options.density_noise, generator)
    if options.depth_resolution_importance == 0:
        return _march_coarse(colors, densities, depths, options, background)
    with torch.no_grad():
        coarse_weights = compositing_weights(densities, depths, options.density_activation)
    if shortcut:
        busy = coarse_weights.sum(dim=-2).squeeze(-1) > options.empty_ray_opacity  # [B, N]
        if not bool(busy.any()):
            return _march_coarse(colors, densities, depths, options, background)
        if not bool(busy.all()):
            return _render_busy_rays(field_fn, origins, directions, options, generator, background,
                                     (colors, densities, depths, coarse_weights), busy)
    return _fine_pass(field_fn, origins, directions, options, generator, background,
                      (colors, densities, depths, coarse_weights))


EMPTY_RAW_DENSITY = {"softplus_shift": -1e4, "identity": 0.0}
"""Raw density given to the samples of rays the probes found empty, per density activation (activated: 0)."""


def _probed_coarse_pass(field_fn: FieldFn, origins: Tensor, directions: Tensor, depths: Tensor,
                        options: RayMarchOptions, image_size: int) -> tuple[Tensor, Tensor]:
    """The coarse pass of :func:`render_rays` with ``options.empty_ray_probe_stride`` probes.

    The probe rays (every ``stride``-th ray of every ``stride``-th image row) are queried first; a ray is
    queried too when a probe within one probe spacing of it (its 3 x 3 probe neighbourhood) is busy
    (coarse opacity above ``empty_ray_opacity``), and so are the rays past the last probe row and column
    (the image border, where a body cut by the frame enters). The samples of the rays left out get colour 0 and the raw
    density of :data:`EMPTY_RAW_DENSITY`, so they march to zero opacity in front of their background.

    Returns ``(colors [B, N, S, C], raw densities [B, N, S, 1])`` as :func:`query_field` does.
    """
    batch, num_rays, num_samples, _ = depths.shape
    stride, size = options.empty_ray_probe_stride, image_size
    rows = torch.arange(0, size, stride, device=origins.device)
    probe_index = (rows[:, None] * size + rows[None, :]).reshape(-1)  # [P], the same rays in every image
    probe_colors, probe_densities = query_field(field_fn, origins[:, probe_index], directions[:, probe_index],
                                                depths[:, probe_index])
    probe_weights = compositing_weights(probe_densities, depths[:, probe_index], options.density_activation)
    busy = (probe_weights.sum(dim=(-2, -1)) > options.empty_ray_opacity).to(depths.dtype)  # [B, P]
    grid = F.max_pool2d(busy.reshape(batch, 1, len(rows), len(rows)), 3, stride=1, padding=1)
    near = F.interpolate(grid, scale_factor=stride, mode="nearest")[:, 0, :size, :size] > 0
    last = int(rows[-1])
    near[:, last + 1 :, :] = True  # rows and columns past the last probe have no probe beyond them
    near[:, :, last + 1 :] = True
    near = near.reshape(batch, -1)
    near[:, probe_index] = False  # probes are queried already
    colors = origins.new_zeros(batch, num_rays, num_samples, probe_colors.shape[-1])
    densities = origins.new_full((batch, num_rays, num_samples, 1), EMPTY_RAW_DENSITY[options.density_activation])
    colors[:, probe_index], densities[:, probe_index] = probe_colors, probe_densities
    if bool(near.any()):
        order = selected_rays_first(near)
        more_colors, more_densities = query_field(field_fn, gather_rays(origins, order), gather_rays(directions, order),
                                                  gather_rays(depths, order))
        colors.scatter_(1, order[..., None, None].expand_as(more_colors), more_colors)
        densities.scatter_(1, order[..., None, None].expand_as(more_densities), more_densities)
    return colors, densities


def selected_rays_first(selected: Tensor) -> Tensor:
    """``[B, K]`` ray indices of each image's ``selected [B, N]`` rays first, ``K`` the most any image selects
    (an image with fewer is padded with some of its other rays)."""
    order = torch.argsort((~selected).to(torch.uint8), dim=1, stable=True)
    return order[:, : int(selected.sum(dim=1).max())]


def gather_rays(value: Tensor, index: Tensor) -> Tensor:
    """``value [B, N, ...]`` at the rays ``index [B, K]`` -> ``[B, K, ...]``."""
    expanded = index.reshape(*index.shape, *([1] * (value.dim() - 2))).expand(-1, -1, *value.shape[2:])
    return value.gather(1, expanded)


Coarse = tuple[Tensor, Tensor, Tensor, Tensor]
"""The coarse pass of some rays: ``(colors [B, N, S, C], raw densities [B, N, S, 1], depths [B, N, S, 1],
interval weights [B, N, S-1, 1])``."""


def _march_coarse(colors: Tensor, densities: Tensor, depths: Tensor, options: RayMarchOptions,
                  background: Background) -> RayRenderResult:
    marched = march_rays(colors, densities, depths, options.density_activation, background)
    return RayRenderResult(rgb=marched.rgb, depth=marched.depth, weights_sum=marched.weights.sum(dim=-2))


def _fine_pass(field_fn: FieldFn, origins: Tensor, directions: Tensor, options: RayMarchOptions,
               generator: torch.Generator | None, background: Background, coarse: Coarse) -> RayRenderResult:
    """Importance samples from the coarse weights, then both sets marched together."""
    colors, densities, depths, coarse_weights = coarse
    fine_depths = sample_importance(depths, coarse_weights, options.depth_resolution_importance, not options.perturb, generator)
    fine_colors, fine_densities = query_field(field_fn, origins, directions, fine_depths, options.density_noise, generator)
    rgb, depth, weights_sum = march_union(
        (colors, fine_colors), (densities, fine_densities), (depths, fine_depths), options.density_activation, background
    )
    return RayRenderResult(rgb=rgb, depth=depth, weights_sum=weights_sum)


def _render_busy_rays(field_fn: FieldFn, origins: Tensor, directions: Tensor, options: RayMarchOptions,
                      generator: torch.Generator | None, background: Background, coarse: Coarse,
                      busy: Tensor) -> RayRenderResult:
    """:func:`render_rays` when only the ``busy [B, N]`` rays need the fine pass (``empty_ray_opacity``).

    Every image's busy rays are moved to the front; the first ``K`` rays of each image (``K`` = the
    most busy rays of any image in the batch) get the full two-pass render, the others are marched
    on their coarse samples alone, and the results are written back to their ray positions.
    """
    index = selected_rays_first(busy)

    def pick(value: Tensor) -> Tensor:
        return gather_rays(value, index)

    per_ray_background = isinstance(background, Tensor) and background.dim() == 3
    fine = _fine_pass(field_fn, pick(origins), pick(directions), options, generator,
                      pick(background) if per_ray_background else background, tuple(pick(c) for c in coarse))
    result = _march_coarse(*coarse[:3], options, background)
    for name in ("rgb", "depth", "weights_sum"):
        target = getattr(result, name)
        target.scatter_(1, index.unsqueeze(-1).expand(-1, -1, target.shape[-1]), getattr(fine, name))
    return result
