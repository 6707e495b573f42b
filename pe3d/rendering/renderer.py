"""Render triplanes from EG3D cameras: rays -> triplane field -> volume rendering -> (SR).

:class:`TriplaneRenderer` ties together :func:`pe3d.geometry.rays.sample_rays`,
:func:`~pe3d.rendering.planes.sample_from_planes` (without autograd on a CPU: its gather-table form,
:func:`~pe3d.rendering.planes.sample_mean_from_table`), the
:class:`~pe3d.rendering.decoder.TriplaneDecoder` and
:func:`~pe3d.rendering.volume.render_rays`. Images are in ``[0, 1]``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

import torch
from torch import Tensor, nn

from pe3d.geometry.rays import sample_rays
from pe3d.rendering.decoder import DecoderOutput, TriplaneDecoder, TriplaneDecoderConfig
from pe3d.rendering.planes import plane_sampler
from pe3d.rendering.superres import SuperResolution, SuperResolutionConfig
from pe3d.rendering.volume import RayMarchOptions, RayRenderResult, gather_rays, render_rays, selected_rays_first


INFERENCE_CHUNK_POINTS = 8192
"""Without autograd, :meth:`TriplaneRenderer.query_field` decodes this many points at a time: the
intermediate tensors then stay in the CPU's cache and are reused instead of being allocated afresh
(which on a CPU costs as much as the arithmetic): the field queries of a 64^2 render measured ~30 % faster."""

BACKGROUND_SOURCES: tuple[str, ...] = ("constant", "field")
"""Accepted :attr:`RendererConfig.background_source` values."""


@dataclass
class RendererConfig:
    """Settings of :class:`TriplaneRenderer`.

    Attributes:
        decoder: the triplane decoder MLP.
        ray_march: sampling and marching options.
        neural_rendering_resolution: default side ``R`` of the volume-rendered image (EG3D: 64).
        superres: optional learned super-resolution head.
        background_source: what is seen behind the volume. ``"constant"``: the grey level
            ``ray_march.background`` (or nothing when it is ``None``). ``"field"``: the decoded
            features of the triplane at the far end of each ray (clamped into the triplane's
            box), so the background is part of the 3D scene, as in EG3D, and can take any colour.
    """

    decoder: TriplaneDecoderConfig = field(default_factory=TriplaneDecoderConfig)
    ray_march: RayMarchOptions = field(default_factory=RayMarchOptions)
    neural_rendering_resolution: int = 64
    superres: SuperResolutionConfig = field(default_factory=SuperResolutionConfig)
    background_source: str = "constant"

    def __post_init__(self) -> None:
        if self.neural_rendering_resolution < 1:
            raise ValueError("neural_rendering_resolution must be positive")
        if self.background_source not in BACKGROUND_SOURCES:
            raise ValueError(f"background_source must be one of {BACKGROUND_SOURCES}, got {self.background_source!r}")


@dataclass
class RenderOutput:
    """What :meth:`TriplaneRenderer.forward` returns.

    Full renders (``ray_indices=None``) hold images; ray-subset renders hold the same
    channels flattened over the ``K`` selected rays.

    Attributes:
        image: ``[B, 3, R, R]`` (or ``[B, 3, K]``) raw RGB, the first 3 features, about ``[0, 1]``.
        features: ``[B, F, R, R]`` (or ``[B, F, K]``) all decoded features.
        depth: ``[B, 1, R, R]`` (or ``[B, 1, K]``) expected ray distance.
        weights: ``[B, 1, R, R]`` (or ``[B, 1, K]``) accumulated opacity.
        image_sr: ``[B, 3, R', R']`` super-resolved RGB, or ``None`` (no SR head, or a ray subset).
    """

    image: Tensor
    features: Tensor
    depth: Tensor
    weights: Tensor
    image_sr: Tensor | None = None


def _wall_half(box_warp: float) -> float:
    """Half the side of the cube the wall is read in: the triplane box's, a hair inside its faces."""
    return 0.5 * box_warp * (1.0 - 1e-3)


def background_wall_points(origins: Tensor, directions: Tensor, box_warp: float, ray_end: float,
                           inset: float = 0.0) -> Tensor:
    """Where a ray's background is read: its point at distance ``ray_end``, clamped into the
    triplane box of side ``box_warp`` (``[..., 3]`` from ``origins, directions [..., 3]``), and ``inset``
    (world units) further inside its left, right (``x``) and top (``+y``) faces
    (:attr:`~pe3d.rendering.volume.RayMarchOptions.wall_inset`)."""
    half = _wall_half(box_warp)
    points = (origins + ray_end * directions).clamp(-half, half)
    if inset <= 0:
        return points
    inner = max(half - inset, 0.0)
    x, y, z = points.unbind(-1)
    return torch.stack([x.clamp(-inner, inner), y.clamp(max=inner), z], dim=-1)


BLENDED_FACES: tuple[int, ...] = (1, 2)
"""The axes whose ``-half`` face the wall read blends near (:func:`wall_face_blend`): the bottom (``y``) and back (``z``)."""


def wall_face_blend(points: Tensor, box_warp: float, band: float) -> Tensor:
    """``[..., 2]`` blend weights of each wall read point ``[..., 3]`` (from :func:`background_wall_points`) near the
    box's bottom face (``y = -half``, channel 0) and back face (``z = -half``, channel 1): ``t = (coordinate + half) /
    band`` for a point within ``band`` (world units) of that face, NaN where it is on the face, ``band`` or more in, or,
    for the back face, clamped onto the bottom face (the body below the box is drawn from it). Along each such axis the
    point's colour is ``(1 - t) * read(on the face) + t * read(band in)``, bilinearly over both axes when it is near
    both (:attr:`~pe3d.rendering.volume.RayMarchOptions.wall_face_blend`)."""
    half = _wall_half(box_warp)
    t = (points[..., list(BLENDED_FACES)] + half) / band
    near = (t > 0) & (t < 1)
    near[..., 1] &= points[..., 1] > -half
    return torch.where(near, t, torch.full_like(t, float("nan")))


def _blend_near_faces(field: Callable[[Tensor, Tensor | None], DecoderOutput], points: Tensor, colours: Tensor,
                      box_warp: float, band: float) -> Tensor:
    """``colours [B, N, F]`` (the field read at ``points [B, N, 3]``) with the reads near the bottom and back faces
    replaced by :func:`wall_face_blend`'s blend; only those rays are read again (in a frontal view a row or two)."""
    if band <= 0:
        return colours
    t = wall_face_blend(points, box_warp, band)
    near = ~t.isnan()
    if not bool(near.any()):
        return colours
    index = selected_rays_first(near.any(dim=-1))
    picked, weights, active = gather_rays(points, index), gather_rays(t, index), gather_rays(near, index)
    half = _wall_half(box_warp)
    corners, shares = [], []
    for ends in ((0, 0), (0, 1), (1, 0), (1, 1)):  # face or band-end along y, along z
        corner, share = picked.clone(), torch.ones_like(weights[..., 0])
        for k, (axis, end) in enumerate(zip(BLENDED_FACES, ends)):
            on, weight = active[..., k], weights[..., k]
            corner[..., axis] = torch.where(on, torch.full_like(weight, -half + end * band), corner[..., axis])
            share = share * torch.where(on, weight if end else 1.0 - weight, torch.full_like(weight, 1.0 - end))
        corners.append(corner)
        shares.append(share)
    reads = field(torch.cat(corners, dim=1), None).features.split(picked.shape[1], dim=1)
    blended = sum(read * share.nan_to_num(0.0).unsqueeze(-1).to(read.dtype) for read, share in zip(reads, shares))
    blended = torch.where(active.any(dim=-1, keepdim=True), blended, gather_rays(colours, index))  # padded rays keep theirs
    return colours.scatter(1, index.unsqueeze(-1).expand(-1, -1, colours.shape[-1]), blended)


def _to_image(values: Tensor, resolution: int) -> Tensor:
    """``[B, R*R, C]`` (row-major rays) -> ``[B, C, R, R]``."""
    return values.transpose(1, 2).reshape(values.shape[0], values.shape[-1], resolution, resolution)


class TriplaneRenderer(nn.Module):
    """Volume-render triplanes ``[B, 3, C, H, W]`` from 25-d EG3D camera labels.

    Holds the learnable parts (decoder MLP, optional super-resolution head); the
    triplane comes from outside (generator, encoder or editor).

    Args:
        config: :class:`RendererConfig`.
    """

    def __init__(self, config: RendererConfig | None = None) -> None:
        super().__init__()
        self.config = config if config is not None else RendererConfig()
        self.decoder = TriplaneDecoder.from_config(self.config.decoder)
        sr = self.config.superres
        self.superres: SuperResolution | None = None
        if sr.enabled:
            self.superres = SuperResolution(
                self.config.decoder.out_features, self.config.neural_rendering_resolution, sr.out_resolution, sr.channels
            )

    def ray_march_options(self) -> RayMarchOptions:
        """The options used by :meth:`forward`: ``config.ray_march`` with ``perturb`` only in training mode.

        In ``eval()`` mode sampling is deterministic (evenly spaced coarse depths, quantile
        importance samples) and density noise is off, so renders are repeatable. (EG3D keeps
        jittering at inference; set ``perturb`` and call ``train()`` to get that.)
        """
        options = self.config.ray_march
        if self.training:
            return options
        return replace(options, perturb=False, density_noise=0.0)

    def query_field(self, planes: Tensor, coords: Tensor, directions: Tensor | None = None) -> DecoderOutput:
        """Decode the triplane at world points (EG3D ``run_model``; e.g. for density regularization).

        Args:
            planes: ``[B, 3, C, H, W]``.
            coords: ``[B, M, 3]`` world points.
            directions: ``[B, M, 3]`` view directions (ignored by the decoder).

        Returns:
            :class:`~pe3d.rendering.decoder.DecoderOutput` ``(features [B, M, F], sigma [B, M, 1])`` with raw sigma.
        """
        return self._field_query(planes)(coords, directions)

    def _field_query(self, planes: Tensor, feature_channels: int | None = None) -> Callable[[Tensor, Tensor | None], DecoderOutput]:
        """``(coords, directions) -> DecoderOutput`` for one triplane, prepared once per render.

        The planes are sampled by :func:`~pe3d.rendering.planes.plane_sampler` (without autograd on a CPU:
        a gather table laid out once here); without autograd points are decoded in chunks of
        :data:`INFERENCE_CHUNK_POINTS`. ``feature_channels``: see :meth:`TriplaneDecoder.forward`.
        """
        sample = plane_sampler(planes, self.config.ray_march.box_warp, self.config.ray_march.frontal_perspective)
        if torch.is_grad_enabled():
            return lambda coords, directions: self.decoder(sample(coords), directions, feature_channels)

        def query(coords: Tensor, directions: Tensor | None) -> DecoderOutput:
            chunk = INFERENCE_CHUNK_POINTS
            parts = [self.decoder(sample(coords[:, i : i + chunk]), None if directions is None else directions[:, i : i + chunk],
                                  feature_channels)
                     for i in range(0, coords.shape[1], chunk)]
            if len(parts) == 1:
                return parts[0]
            return DecoderOutput(torch.cat([p.features for p in parts], dim=1), torch.cat([p.sigma for p in parts], dim=1))

        return query

    def query_background(self, planes: Tensor, origins: Tensor, directions: Tensor) -> Tensor:
        """Background features ``[B, N, F]`` of rays ``origins, directions [B, N, 3]``.

        The triplane is decoded at the far end of each ray (``ray_march.ray_end``), moved
        into the triplane's box when it lies outside, so the back of the box acts as a wall
        whose colour the triplane holds (used when ``background_source == "field"``).
        """
        return self._background_query(self._field_query(planes), planes.shape[-1])(origins, directions)

    def _background_query(self, field: Callable[[Tensor, Tensor | None], DecoderOutput],
                          plane_side: int) -> Callable[[Tensor, Tensor], Tensor]:
        """:meth:`query_background` through a prepared :meth:`_field_query` of planes ``plane_side`` cells across."""
        options = self.config.ray_march
        cell = options.box_warp / plane_side
        inset, band = options.wall_inset * cell, options.wall_face_blend * cell

        def background(origins: Tensor, directions: Tensor) -> Tensor:
            points = background_wall_points(origins, directions, options.box_warp, options.ray_end, inset)
            return _blend_near_faces(field, points, field(points, directions).features, options.box_warp, band)

        return background

    def forward(
        self,
        planes: Tensor,
        label: Tensor,
        resolution: int | None = None,
        ray_indices: Tensor | None = None,
        generator: torch.Generator | None = None,
        images_only: bool = False,
    ) -> RenderOutput:
        """Render triplanes from cameras.

        Args:
            planes: ``[B, 3, C, H, W]`` triplanes.
            label: ``[B, 25]`` camera labels.
            resolution: image side ``R``; ``config.neural_rendering_resolution`` when ``None``.
            ray_indices: optional ``[B, K]`` long indices into the ``R*R`` row-major pixels
                (``index = row * R + col``). Only those rays are rendered and the outputs are
                flattened to ``[B, channels, K]`` to train on random ray subsets (compare with
                ``target.flatten(2).gather(2, idx[:, None].expand(-1, C, -1))``). No super-resolution
                runs then. Without perturbation the values equal the same pixels of a full render.
            generator: random generator for sample jitter / importance draws / density noise
                (used in training mode only, see :meth:`ray_march_options`).
            images_only: the caller reads the images, depth and opacity, not ``features`` (an edit, a
                benchmark): without a super-resolution head only the 3 RGB channels are decoded and
                composited (``features`` is then ``image``; the same values as in a full render, at a
                fraction of the decoder's and compositing's cost: the mini model's edit + render measured
                about 8 % faster on a CPU); with one, every channel is decoded as before, since the head
                reads them all.

        Returns:
            :class:`RenderOutput`.
        """
        if resolution is None:
            resolution = self.config.neural_rendering_resolution
        origins, directions = sample_rays(label, resolution)
        if ray_indices is not None:
            origins, directions = gather_rays(origins, ray_indices), gather_rays(directions, ray_indices)

        field_fn = self._field_query(planes, 3 if images_only and self.superres is None else None)
        background_fn = (self._background_query(field_fn, planes.shape[-1]) if self.config.background_source == "field"
                         else None)

        result = render_rays(field_fn, origins, directions, self.ray_march_options(), generator, background_fn,
                             image_size=resolution if ray_indices is None else None)
        if ray_indices is not None:
            return _subset_output(result)
        output = _image_output(result, resolution)
        if self.superres is not None:
            output.image_sr = self.superres(output.image, output.features)
        return output


def _subset_output(result: RayRenderResult) -> RenderOutput:
    """Ray-subset outputs ``[B, K, C]`` -> :class:`RenderOutput` of ``[B, C, K]`` tensors."""
    features = result.rgb.transpose(1, 2)
    return RenderOutput(
        image=features[:, :3],
        features=features,
        depth=result.depth.transpose(1, 2),
        weights=result.weights_sum.transpose(1, 2),
    )


def _image_output(result: RayRenderResult, resolution: int) -> RenderOutput:
    """Full-image outputs ``[B, R*R, C]`` -> :class:`RenderOutput` of ``[B, C, R, R]`` images."""
    features = _to_image(result.rgb, resolution)
    return RenderOutput(
        image=features[:, :3],
        features=features,
        depth=_to_image(result.depth, resolution),
        weights=_to_image(result.weights_sum, resolution),
    )
