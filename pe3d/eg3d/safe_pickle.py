"""Read NVlabs network pickles (``ffhq512-128.pkl``) without executing anything they contain.

An EG3D ``.pkl`` is a plain :mod:`pickle` of ``{'G', 'D', 'G_ema', 'training_set_kwargs',
'augment_pipe'}``. Its network classes are *persistent*: each object pickles as a call to
``torch_utils.persistence._reconstruct_persistent_obj(meta)`` whose ``meta`` holds the
Python source of the class's module (``module_src``), the class name and the object's
``__dict__`` (``_parameters``, ``_buffers``, ``_modules``, ``_init_args``, ``_init_kwargs``,
...). NVlabs' loader ``exec``s that source, so loading such a file runs whatever code it
carries. A few helper modules (EG3D's ``OSGDecoder``, ``ImportanceRenderer``, torch's
``Sequential``) are pickled by reference instead.

:class:`RestrictedUnpickler` resolves only an explicit allow-list of globals, each to an
inert replacement: the persistence hook becomes :func:`capture_persistent_object` (it
records ``class_name`` and ``state``, keeps only a hash of ``module_src`` and never runs
it), classes pickled by reference become :class:`ModuleRecord` stand-ins, tensors are
rebuilt by torch's own rebuild functions and storages by ``torch.load(weights_only=True)``,
``dnnlib.util.EasyDict`` becomes a ``dict``. Any other global -- ``os.system``,
``builtins.exec``, ``subprocess.Popen``, an unknown class -- raises
:class:`UnsafePickleError` naming it before anything is called.
"""

from __future__ import annotations

import hashlib
import io
import pickle
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from pe3d.errors import InputFileNotFound, InvalidInput
from pe3d.io import CorruptFileError


class UnsafePickleError(InvalidInput):
    """A pickle asks for a global outside the allow-list (or is shaped unlike an EG3D checkpoint)."""


PERSISTENT_CLASS_NAMES = frozenset({
    "TriPlaneGenerator", "Generator", "MappingNetwork", "SynthesisNetwork", "SynthesisBlock", "SynthesisBlockNoUp",
    "SynthesisLayer", "SynthesisInput", "ToRGBLayer", "FullyConnectedLayer", "Conv2dLayer",
    "SuperresolutionHybrid8XDC", "SuperresolutionHybrid8X", "SuperresolutionHybrid4X", "SuperresolutionHybrid2X",
    "SuperresolutionHybridDeepfp32", "DualDiscriminator", "SingleDiscriminator", "DummyDualDiscriminator",
    "Discriminator", "DiscriminatorBlock", "DiscriminatorEpilogue", "MinibatchStdLayer", "AugmentPipe",
})
"""Every class NVlabs/eg3d decorates with ``@persistent_class`` (generator, discriminator, augmentation)."""
PERSISTENCE_VERSION = 6
"""``torch_utils.persistence._version`` of EG3D (and StyleGAN2-ADA / StyleGAN3)."""
MODULES_BY_REFERENCE = frozenset({
    ("training.triplane", "OSGDecoder"),
    ("training.volumetric_rendering.renderer", "ImportanceRenderer"),
    ("training.volumetric_rendering.ray_marcher", "MipRayMarcher2"),
    ("training.volumetric_rendering.ray_sampler", "RaySampler"),
    ("torch.nn.modules.container", "Sequential"),
    ("torch.nn.modules.activation", "Softplus"),
})
"""``nn.Module`` classes EG3D pickles by reference (not decorated): loaded as :class:`ModuleRecord`."""


@dataclass
class PersistentObject:
    """An EG3D persistent object as recorded by :func:`capture_persistent_object` (never constructed).

    Attributes:
        class_name: e.g. ``TriPlaneGenerator``.
        state: the object's ``__dict__``: ``_parameters``, ``_buffers``, ``_modules``, ``_init_kwargs``, ...
        module_src_sha256: hash of the module source that NVlabs' loader would have executed.
    """

    class_name: str
    state: dict
    module_src_sha256: str = ""


class ModuleRecord:
    """Stand-in for an ``nn.Module`` pickled by reference: keeps its qualified name and ``__dict__`` state."""

    qualified_name = "?"

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, dict):
            raise UnsafePickleError(f"{self.qualified_name}: expected a dict state, got {type(state).__name__}")
        self.state = state

    @property
    def class_name(self) -> str:
        """The class name without its module."""
        return self.qualified_name.rsplit(".", 1)[-1]


_RECORD_TYPES: dict[tuple[str, str], type] = {
    key: type(key[1], (ModuleRecord,), {"qualified_name": f"{key[0]}.{key[1]}"}) for key in sorted(MODULES_BY_REFERENCE)
}


class EasyDict:
    """Stands in for ``dnnlib.util.EasyDict`` (a ``dict`` with attribute access): constructing it gives a plain ``dict``.

    (A plain ``dict`` also satisfies ``torch.load(weights_only=True)``, which fills only real dicts.)
    """

    def __new__(cls, *args: Any, **kwargs: Any) -> dict:  # type: ignore[misc]
        return dict(*args, **kwargs)


META_KEYS = {"type", "version", "module_src", "class_name", "state"}


def capture_persistent_object(meta: Any) -> PersistentObject:
    """Replacement of ``torch_utils.persistence._reconstruct_persistent_obj``: validate and record ``meta``.

    The module source is hashed, never executed; only known EG3D class names are accepted.
    """
    if not isinstance(meta, dict) or set(meta) != META_KEYS:
        keys = sorted(meta) if isinstance(meta, dict) else type(meta).__name__
        raise UnsafePickleError(f"persistent object: expected meta keys {sorted(META_KEYS)}, got {keys}")
    if meta["type"] != "class" or meta["version"] != PERSISTENCE_VERSION:
        raise UnsafePickleError(f"persistent object: unsupported type/version {meta['type']!r}/{meta['version']!r}")
    name = meta["class_name"]
    if name not in PERSISTENT_CLASS_NAMES:
        raise UnsafePickleError(f"persistent class {name!r} is not an EG3D class; refusing it (its source was not run)")
    if not isinstance(meta["state"], dict) or not isinstance(meta["module_src"], str):
        raise UnsafePickleError(f"persistent object {name}: malformed state or module source")
    digest = hashlib.sha256(meta["module_src"].encode("utf-8", "replace")).hexdigest()
    return PersistentObject(class_name=name, state=dict(meta["state"]), module_src_sha256=digest)


def _load_storage_bytes(data: bytes) -> Any:
    """``torch.storage._load_from_bytes``: a legacy ``torch.save`` of one storage, read with ``weights_only``."""
    if not isinstance(data, (bytes, bytearray)):
        raise UnsafePickleError("storage payload must be bytes")
    return torch.load(io.BytesIO(data), weights_only=True, map_location="cpu")


def _rebuild_tensor(storage: Any, offset: int, size: tuple, stride: tuple, requires_grad: bool, hooks: Any, metadata: Any = None) -> torch.Tensor:
    """``torch._utils._rebuild_tensor_v2`` for plain tensors (no backward hooks)."""
    if hooks:
        raise UnsafePickleError("tensor with backward hooks in the pickle")
    if not isinstance(storage, (torch.TypedStorage, torch.UntypedStorage)):
        raise UnsafePickleError(f"tensor storage of unexpected type {type(storage).__name__}")
    return torch._utils._rebuild_tensor_v2(storage, offset, size, stride, requires_grad, OrderedDict(), metadata)


def _rebuild_parameter(data: Any, requires_grad: bool, hooks: Any) -> torch.Tensor:
    """``torch._utils._rebuild_parameter`` -> the plain tensor (parameters are re-made by our modules)."""
    if hooks or not isinstance(data, torch.Tensor):
        raise UnsafePickleError("parameter with backward hooks or without tensor data")
    return data.detach()


def _numpy_dtype(name: Any, align: Any = False, copy: Any = True) -> np.dtype:
    """``numpy.dtype`` restricted to numeric and boolean types."""
    dtype = np.dtype(str(name))
    if dtype.kind not in "biufc":
        raise UnsafePickleError(f"numpy dtype {dtype} is not numeric")
    return dtype


def _numpy_scalar(dtype: Any, data: Any = b"") -> Any:
    """``numpy.core.multiarray.scalar`` for numeric dtypes only (e.g. the float64 gains EG3D stores)."""
    if not isinstance(dtype, np.dtype) or dtype.kind not in "biufc" or not isinstance(data, bytes):
        raise UnsafePickleError("numpy scalar of a non-numeric type")
    return np.frombuffer(data, dtype=dtype, count=1)[0]


ALLOWED_GLOBALS: dict[tuple[str, str], Callable[..., Any] | type] = {
    ("torch_utils.persistence", "_reconstruct_persistent_obj"): capture_persistent_object,
    ("torch.storage", "_load_from_bytes"): _load_storage_bytes,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("collections", "OrderedDict"): OrderedDict,
    ("dnnlib.util", "EasyDict"): EasyDict,
    ("numpy", "dtype"): _numpy_dtype,
    ("numpy.core.multiarray", "scalar"): _numpy_scalar,
    ("numpy._core.multiarray", "scalar"): _numpy_scalar,
    **_RECORD_TYPES,
}
"""Every global an EG3D network pickle may reference, mapped to its safe replacement."""


class RestrictedUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` that resolves globals only through :data:`ALLOWED_GLOBALS`."""

    def find_class(self, module: str, name: str) -> Any:
        """The safe replacement of ``module.name``, or :class:`UnsafePickleError` naming it."""
        replacement = ALLOWED_GLOBALS.get((module, name))
        if replacement is None:
            raise UnsafePickleError(
                f"refusing {module}.{name}: not something an EG3D checkpoint contains (nothing was executed)"
            )
        return replacement

    def persistent_load(self, pid: Any) -> Any:
        """Network pickles use no persistent ids; a file that does is not one."""
        raise UnsafePickleError("unexpected persistent id in a network pickle")


def read_network_pickle(path: str | Path) -> Any:
    """Unpickle ``path`` with :class:`RestrictedUnpickler`.

    Raises:
        FileNotFoundError, CorruptFileError: missing, empty or truncated file.
        UnsafePickleError: a forbidden global, naming it.
    """
    path = Path(path)
    if not path.is_file():
        raise InputFileNotFound(f"{path}: file not found")
    if path.stat().st_size == 0:
        raise CorruptFileError(f"{path}: empty file")
    with open(path, "rb") as handle:
        try:
            return RestrictedUnpickler(handle).load()
        except UnsafePickleError as error:
            raise UnsafePickleError(f"{path}: {error}") from None
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, RuntimeError) as error:
            raise CorruptFileError(f"{path}: not a readable network pickle ({type(error).__name__}: {error})") from error
