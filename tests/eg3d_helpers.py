"""Fabricate EG3D checkpoint files in NVlabs' exact layouts, without NVlabs' code.

``write_network_pickle`` writes ``{'G', 'D', 'G_ema', 'training_set_kwargs', 'augment_pipe'}``
where every network object is pickled the way ``torch_utils.persistence`` does it: a call
to ``torch_utils.persistence._reconstruct_persistent_obj(meta)`` with ``meta = {type,
version, module_src, class_name, state}`` and ``state`` the module's ``__dict__`` (with
``_init_args`` / ``_init_kwargs``, numpy float gains, ``dnnlib.util.EasyDict`` kwargs).
EG3D's undecorated modules (``OSGDecoder``, ``ImportanceRenderer``, ``MipRayMarcher2``,
``RaySampler``) and torch's ``Sequential`` / ``Softplus`` are pickled by reference, as in
the official files. The module names exist only in ``sys.modules`` while pickling.

These pickles mirror pe3d's own module tree (a round trip); ``tests/nvlabs_pickle.py`` writes one
from NVlabs' rules without pe3d, and shares its pickling scaffolding with this file.

``write_converted`` writes the 3DPE authors' ``.pth`` layout with ``torch.save``.
``malicious_reduce_pickle`` / ``malicious_persistent_pickle`` build payloads that create a
marker file when a normal unpickler (or NVlabs' loader) runs them.
"""

from __future__ import annotations

import pickle
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from nvlabs_pickle import (
    IMPORTANCE_RENDERER, OSGDECODER, RAY_MARCHER, RAY_SAMPLER, EasyDict, PersistentStandIn, nvlabs_module_names,
)
from pe3d.eg3d import TriPlaneGenerator
from pe3d.eg3d.config import config_to_eg3d_kwargs
from pe3d.eg3d.renderer import OSGDecoder
from pe3d.eg3d.stylegan2 import (
    FullyConnectedLayer, MappingNetwork, StyleGAN2Backbone, SynthesisBlock, SynthesisLayer, SynthesisNetwork, ToRGBLayer,
)
from pe3d.eg3d.superres import SuperresolutionHybrid8XDC

PERSISTENT = {
    TriPlaneGenerator: ("training.triplane", "TriPlaneGenerator"),
    StyleGAN2Backbone: ("training.networks_stylegan2", "Generator"),
    MappingNetwork: ("training.networks_stylegan2", "MappingNetwork"),
    SynthesisNetwork: ("training.networks_stylegan2", "SynthesisNetwork"),
    SynthesisBlock: ("training.networks_stylegan2", "SynthesisBlock"),
    SynthesisLayer: ("training.networks_stylegan2", "SynthesisLayer"),
    ToRGBLayer: ("training.networks_stylegan2", "ToRGBLayer"),
    FullyConnectedLayer: ("training.networks_stylegan2", "FullyConnectedLayer"),
    SuperresolutionHybrid8XDC: ("training.superresolution", "SuperresolutionHybrid8XDC"),
}
"""Our classes -> the NVlabs persistent class they stand for."""
OWN_ATTRIBUTES = {"cfg"}
"""Attributes of our modules NVlabs' have no counterpart of (not pickled)."""


def _module_state(module: nn.Module, children: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """``module.__dict__`` as ``nn.Module.__getstate__`` gives it, with stand-in children and numpy gains."""
    state = {k: v for k, v in module.__getstate__().items() if k not in OWN_ATTRIBUTES}
    state["_modules"] = OrderedDict(children)
    state["_parameters"] = OrderedDict(state["_parameters"])
    state["_buffers"] = OrderedDict(state["_buffers"])
    for key in ("weight_gain", "bias_gain"):
        if key in state:
            state[key] = np.float64(state[key])
    state.update(extra)
    return state


def _with_init(state: dict[str, Any], args: tuple = (), kwargs: dict | None = None) -> dict[str, Any]:
    return {**state, "_init_args": args, "_init_kwargs": EasyDict(kwargs or {})}


def _bare(cls: type, state: dict[str, Any]) -> Any:
    obj = object.__new__(cls)
    obj.__dict__.update(state)
    return obj


def stand_in(module: nn.Module, root_kwargs: dict | None = None) -> Any:
    """The object NVlabs' pickle would hold for ``module`` (recursively)."""
    children = {name: stand_in(child) for name, child in module.named_children()}
    if isinstance(module, TriPlaneGenerator):
        renderer_state = _module_state(nn.Module(), {"ray_marcher": _bare(RAY_MARCHER, _module_state(nn.Module(), {}, {}))}, {})
        renderer_state["plane_axes"] = torch.eye(3).repeat(3, 1, 1)  # a plain attribute, not a buffer
        children = {
            "renderer": _bare(IMPORTANCE_RENDERER, renderer_state),
            "ray_sampler": _bare(RAY_SAMPLER, _module_state(nn.Module(), {}, {"ray_origins_h": None})),
            **children,
        }
        rendering_kwargs = dict(root_kwargs["rendering_kwargs"])
        extra = {"rendering_kwargs": rendering_kwargs, "neural_rendering_resolution": module.neural_rendering_resolution,
                 "_last_planes": None}
        state = _with_init(_module_state(module, children, extra), (), root_kwargs)
        return PersistentStandIn("training.triplane", "TriPlaneGenerator", state)
    if isinstance(module, OSGDecoder):
        return _bare(OSGDECODER, _module_state(module, children, {"hidden_dim": module.net[0].out_features}))
    if isinstance(module, (nn.Sequential, nn.Softplus)):
        return _bare(type(module), _module_state(module, children, {}))
    source_module, class_name = PERSISTENT[type(module)]
    state = _with_init(_module_state(module, children, {}))
    return PersistentStandIn(source_module, class_name, state)


def write_network_pickle(generator: TriPlaneGenerator, path: Path, include_discriminator: bool = True) -> Path:
    """``generator`` as an NVlabs network pickle (``G`` and ``G_ema`` both hold it; ``D`` is a tiny persistent stand-in)."""
    kwargs = {**config_to_eg3d_kwargs(generator.cfg)}
    kwargs["mapping_kwargs"] = EasyDict(kwargs["mapping_kwargs"])
    kwargs["sr_kwargs"] = EasyDict(kwargs["sr_kwargs"])
    g = stand_in(generator, kwargs)
    disc = None
    if include_discriminator:
        layer = FullyConnectedLayer(4, 2)
        disc = PersistentStandIn("training.networks_stylegan2", "DualDiscriminator",
                                 _with_init(_module_state(nn.Module(), {"fc": stand_in(layer)}, {}), (), {"c_dim": 25}))
        disc.meta["module_src"] = "# stands in for the source of training/dual_discriminator.py\n"
    data = {
        "training_set_kwargs": EasyDict(class_name="training.dataset.ImageFolderDataset", path="FFHQ_512.zip", use_labels=True,
                                        resolution=generator.img_resolution),
        "G": g, "D": disc, "G_ema": g, "augment_pipe": None,
    }
    with nvlabs_module_names(), open(path, "wb") as handle:
        pickle.dump(data, handle, protocol=4)
    return path


def write_converted(generator: TriPlaneGenerator, path: Path, state: dict | None = None) -> Path:
    """The 3DPE authors' converted ``.pth`` layout (``G_init_args``, ``G_init_kwargs``, ``G``, ...);
    ``state`` replaces the generator's state dict (to fabricate broken files)."""
    kwargs = config_to_eg3d_kwargs(generator.cfg)
    with nvlabs_module_names():
        data = {
            "G_init_args": (), "G_init_kwargs": EasyDict({**kwargs, "mapping_kwargs": EasyDict(kwargs["mapping_kwargs"])}),
            "G": generator.state_dict() if state is None else state, "G_neural_rendering_resolution": generator.neural_rendering_resolution,
            "G_renderinig_kwargs": kwargs["rendering_kwargs"], "D_init_args": (), "D_init_kwargs": {"c_dim": 25}, "D": {},
        }
        torch.save(data, path)
    return path


class _Payload:
    def __init__(self, func, args) -> None:
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def malicious_reduce_pickle(path: Path, marker: Path, kind: str) -> Path:
    """A pickle whose ``G_ema`` is a payload creating ``marker``: ``exec``, ``os.system`` or ``subprocess``."""
    import os
    import subprocess

    payloads = {
        "exec": _Payload(exec, (f"open({str(marker)!r}, 'w').write('pwned')",)),
        "os.system": _Payload(os.system, (f"touch {marker}",)),
        "subprocess": _Payload(subprocess.call, (["touch", str(marker)],)),
    }
    with open(path, "wb") as handle:
        pickle.dump({"G_ema": payloads[kind]}, handle, protocol=4)
    return path


def malicious_converted(path: Path, marker: Path) -> Path:
    """A converted-layout torch file (zip) whose ``G_init_kwargs`` hides a ``subprocess`` payload creating ``marker``."""
    import subprocess

    torch.save({"G_init_args": (), "G_init_kwargs": {"z_dim": _Payload(subprocess.call, (["touch", str(marker)],))}, "G": {}}, path)
    return path


def malicious_persistent_pickle(path: Path, marker: Path, class_name: str = "TriPlaneGenerator") -> Path:
    """An NVlabs-layout pickle whose persistent ``G_ema`` carries module source that creates ``marker`` when executed."""
    src = f"open({str(marker)!r}, 'w').write('pwned')\nclass {class_name}:\n    pass\n"
    state = {"_parameters": OrderedDict(), "_buffers": OrderedDict(), "_modules": OrderedDict(), "_init_args": (), "_init_kwargs": EasyDict()}
    obj = PersistentStandIn("training.triplane", class_name, state, module_src=src)
    with nvlabs_module_names(), open(path, "wb") as handle:
        pickle.dump({"G": obj, "D": None, "G_ema": obj, "training_set_kwargs": None, "augment_pipe": None}, handle, protocol=4)
    return path


def run_module_src_like_nvlabs(path: Path) -> None:
    """What NVlabs' ``persistence._src_to_module`` does with a persistent object's source: ``exec`` it.

    Used only as the positive control that the malicious persistent pickle really is malicious.
    """
    from pe3d.eg3d.safe_pickle import RestrictedUnpickler

    class Capture(RestrictedUnpickler):
        def find_class(self, module, name):
            if (module, name) == ("torch_utils.persistence", "_reconstruct_persistent_obj"):
                return lambda meta: exec(meta["module_src"], {})  # noqa: S102 - the behaviour being guarded against
            return super().find_class(module, name)

    with open(path, "rb") as handle:
        Capture(handle).load()
