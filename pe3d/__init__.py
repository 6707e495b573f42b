"""pe3d: real-time 3D-aware portrait editing from a single image (a 3DPE framework).

Main rooms: :mod:`pe3d.geometry` (cameras, rays), :mod:`pe3d.rendering` (triplane
volume rendering), :mod:`pe3d.models` (encoders, editor core), :mod:`pe3d.world`
(the embedded procedural portrait world), :mod:`pe3d.systems` (Lightning training),
:mod:`pe3d.eg3d` (the EG3D generator and its safe importer), :mod:`pe3d.faces` (real photos in),
:mod:`pe3d.metrics` (the paper's metrics), :mod:`pe3d.bench` (benchmarks), :mod:`pe3d.web` (gradio).

Public entry point: :class:`pe3d.EditPipeline` (inference, imported on first access so that
``import pe3d`` stays light); user-input errors derive from :class:`pe3d.errors.UserInputError`.
"""

__version__ = "0.1.0"

__all__ = ["EditPipeline", "__version__"]


def __getattr__(name: str):
    """``pe3d.EditPipeline`` without importing torch on ``import pe3d``."""
    if name == "EditPipeline":
        from pe3d.pipeline import EditPipeline

        return EditPipeline
    raise AttributeError(f"module 'pe3d' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
