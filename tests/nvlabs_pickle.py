"""An EG3D network pickle written from NVlabs' source rules alone -- this file imports nothing of pe3d.

The module tree, attribute names, parameter/buffer names and shapes follow NVlabs' code
(``training/triplane.py``, ``training/networks_stylegan2.py``, ``training/superresolution.py``,
``training/volumetric_rendering/*``) and the ``G_kwargs`` their ``train.py`` records, for a
tiny model: every size NVlabs derives (``channels_dict``, ``num_ws``, noise buffers, filters) is
derived here the way their code derives it, so a pe3d importer or generator that drifts from
NVlabs' layout fails against this file instead of agreeing with itself.

The pickle stream is what ``torch_utils.persistence`` produces: every ``@persistent_class``
instance is ``_reconstruct_persistent_obj(meta)`` with ``meta = {type, version, module_src,
class_name, state}``; undecorated modules (``OSGDecoder``, ``ImportanceRenderer``,
``MipRayMarcher2``, ``RaySampler``, ``torch.nn.Sequential``, ``torch.nn.Softplus``) are pickled
by class reference with their ``__dict__``; kwargs are ``dnnlib.util.EasyDict``.
"""

from __future__ import annotations

import contextlib
import pickle
import sys
import types
from collections import OrderedDict
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

__all__ = ["EasyDict", "PersistentStandIn", "TINY_G_KWARGS", "nvlabs_module_names", "nvlabs_tiny_generator", "write_nvlabs_pickle"]


def _reconstruct_persistent_obj(meta):  # pragma: no cover - never called: only its name is pickled
    raise RuntimeError("stand-in")


class EasyDict(dict):
    """Pickled under the name ``dnnlib.util.EasyDict``."""


class _ByReference:
    """Base of the stand-ins for NVlabs' undecorated modules (pickled by class reference + state)."""


def _by_reference_class(module: str, name: str) -> type:
    return type(name, (_ByReference,), {"__module__": module, "__qualname__": name})


OSGDECODER = _by_reference_class("training.triplane", "OSGDecoder")
IMPORTANCE_RENDERER = _by_reference_class("training.volumetric_rendering.renderer", "ImportanceRenderer")
RAY_MARCHER = _by_reference_class("training.volumetric_rendering.ray_marcher", "MipRayMarcher2")
RAY_SAMPLER = _by_reference_class("training.volumetric_rendering.ray_sampler", "RaySampler")
MODULE_SRC = {
    "training.triplane": "# stands in for the source of training/triplane.py\n",
    "training.networks_stylegan2": "# stands in for the source of training/networks_stylegan2.py\n",
    "training.superresolution": "# stands in for the source of training/superresolution.py\n",
}


@contextlib.contextmanager
def nvlabs_module_names() -> Iterator[None]:
    """Make ``torch_utils.persistence``, ``dnnlib.util`` and EG3D's ``training.*`` modules importable by name while pickling."""
    _reconstruct_persistent_obj.__module__ = "torch_utils.persistence"
    EasyDict.__module__, EasyDict.__qualname__ = "dnnlib.util", "EasyDict"
    contents = {
        "torch_utils": {}, "torch_utils.persistence": {"_reconstruct_persistent_obj": _reconstruct_persistent_obj},
        "dnnlib": {}, "dnnlib.util": {"EasyDict": EasyDict},
        "training": {}, "training.triplane": {"OSGDecoder": OSGDECODER}, "training.volumetric_rendering": {},
        "training.volumetric_rendering.renderer": {"ImportanceRenderer": IMPORTANCE_RENDERER},
        "training.volumetric_rendering.ray_marcher": {"MipRayMarcher2": RAY_MARCHER},
        "training.volumetric_rendering.ray_sampler": {"RaySampler": RAY_SAMPLER},
    }
    saved = {name: sys.modules.get(name) for name in contents}
    for name, attrs in contents.items():
        module = types.ModuleType(name)
        module.__dict__.update(attrs)
        sys.modules[name] = module
    try:
        yield
    finally:
        for name, previous in saved.items():
            if previous is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = previous


class PersistentStandIn:
    """Pickles as ``_reconstruct_persistent_obj(meta)``, the way NVlabs' persistent classes do."""

    def __init__(self, module: str, class_name: str, state: dict, module_src: str | None = None) -> None:
        self.meta = dict(type="class", version=6, module_src=module_src or MODULE_SRC[module], class_name=class_name, state=state)

    def __reduce__(self):
        return _reconstruct_persistent_obj, (self.meta,)


# --- NVlabs' module tree, as plain records ------------------------------------------------------------


class Node:
    """One module: its class, parameters, buffers, children and plain attributes (``__dict__`` entries)."""

    def __init__(self, kind: str, params=(), buffers=(), children=(), attrs=None, init=None) -> None:
        self.kind = kind  # "persistent:<module>.<Class>", "ref:<stand-in>" or "torch:<Class>"
        self.params, self.buffers = OrderedDict(params), OrderedDict(buffers)
        self.children, self.attrs, self.init = OrderedDict(children), dict(attrs or {}), init

    def tensors(self, prefix: str = "") -> dict[str, torch.Tensor]:
        """The state dict NVlabs' module would have (parameters and persistent buffers, by dotted path)."""
        out = {prefix + k: v for k, v in [*self.params.items(), *self.buffers.items()]}
        for name, child in self.children.items():
            out.update(child.tensors(f"{prefix}{name}."))
        return out


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


class _Random:
    def __init__(self, seed: int) -> None:
        self.g = _generator(seed)

    def __call__(self, *shape: int, scale: float = 1.0) -> torch.Tensor:
        return torch.randn(list(shape), generator=self.g) * scale


def _setup_filter(f=(1, 3, 3, 1)) -> torch.Tensor:
    """``upfirdn2d.setup_filter([1, 3, 3, 1])``: the separable 4x4 filter, normalised to sum 1."""
    f = torch.tensor(f, dtype=torch.float32)
    f = f.ger(f)
    return f / f.sum()


def fully_connected(rand: _Random, in_features: int, out_features: int, bias_init: float = 0.0, lr_multiplier: float = 1.0,
                    activation: str = "linear") -> Node:
    """``networks_stylegan2.FullyConnectedLayer``."""
    return Node(
        "persistent:training.networks_stylegan2.FullyConnectedLayer",
        params=[("weight", torch.nn.Parameter(rand(out_features, in_features) / lr_multiplier)),
                ("bias", torch.nn.Parameter(torch.full([out_features], np.float32(bias_init)) + rand(out_features, scale=0.01)))],
        attrs=dict(in_features=in_features, out_features=out_features, activation=activation,
                   weight_gain=np.float64(lr_multiplier / np.sqrt(in_features)), bias_gain=np.float64(lr_multiplier)),
        init=((in_features, out_features), dict(bias_init=bias_init, lr_multiplier=lr_multiplier, activation=activation)),
    )


def synthesis_layer(rand: _Random, in_channels: int, out_channels: int, w_dim: int, resolution: int, up: int = 1) -> Node:
    """``networks_stylegan2.SynthesisLayer`` (kernel 3, noise on)."""
    return Node(
        "persistent:training.networks_stylegan2.SynthesisLayer",
        params=[("weight", torch.nn.Parameter(rand(out_channels, in_channels, 3, 3))),
                ("noise_strength", torch.nn.Parameter(rand(scale=0.1))),
                ("bias", torch.nn.Parameter(rand(out_channels, scale=0.1)))],
        buffers=[("resample_filter", _setup_filter()), ("noise_const", rand(resolution, resolution))],
        children=[("affine", fully_connected(rand, w_dim, in_channels, bias_init=1))],
        attrs=dict(in_channels=in_channels, out_channels=out_channels, w_dim=w_dim, resolution=resolution, up=up,
                   use_noise=True, activation="lrelu", conv_clamp=None, padding=1, act_gain=np.float64(np.sqrt(2))),
        init=((in_channels, out_channels), dict(w_dim=w_dim, resolution=resolution, up=up)),
    )


def to_rgb(rand: _Random, in_channels: int, out_channels: int, w_dim: int) -> Node:
    """``networks_stylegan2.ToRGBLayer`` (kernel 1)."""
    return Node(
        "persistent:training.networks_stylegan2.ToRGBLayer",
        params=[("weight", torch.nn.Parameter(rand(out_channels, in_channels, 1, 1))),
                ("bias", torch.nn.Parameter(rand(out_channels, scale=0.1)))],
        children=[("affine", fully_connected(rand, w_dim, in_channels, bias_init=1))],
        attrs=dict(in_channels=in_channels, out_channels=out_channels, w_dim=w_dim, conv_clamp=None,
                   weight_gain=np.float64(1 / np.sqrt(in_channels))),
        init=((in_channels, out_channels, w_dim), {}),
    )


def synthesis_block(rand: _Random, in_channels: int, out_channels: int, w_dim: int, resolution: int, img_channels: int,
                    is_last: bool) -> Node:
    """``networks_stylegan2.SynthesisBlock``, architecture ``skip``: ``const`` (first block) or ``conv0``
    (up 2), ``conv1``, ``torgb``, and the block's own ``resample_filter``."""
    params, children = [], []
    if in_channels == 0:
        params.append(("const", torch.nn.Parameter(rand(out_channels, resolution, resolution))))
    else:
        children.append(("conv0", synthesis_layer(rand, in_channels, out_channels, w_dim, resolution, up=2)))
    children.append(("conv1", synthesis_layer(rand, out_channels, out_channels, w_dim, resolution)))
    children.append(("torgb", to_rgb(rand, out_channels, img_channels, w_dim)))
    return Node(
        "persistent:training.networks_stylegan2.SynthesisBlock", params=params, buffers=[("resample_filter", _setup_filter())],
        children=children,
        attrs=dict(in_channels=in_channels, w_dim=w_dim, resolution=resolution, img_channels=img_channels, is_last=is_last,
                   architecture="skip", use_fp16=False, channels_last=False, fused_modconv_default="inference_only",
                   num_conv=1 if in_channels == 0 else 2, num_torgb=1),
        init=((in_channels, out_channels), dict(w_dim=w_dim, resolution=resolution, img_channels=img_channels, is_last=is_last)),
    )


def stylegan2_backbone(rand: _Random, z_dim: int, c_dim: int, w_dim: int, img_resolution: int, img_channels: int,
                       channel_base: int, channel_max: int, mapping_layers: int) -> Node:
    """``networks_stylegan2.Generator`` (EG3D's ``StyleGAN2Backbone``): ``synthesis`` then ``mapping``."""
    log2 = int(np.log2(img_resolution))
    resolutions = [2 ** i for i in range(2, log2 + 1)]
    channels = {res: min(channel_base // res, channel_max) for res in resolutions}
    blocks, num_ws = [], 0
    for res in resolutions:
        in_channels = channels[res // 2] if res > 4 else 0
        block = synthesis_block(rand, in_channels, channels[res], w_dim, res, img_channels, is_last=res == img_resolution)
        num_ws += block.attrs["num_conv"] + (block.attrs["num_torgb"] if res == img_resolution else 0)
        blocks.append((f"b{res}", block))
    synthesis = Node("persistent:training.networks_stylegan2.SynthesisNetwork", children=blocks,
                     attrs=dict(w_dim=w_dim, img_resolution=img_resolution, img_resolution_log2=log2, img_channels=img_channels,
                                num_fp16_res=0, block_resolutions=resolutions, num_ws=num_ws),
                     init=((), dict(w_dim=w_dim, img_resolution=img_resolution, img_channels=img_channels,
                                    channel_base=channel_base, channel_max=channel_max)))
    embed_features = layer_features = w_dim
    features = [z_dim + embed_features] + [layer_features] * (mapping_layers - 1) + [w_dim]
    mapping_children = [("embed", fully_connected(rand, c_dim, embed_features))]
    mapping_children += [(f"fc{i}", fully_connected(rand, features[i], features[i + 1], lr_multiplier=0.01, activation="lrelu"))
                         for i in range(mapping_layers)]
    mapping = Node("persistent:training.networks_stylegan2.MappingNetwork", buffers=[("w_avg", rand(w_dim, scale=0.1))],
                   children=mapping_children,
                   attrs=dict(z_dim=z_dim, c_dim=c_dim, w_dim=w_dim, num_ws=num_ws, num_layers=mapping_layers, w_avg_beta=0.998),
                   init=((), dict(z_dim=z_dim, c_dim=c_dim, w_dim=w_dim, num_ws=num_ws, num_layers=mapping_layers)))
    return Node("persistent:training.networks_stylegan2.Generator", children=[("synthesis", synthesis), ("mapping", mapping)],
                attrs=dict(z_dim=z_dim, c_dim=c_dim, w_dim=w_dim, img_resolution=img_resolution, img_channels=img_channels,
                           num_ws=num_ws),
                init=((z_dim, c_dim, w_dim, img_resolution, img_channels), {}))


TINY_G_KWARGS = dict(
    z_dim=512, w_dim=512, c_dim=25, img_resolution=64, img_channels=3,
    channel_base=256, channel_max=32, num_fp16_res=0, conv_clamp=None, fused_modconv_default="inference_only",
    sr_num_fp16_res=0,
    mapping_kwargs=dict(num_layers=2),
    rendering_kwargs=dict(
        image_resolution=64, disparity_space_sampling=False, clamp_mode="softplus",
        superresolution_module="training.superresolution.SuperresolutionHybrid8XDC", c_gen_conditioning_zero=False,
        gpc_reg_prob=0.5, c_scale=1.0, superresolution_noise_mode="none", density_reg=0.25, density_reg_p_dist=0.004,
        reg_type="l1", decoder_lr_mul=1.0, sr_antialias=True, depth_resolution=12, depth_resolution_importance=12,
        ray_start=2.25, ray_end=3.3, box_warp=1, avg_camera_radius=2.7, avg_camera_pivot=[0, 0, 0.2],
    ),
    sr_kwargs=dict(channel_base=256, channel_max=32, fused_modconv_default="inference_only"),
)
"""What EG3D's ``train.py`` records as ``G_kwargs`` (+ ``c_dim``, ``img_resolution``, ``img_channels``) for a tiny
FFHQ-style run: 64^2 images, 16^2 neural renders (below); w_dim 512 as in every EG3D model."""
TINY_SIZES = dict(triplane_resolution=32, triplane_channels=16, decoder_hidden_dim=64, decoder_output_dim=16,
                  sr_channels=(16, 8), sr_input_resolution=16, neural_rendering_resolution=16)
"""The sizes NVlabs writes as constants (256, 32, 64, 32, (256, 128), 128, 64/128), shrunk."""


def nvlabs_tiny_generator(seed: int = 0) -> Node:
    """``TriPlaneGenerator`` of :data:`TINY_G_KWARGS` / :data:`TINY_SIZES` with random weights, as NVlabs builds it."""
    rand = _Random(seed)
    k, s = TINY_G_KWARGS, TINY_SIZES
    backbone = stylegan2_backbone(rand, k["z_dim"], k["c_dim"], k["w_dim"], s["triplane_resolution"], 3 * s["triplane_channels"],
                                  k["channel_base"], k["channel_max"], k["mapping_kwargs"]["num_layers"])
    sr_in = s["sr_input_resolution"]
    block0 = synthesis_block(rand, s["triplane_channels"], s["sr_channels"][0], 512, 2 * sr_in, 3, is_last=False)
    block1 = synthesis_block(rand, s["sr_channels"][0], s["sr_channels"][1], 512, 4 * sr_in, 3, is_last=True)
    superresolution = Node("persistent:training.superresolution.SuperresolutionHybrid8XDC",
                           children=[("block0", block0), ("block1", block1)],
                           attrs=dict(input_resolution=sr_in, sr_antialias=True),
                           init=((), dict(channels=s["triplane_channels"], img_resolution=k["img_resolution"], sr_num_fp16_res=0,
                                          sr_antialias=True, **k["sr_kwargs"])))
    hidden, out = s["decoder_hidden_dim"], 1 + s["decoder_output_dim"]
    net = Node("torch:Sequential", children=[
        ("0", fully_connected(rand, s["triplane_channels"], hidden)),
        ("1", Node("torch:Softplus", attrs=dict(beta=1.0, threshold=20.0))),
        ("2", fully_connected(rand, hidden, out)),
    ])
    decoder = Node("ref:OSGDecoder", children=[("net", net)], attrs=dict(hidden_dim=hidden))
    renderer = Node("ref:ImportanceRenderer", children=[("ray_marcher", Node("ref:MipRayMarcher2"))],
                    attrs=dict(plane_axes=torch.eye(3).repeat(3, 1, 1)))
    return Node(
        "persistent:training.triplane.TriPlaneGenerator",
        children=[("renderer", renderer), ("ray_sampler", Node("ref:RaySampler", attrs=dict(ray_origins_h=None))),
                  ("backbone", backbone), ("superresolution", superresolution), ("decoder", decoder)],
        attrs=dict(z_dim=k["z_dim"], c_dim=k["c_dim"], w_dim=k["w_dim"], img_resolution=k["img_resolution"],
                   img_channels=k["img_channels"], rendering_kwargs=EasyDict(k["rendering_kwargs"]),
                   neural_rendering_resolution=s["neural_rendering_resolution"], _last_planes=None),
        init=((), {key: (EasyDict(v) if isinstance(v, dict) else v) for key, v in k.items()}),
    )


_MODULE_DICT = ("_backward_pre_hooks", "_backward_hooks", "_forward_hooks", "_forward_hooks_with_kwargs",
                "_forward_hooks_always_called", "_forward_pre_hooks", "_forward_pre_hooks_with_kwargs", "_state_dict_hooks",
                "_state_dict_pre_hooks", "_load_state_dict_pre_hooks", "_load_state_dict_post_hooks")
_REFERENCE = {"OSGDecoder": OSGDECODER, "ImportanceRenderer": IMPORTANCE_RENDERER, "MipRayMarcher2": RAY_MARCHER,
              "RaySampler": RAY_SAMPLER, "Sequential": torch.nn.Sequential, "Softplus": torch.nn.Softplus}


def _picklable(node: Node) -> Any:
    """The object ``pickle`` sees for ``node``: ``torch.nn.Module.__getstate__``'s dict, then the class rule."""
    state: dict[str, Any] = {"training": False, "_parameters": OrderedDict(node.params), "_buffers": OrderedDict(node.buffers),
                             "_non_persistent_buffers_set": set(), "_is_full_backward_hook": None,
                             **{key: OrderedDict() for key in _MODULE_DICT},
                             "_modules": OrderedDict((name, _picklable(child)) for name, child in node.children.items())}
    state.update(node.attrs)
    where, _, name = node.kind.partition(":")
    if where == "persistent":
        module, class_name = name.rsplit(".", 1)
        args, kwargs = node.init or ((), {})
        state.update(_init_args=tuple(args), _init_kwargs=EasyDict(kwargs))
        return PersistentStandIn(module, class_name, state)
    obj = object.__new__(_REFERENCE[name])
    obj.__dict__.update(state)
    return obj


def write_nvlabs_pickle(root: Node, path: Path) -> Path:
    """``{'G', 'D', 'G_ema', 'training_set_kwargs', 'augment_pipe'}`` as NVlabs' ``training_loop`` saves it."""
    g = _picklable(root)
    data = {
        "training_set_kwargs": EasyDict(class_name="training.dataset.ImageFolderDataset", path="FFHQ_64.zip", use_labels=True,
                                        resolution=TINY_G_KWARGS["img_resolution"]),
        "G": g, "D": None, "G_ema": g, "augment_pipe": None,
    }
    with nvlabs_module_names(), open(path, "wb") as handle:
        pickle.dump(data, handle, protocol=4)
    return path
