"""The embedded procedural portrait world.

Synthetic heads with ground truth, standing in for downloaded data (FFHQ, EG3D samples) and
for the 2D diffusion editor:

* :mod:`~pe3d.world.identity`: :class:`Identity` parameters and :func:`sample_identity`
  (deterministic per ``(seed, index)``).
* :mod:`~pe3d.world.field`: the analytic signed-distance field with :class:`Part` labels.
* :mod:`~pe3d.world.render`: sphere-traced multi-view RGB, ray depth and part masks
  (:func:`render_identity`, :func:`render_identities`, :class:`WorldRender`), using the
  same EG3D cameras and rays as the neural renderer.
* :mod:`~pe3d.world.split`: disjoint train / held-out identity ranges (:class:`WorldSplit`).
* :mod:`~pe3d.world.filters`: deterministic 2D style filters (:data:`STYLE_FILTERS`,
  :func:`apply_style_filter`), the stand-in for InstructPix2Pix.
* :mod:`~pe3d.world.preview`: PNG sheets and a turntable GIF for looking at all of it.
"""

from pe3d.world.field import PART_NAMES, HeadField, Part, build_field
from pe3d.world.filters import STYLE_FILTERS, StyleFilter, apply_style_filter, style_filter_names
from pe3d.world.identity import BEARD_STYLES, HAIR_STYLES, Identity, sample_identity
from pe3d.world.preview import write_filter_preview, write_world_preview
from pe3d.world.render import WorldRender, get_field, render_identities, render_identity
from pe3d.world.split import HELDOUT_START, WorldSplit

__all__ = [
    "BEARD_STYLES",
    "HAIR_STYLES",
    "HELDOUT_START",
    "PART_NAMES",
    "STYLE_FILTERS",
    "HeadField",
    "Identity",
    "Part",
    "StyleFilter",
    "WorldRender",
    "WorldSplit",
    "apply_style_filter",
    "build_field",
    "get_field",
    "render_identities",
    "render_identity",
    "sample_identity",
    "style_filter_names",
    "write_filter_preview",
    "write_world_preview",
]
