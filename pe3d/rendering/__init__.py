"""Triplane volume rendering (EG3D): plane sampling, decoder MLP, ray marching, optional SR."""

from pe3d.rendering.decoder import DecoderOutput, TriplaneDecoder, TriplaneDecoderConfig
from pe3d.rendering.planes import plane_axes, project_onto_planes, sample_from_planes, sample_mean_from_planes
from pe3d.rendering.renderer import RendererConfig, RenderOutput, TriplaneRenderer, background_wall_points
from pe3d.rendering.superres import SuperResolution, SuperResolutionConfig
from pe3d.rendering.volume import (
    DENSITY_ACTIVATIONS,
    MarchResult,
    RayMarchOptions,
    RayRenderResult,
    activate_density,
    composite,
    compositing_weights,
    march_rays,
    march_union,
    query_field,
    render_rays,
    sample_importance,
    sample_pdf,
    sample_stratified,
    sample_weights,
)

__all__ = [
    "DENSITY_ACTIVATIONS",
    "DecoderOutput",
    "MarchResult",
    "RayMarchOptions",
    "RayRenderResult",
    "RenderOutput",
    "RendererConfig",
    "SuperResolution",
    "SuperResolutionConfig",
    "TriplaneDecoder",
    "TriplaneDecoderConfig",
    "TriplaneRenderer",
    "activate_density",
    "background_wall_points",
    "composite",
    "compositing_weights",
    "march_rays",
    "march_union",
    "plane_axes",
    "project_onto_planes",
    "query_field",
    "render_rays",
    "sample_from_planes",
    "sample_mean_from_planes",
    "sample_importance",
    "sample_pdf",
    "sample_stratified",
    "sample_weights",
]
