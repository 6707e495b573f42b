"""The 3DPE authors' released weights in pe3d: key map and safe importer (``pe3d import-3dpe``).

* :mod:`pe3d.threedpe.keymap`: their state-dict keys <-> ours;
* :mod:`pe3d.threedpe.importer`: ``3dpe.pt`` -> editor safetensors, Live3D ``encoder_render.pt``
  ("LT") -> prior safetensors, read with ``torch.load(weights_only=True)``.

Their architecture is ``configs/model/threedpe.yaml``: pe3d's modules with named switches.
"""

from pe3d.threedpe.importer import (
    DEFAULT_MODEL,
    ThreeDPEImportError,
    import_threedpe,
    load_threedpe,
    model_config,
    read_checkpoint,
)

__all__ = ["DEFAULT_MODEL", "ThreeDPEImportError", "import_threedpe", "load_threedpe", "model_config", "read_checkpoint"]
