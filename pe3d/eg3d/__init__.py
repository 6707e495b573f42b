"""EG3D in plain PyTorch: the generator, its configs, and a safe importer of NVlabs checkpoints.

* :class:`TriPlaneGenerator` (:mod:`pe3d.eg3d.generator`) with NVlabs' state-dict keys;
* :class:`EG3DConfig` and presets ``configs/eg3d/{ffhq512,tiny}.yaml`` (:mod:`pe3d.eg3d.config`);
* :func:`import_eg3d` / :func:`load_eg3d` (:mod:`pe3d.eg3d.importer`): ``.pkl`` / converted
  ``.pth`` -> safetensors, without executing pickled code.
"""

from pe3d.eg3d.config import EG3DConfig, load_eg3d_config
from pe3d.eg3d.generator import EG3DOutput, TriPlaneGenerator, to_unit_range
from pe3d.eg3d.importer import EG3DImportError, import_eg3d, load_eg3d, save_eg3d
from pe3d.eg3d.safe_pickle import UnsafePickleError

__all__ = [
    "EG3DConfig",
    "EG3DImportError",
    "EG3DOutput",
    "TriPlaneGenerator",
    "UnsafePickleError",
    "import_eg3d",
    "load_eg3d",
    "load_eg3d_config",
    "save_eg3d",
    "to_unit_range",
]
