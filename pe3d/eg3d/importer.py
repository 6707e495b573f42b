"""Import EG3D checkpoints into our :class:`~pe3d.eg3d.generator.TriPlaneGenerator`, safely.

Two source formats:

* NVlabs network pickles (``ffhq512-128.pkl``): read with
  :func:`~pe3d.eg3d.safe_pickle.read_network_pickle` (no pickled code runs); ``G_ema``'s
  recorded state gives the tensors (``_parameters`` / ``_buffers`` of every submodule, by
  module path), the constructor kwargs (``_init_args`` / ``_init_kwargs``) and the current
  ``neural_rendering_resolution`` / ``rendering_kwargs``;
* the converted torch files the 3DPE authors load (``ffhqrebalanced512-128.pth``: a dict with
  ``G_init_args``, ``G_init_kwargs``, ``G`` (state dict), ``G_neural_rendering_resolution``,
  ``G_renderinig_kwargs`` [sic], and the same for ``D``), read with ``torch.load(weights_only=True)``.

Sizes NVlabs hard-codes are read from tensor shapes, the config is built, and the tensors
are loaded key-for-key: a missing, unexpected or mis-shaped tensor is an error listing them.
The result is written as safetensors with the config in its header (:func:`import_eg3d`,
``pe3d import-eg3d SRC OUT``) and rebuilt by :func:`load_eg3d`.
"""

from __future__ import annotations

import pickle
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import torch

from pe3d.models.checkpoints import load_strict
from pe3d.config import ConfigError
from pe3d.eg3d.config import EG3DConfig, config_from_eg3d_kwargs
from pe3d.eg3d.generator import TriPlaneGenerator
from pe3d.eg3d.safe_pickle import EasyDict, ModuleRecord, PersistentObject, UnsafePickleError, read_network_pickle
from pe3d.errors import InputFileNotFound, InvalidInput
from pe3d.io import CorruptFileError, file_sha256
from pe3d.models.checkpoints import load_model, save_model

EG3D_KIND = "pe3d-eg3d"
"""``kind`` recorded in the header of imported generators."""
POSITIONAL_ARGS = ("z_dim", "c_dim", "w_dim", "img_resolution", "img_channels", "sr_num_fp16_res",
                   "mapping_kwargs", "rendering_kwargs", "sr_kwargs")
"""Order of NVlabs ``TriPlaneGenerator.__init__``'s positional parameters."""
LEGACY_TORCH_MAGIC = 0x1950A86A20F9469CFC6C
"""First object of a legacy (non-zip) ``torch.save`` file."""


class EG3DImportError(InvalidInput):
    """The checkpoint is readable but is not an EG3D generator we can map onto ours."""


@dataclass
class EG3DCheckpoint:
    """A generator read from a source file: its tensors, kwargs and run-time attributes.

    Attributes:
        tensors: state dict (NVlabs key names).
        init_kwargs: ``TriPlaneGenerator`` constructor kwargs (positional ones named).
        neural_rendering_resolution: stored volume-rendering size, or ``None``.
        rendering_kwargs: the generator's current ``rendering_kwargs`` (may differ from the init ones), or ``None``.
        source_format: ``network-pickle`` or ``converted-torch``.
    """

    tensors: dict[str, torch.Tensor]
    init_kwargs: dict[str, Any]
    neural_rendering_resolution: int | None
    rendering_kwargs: dict[str, Any] | None
    source_format: str


def _named_kwargs(args: Any, kwargs: Any, source: str) -> dict[str, Any]:
    """Positional ``init_args`` named after NVlabs' signature, merged with ``init_kwargs``."""
    args = tuple(args or ())
    if len(args) > len(POSITIONAL_ARGS):
        raise EG3DImportError(f"{source}: {len(args)} positional constructor arguments, expected at most {len(POSITIONAL_ARGS)}")
    named = dict(zip(POSITIONAL_ARGS, args))
    duplicated = sorted(set(named) & set(kwargs or {}))
    if duplicated:
        raise EG3DImportError(f"{source}: constructor arguments given twice: {duplicated}")
    return {**named, **dict(kwargs or {})}


def collect_tensors(obj: Any, prefix: str = "") -> dict[str, torch.Tensor]:
    """State dict of a recorded module tree (persistent objects and by-reference modules), by dotted path."""
    if not isinstance(obj, (PersistentObject, ModuleRecord)):
        raise EG3DImportError(f"{prefix.rstrip('.') or 'root'}: expected a module, found {type(obj).__name__}")
    state = obj.state
    tensors: dict[str, torch.Tensor] = {}
    skip = set(state.get("_non_persistent_buffers_set") or ())
    for group in ("_parameters", "_buffers"):
        for name, value in (state.get(group) or {}).items():
            if value is None or (group == "_buffers" and name in skip):
                continue
            if not isinstance(value, torch.Tensor):
                raise EG3DImportError(f"{prefix}{name}: expected a tensor, found {type(value).__name__}")
            tensors[prefix + name] = value.detach()
    for name, child in (state.get("_modules") or {}).items():
        if child is not None:
            tensors.update(collect_tensors(child, f"{prefix}{name}."))
    return tensors


def checkpoint_from_network_pickle(data: Any, source: str) -> EG3DCheckpoint:
    """The ``G_ema`` generator of an unpickled (restricted) network pickle."""
    if not isinstance(data, dict) or "G_ema" not in data:
        found = sorted(data) if isinstance(data, dict) else type(data).__name__
        raise EG3DImportError(f"{source}: not an EG3D network pickle (expected a dict with 'G_ema', found {found})")
    generator = data["G_ema"]
    if not isinstance(generator, PersistentObject) or generator.class_name != "TriPlaneGenerator":
        name = getattr(generator, "class_name", type(generator).__name__)
        raise EG3DImportError(f"{source}: G_ema is a {name}, not an EG3D TriPlaneGenerator")
    state = generator.state
    return EG3DCheckpoint(
        tensors=collect_tensors(generator),
        init_kwargs=_named_kwargs(state.get("_init_args"), state.get("_init_kwargs"), source),
        neural_rendering_resolution=state.get("neural_rendering_resolution"),
        rendering_kwargs=state.get("rendering_kwargs"),
        source_format="network-pickle",
    )


def checkpoint_from_converted(data: Any, source: str) -> EG3DCheckpoint:
    """The ``G`` entries of a converted torch file (3DPE's ``*.pth``)."""
    required = ("G_init_args", "G_init_kwargs", "G")
    if not isinstance(data, Mapping) or any(key not in data for key in required):
        found = sorted(data) if isinstance(data, Mapping) else type(data).__name__
        raise EG3DImportError(f"{source}: not a converted EG3D file (expected keys {list(required)}, found {found})")
    state = data["G"]
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise EG3DImportError(f"{source}: 'G' must be a state dict of tensors")
    rendering = data.get("G_rendering_kwargs", data.get("G_renderinig_kwargs"))
    return EG3DCheckpoint(
        tensors={str(k): v.detach() for k, v in state.items()},
        init_kwargs=_named_kwargs(data["G_init_args"], data["G_init_kwargs"], source),
        neural_rendering_resolution=data.get("G_neural_rendering_resolution"),
        rendering_kwargs=dict(rendering) if rendering is not None else None,
        source_format="converted-torch",
    )


def _load_converted(path: Path) -> Any:
    """``torch.load(weights_only=True)`` allowing ``dnnlib.util.EasyDict`` (loaded as a plain ``dict``)."""
    try:
        with torch.serialization.safe_globals([(EasyDict, "dnnlib.util.EasyDict")]):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:  # what weights_only raises for a forbidden global
        found = re.search(r"GLOBAL (\S+)", str(error))
        detail = f"it references {found.group(1)}" if found else str(error).splitlines()[0]
        raise UnsafePickleError(f"{path}: refused by torch.load(weights_only=True): {detail} (nothing was executed)") from error
    except Exception as error:  # truncated archives, foreign files
        raise CorruptFileError(f"{path}: not a readable torch file ({type(error).__name__}: {str(error).splitlines()[0]})") from error


def read_eg3d_checkpoint(path: str | Path) -> EG3DCheckpoint:
    """Read a network pickle or a converted torch file, without executing pickled code."""
    path = Path(path)
    if not path.is_file():
        raise InputFileNotFound(f"{path}: file not found")
    if zipfile.is_zipfile(path):
        return checkpoint_from_converted(_load_converted(path), str(path))
    data = read_network_pickle(path)
    if isinstance(data, int) and data == LEGACY_TORCH_MAGIC:
        return checkpoint_from_converted(_load_converted(path), str(path))
    return checkpoint_from_network_pickle(data, str(path))


def _required(tensors: Mapping[str, torch.Tensor], key: str, source: str) -> torch.Tensor:
    if key not in tensors:
        raise EG3DImportError(f"{source}: not an EG3D TriPlaneGenerator state dict (missing {key})")
    return tensors[key]


def hard_coded_sizes(tensors: Mapping[str, torch.Tensor], source: str) -> dict[str, Any]:
    """The sizes NVlabs hard-codes, read from the tensor shapes (triplane, decoder, SR)."""
    matches = (re.fullmatch(r"backbone\.synthesis\.b(\d+)\.torgb\.weight", key) for key in tensors)
    blocks = [int(match.group(1)) for match in matches if match]
    if not blocks:
        raise EG3DImportError(f"{source}: not an EG3D TriPlaneGenerator state dict (no backbone.synthesis blocks)")
    resolution = max(blocks)
    torgb = _required(tensors, f"backbone.synthesis.b{resolution}.torgb.weight", source)
    if torgb.shape[0] % 3:
        raise EG3DImportError(f"{source}: backbone outputs {torgb.shape[0]} channels, not 3 planes")
    return {
        "triplane_resolution": resolution,
        "triplane_channels": torgb.shape[0] // 3,
        "decoder_hidden_dim": _required(tensors, "decoder.net.0.weight", source).shape[0],
        "decoder_output_dim": _required(tensors, "decoder.net.2.weight", source).shape[0] - 1,
        "sr_channels": [_required(tensors, f"superresolution.block{i}.conv1.weight", source).shape[0] for i in (0, 1)],
        "sr_input_resolution": _required(tensors, "superresolution.block0.conv1.noise_const", source).shape[0] // 2,
    }


def config_from_checkpoint(ckpt: EG3DCheckpoint, source: str) -> EG3DConfig:
    """:class:`EG3DConfig` from the kwargs, the run-time attributes and the tensor shapes."""
    sizes: dict[str, Any] = hard_coded_sizes(ckpt.tensors, source)
    if ckpt.neural_rendering_resolution is not None:
        sizes["neural_rendering_resolution"] = int(ckpt.neural_rendering_resolution)
    if ckpt.rendering_kwargs is not None:
        sizes["rendering"] = dict(ckpt.rendering_kwargs)
    return config_from_eg3d_kwargs(ckpt.init_kwargs, sizes, source=source)


def strict_load(model: torch.nn.Module, tensors: Mapping[str, torch.Tensor], source: str) -> None:
    """Load ``tensors`` into ``model`` key-for-key; any missing, unexpected or mis-shaped tensor is an error listing them."""
    load_strict(model, dict(tensors), source, EG3DImportError, "the EG3D generator")


def generator_from_checkpoint(ckpt: EG3DCheckpoint, source: str) -> TriPlaneGenerator:
    """Our generator (eval mode, CPU) holding the tensors of ``ckpt``."""
    try:
        cfg = config_from_checkpoint(ckpt, source)
    except ConfigError as error:
        raise EG3DImportError(str(error)) from error
    model = TriPlaneGenerator(cfg)
    strict_load(model, ckpt.tensors, source)
    return model.eval()


def generator_from_file(path: str | Path) -> TriPlaneGenerator:
    """Read an EG3D ``.pkl`` or converted ``.pth`` and build our generator from it."""
    return generator_from_checkpoint(read_eg3d_checkpoint(path), str(path))


def import_eg3d(src: str | Path, out: str | Path, dtype: str = "float32") -> Path:
    """``pe3d import-eg3d SRC OUT``: convert an EG3D checkpoint to a safetensors file with its config.

    The header records the kind (``pe3d-eg3d``), the resolved :class:`EG3DConfig`, a content
    hash, the source file name, its SHA-256 and format.
    """
    ckpt = read_eg3d_checkpoint(src)
    model = generator_from_checkpoint(ckpt, str(src))
    meta = {"source": Path(src).name, "source_sha256": file_sha256(src, 64), "source_format": ckpt.source_format}
    return save_eg3d(model, out, meta, dtype)


def save_eg3d(model: TriPlaneGenerator, path: str | Path, extra_metadata: dict | None = None, dtype: str = "float32") -> Path:
    """Write a generator as safetensors with its :class:`EG3DConfig` in the header (what :func:`load_eg3d` reads)."""
    return save_model(model, model.cfg, EG3D_KIND, path, extra_metadata, dtype)


def load_eg3d(path: str | Path, map_location: str | torch.device = "cpu") -> TriPlaneGenerator:
    """Rebuild a :class:`TriPlaneGenerator` from a file written by :func:`import_eg3d` (strict keys, eval mode)."""
    try:
        model, _ = load_model(path, EG3D_KIND, EG3DConfig, TriPlaneGenerator)
    except KeyError as error:
        raise EG3DImportError(str(error.args[0])) from error
    return model.to(map_location).eval()


__all__ = [
    "EG3DCheckpoint",
    "EG3DImportError",
    "UnsafePickleError",
    "generator_from_checkpoint",
    "generator_from_file",
    "import_eg3d",
    "load_eg3d",
    "read_eg3d_checkpoint",
    "save_eg3d",
]
