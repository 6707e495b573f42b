"""pe3d: real-time 3D-aware portrait editing from a single image (a 3DPE framework).

Main rooms: :mod:`pe3d.geometry` (cameras, rays), :mod:`pe3d.rendering` (triplane
volume rendering), :mod:`pe3d.models` (encoders, editor core), :mod:`pe3d.world`
(the embedded procedural portrait world), :mod:`pe3d.systems` (Lightning training).
"""

__version__ = "0.1.0"
