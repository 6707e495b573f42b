"""Typed settings of the EG3D generator, and the bridge to NVlabs' constructor kwargs.

:class:`EG3DConfig` holds everything ``TriPlaneGenerator(**kwargs)`` receives in NVlabs'
code (``z_dim``, ``mapping_kwargs``, ``rendering_kwargs``, ``sr_kwargs``, ...) plus the sizes
EG3D hard-codes (a 256^2 backbone, 32 channels per plane, a 64-wide decoder, SR channels
256/128 from a 128^2 input), so tiny generators for tests are configs too.

Presets: ``configs/eg3d/ffhq512.yaml`` (the official ``ffhq512-128.pkl``) and
``configs/eg3d/tiny.yaml``; :func:`load_eg3d_config` takes a preset name or a path.
:func:`config_from_eg3d_kwargs` reads the kwargs stored in an EG3D checkpoint (unknown
keys are refused, naming them), :func:`config_to_eg3d_kwargs` writes them back.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, List, Mapping, Optional

from pe3d.config import ConfigError, load_structured, named_config

SR_MODULE_8XDC = "training.superresolution.SuperresolutionHybrid8XDC"
"""The only super-resolution module supported: EG3D's choice for 512^2 (FFHQ, AFHQ)."""


@dataclass
class EG3DMappingConfig:
    """``mapping_kwargs`` of the StyleGAN2 mapping network."""

    num_layers: int = 2
    lr_multiplier: float = 0.01
    w_avg_beta: float = 0.998


@dataclass
class EG3DRenderingConfig:
    """EG3D's ``rendering_kwargs`` (FFHQ values as defaults; see NVlabs ``train.py``).

    Used at inference: the ray range and sample counts, ``box_warp``, the camera
    conditioning switches (``c_gen_conditioning_zero``, ``c_scale``), the SR noise mode and
    antialiasing, ``density_noise`` and ``white_back``. The regularisation entries are kept
    only so a checkpoint's kwargs round-trip unchanged.
    """

    depth_resolution: int = 48
    depth_resolution_importance: int = 48
    ray_start: float = 2.25
    ray_end: float = 3.3
    box_warp: float = 1.0
    avg_camera_radius: float = 2.7
    avg_camera_pivot: List[float] = field(default_factory=lambda: [0.0, 0.0, 0.2])
    image_resolution: int = 512
    disparity_space_sampling: bool = False
    clamp_mode: str = "softplus"
    superresolution_module: str = SR_MODULE_8XDC
    superresolution_noise_mode: str = "none"
    sr_antialias: bool = True
    c_gen_conditioning_zero: bool = False
    c_scale: float = 1.0
    gpc_reg_prob: Optional[float] = 0.5
    density_reg: float = 0.25
    density_reg_p_dist: float = 0.004
    reg_type: str = "l1"
    decoder_lr_mul: float = 1.0
    density_noise: float = 0.0
    white_back: bool = False


@dataclass
class EG3DConfig:
    """Everything needed to build :class:`pe3d.eg3d.generator.TriPlaneGenerator`.

    NVlabs constructor arguments: ``z_dim``, ``w_dim``, ``c_dim``, ``img_resolution``,
    ``img_channels``, ``channel_base``, ``channel_max``, ``num_fp16_res``, ``conv_clamp``,
    ``fused_modconv_default``, ``sr_num_fp16_res``, ``mapping``, ``rendering``,
    ``sr_channel_base``, ``sr_channel_max``, ``sr_fused_modconv_default`` (the last three
    are ``sr_kwargs``, which EG3D's SR ignores apart from the fused flag). Float16 and fused
    convolutions only change speed on CUDA; here everything runs in float32.

    Sizes EG3D hard-codes (read back from tensor shapes when importing a checkpoint):
    ``triplane_resolution`` (256), ``triplane_channels`` per plane (32),
    ``decoder_hidden_dim`` (64), ``decoder_output_dim`` (32), ``sr_channels`` ([256, 128])
    and ``sr_input_resolution`` (128). ``neural_rendering_resolution`` is the volume
    rendering size stored with the weights (128 for ``ffhq512-128``).
    """

    z_dim: int = 512
    w_dim: int = 512
    c_dim: int = 25
    img_resolution: int = 512
    img_channels: int = 3
    channel_base: int = 32768
    channel_max: int = 512
    num_fp16_res: int = 0
    conv_clamp: Optional[float] = None
    fused_modconv_default: str = "inference_only"
    sr_num_fp16_res: int = 4
    sr_channel_base: int = 32768
    sr_channel_max: int = 512
    sr_fused_modconv_default: str = "inference_only"
    mapping: EG3DMappingConfig = field(default_factory=EG3DMappingConfig)
    rendering: EG3DRenderingConfig = field(default_factory=EG3DRenderingConfig)
    triplane_resolution: int = 256
    triplane_channels: int = 32
    decoder_hidden_dim: int = 64
    decoder_output_dim: int = 32
    sr_channels: List[int] = field(default_factory=lambda: [256, 128])
    sr_input_resolution: int = 128
    neural_rendering_resolution: int = 128

    def __post_init__(self) -> None:
        r = self.rendering
        if r.superresolution_module != SR_MODULE_8XDC:
            raise ConfigError(
                f"rendering.superresolution_module: only {SR_MODULE_8XDC} (512^2 EG3D models) is supported, "
                f"got {r.superresolution_module!r}"
            )
        if self.img_resolution != 4 * self.sr_input_resolution:
            raise ConfigError(
                f"img_resolution ({self.img_resolution}) must be 4 x sr_input_resolution ({self.sr_input_resolution}): "
                "the 8XDC super-resolution upsamples twice"
            )
        if len(self.sr_channels) != 2:
            raise ConfigError(f"sr_channels must list the 2 SR block widths, got {self.sr_channels}")
        if r.clamp_mode != "softplus":
            raise ConfigError(f"rendering.clamp_mode: EG3D's ray marcher supports only 'softplus', got {r.clamp_mode!r}")
        if r.disparity_space_sampling:
            raise ConfigError("rendering.disparity_space_sampling=true is not supported (no EG3D FFHQ model uses it)")
        if r.superresolution_noise_mode not in ("random", "const", "none"):
            raise ConfigError(f"rendering.superresolution_noise_mode must be random, const or none, got {r.superresolution_noise_mode!r}")
        if not r.ray_start < r.ray_end:
            raise ConfigError(f"rendering.ray_start ({r.ray_start}) must be < rendering.ray_end ({r.ray_end})")
        if self.decoder_output_dim < 3 or self.img_channels != 3:
            raise ConfigError("decoder_output_dim must be >= 3 and img_channels must be 3 (RGB)")

    @property
    def sr_conv_clamp(self) -> Optional[float]:
        """EG3D clamps the SR activations at 256 whenever the SR is configured for float16."""
        return 256.0 if self.sr_num_fp16_res > 0 else None


def eg3d_preset_path(name_or_path: str | Path) -> Path:
    """``configs/eg3d/<name>.yaml`` for a preset name, or the given YAML path."""
    return named_config("eg3d", name_or_path, "EG3D preset")


def load_eg3d_config(name_or_path: str | Path = "ffhq512", overrides: list[str] | tuple[str, ...] = ()) -> EG3DConfig:
    """An :class:`EG3DConfig` from a preset (``ffhq512``, ``tiny``) or YAML path, plus ``key=value`` overrides."""
    return load_structured(EG3DConfig, [eg3d_preset_path(name_or_path)], list(overrides))


_TOP_LEVEL_KWARGS = {
    "z_dim", "w_dim", "c_dim", "img_resolution", "img_channels", "channel_base", "channel_max",
    "num_fp16_res", "conv_clamp", "fused_modconv_default", "sr_num_fp16_res",
}
_MAPPING_DEFAULTS = {"embed_features": None, "layer_features": None, "activation": "lrelu"}
"""``mapping_kwargs`` entries EG3D accepts that we support only at their default value."""
_MISSING_RENDERING_DEFAULTS = {"c_scale": 0.0, "decoder_lr_mul": 1.0, "density_noise": 0.0, "white_back": False}
"""What EG3D's code uses when these ``rendering_kwargs`` are absent (``c_scale`` defaults to 0 there)."""


def _plain(value: Any) -> Any:
    """Numpy scalars -> Python numbers, mappings -> dicts, tuples -> lists (recursively)."""
    if hasattr(value, "item") and callable(value.item) and getattr(value, "shape", None) == ():
        return value.item()
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def config_from_eg3d_kwargs(kwargs: Mapping[str, Any], sizes: Mapping[str, Any] | None = None, source: str = "checkpoint") -> EG3DConfig:
    """Build an :class:`EG3DConfig` from NVlabs ``TriPlaneGenerator`` constructor kwargs.

    Args:
        kwargs: ``init_kwargs`` (EG3D pickles) or ``G_init_kwargs`` (converted files).
        sizes: the hard-coded sizes read from the weights (``triplane_resolution``, ...),
            and ``neural_rendering_resolution`` / ``rendering`` overrides stored beside them.
        source: named in error messages.

    Raises:
        ConfigError: an unknown or unsupported key, naming it.
    """
    kwargs = _plain(dict(kwargs))
    unknown = sorted(set(kwargs) - _TOP_LEVEL_KWARGS - {"mapping_kwargs", "rendering_kwargs", "sr_kwargs"})
    if unknown:
        raise ConfigError(f"{source}: unknown TriPlaneGenerator argument(s) {unknown}")
    data: dict[str, Any] = {key: kwargs[key] for key in _TOP_LEVEL_KWARGS if key in kwargs}
    mapping = dict(kwargs.get("mapping_kwargs") or {})
    for key, default in _MAPPING_DEFAULTS.items():
        if mapping.pop(key, default) != default:
            raise ConfigError(f"{source}: mapping_kwargs.{key}={kwargs['mapping_kwargs'][key]!r} is not supported (only {default!r})")
    data["mapping"] = mapping
    rendering = {**_MISSING_RENDERING_DEFAULTS, **dict(kwargs.get("rendering_kwargs") or {})}
    if rendering.get("ray_start") == "auto" or rendering.get("ray_end") == "auto":
        raise ConfigError(f"{source}: rendering_kwargs ray_start/ray_end='auto' (box-intersected rays) is not supported")
    data["rendering"] = rendering
    sr_kwargs = dict(kwargs.get("sr_kwargs") or {})
    for key in ("channel_base", "channel_max", "fused_modconv_default"):
        if key in sr_kwargs:
            data[f"sr_{key}"] = sr_kwargs.pop(key)
    if sr_kwargs:
        raise ConfigError(f"{source}: unknown sr_kwargs {sorted(sr_kwargs)}")
    for key, value in _plain(dict(sizes or {})).items():
        if key == "rendering":
            data["rendering"] = {**data["rendering"], **value}
        else:
            data[key] = value
    try:
        return load_structured(EG3DConfig, [data])
    except ConfigError as error:
        raise ConfigError(f"{source}: {error}") from error


def config_to_eg3d_kwargs(cfg: EG3DConfig) -> dict[str, Any]:
    """The NVlabs ``TriPlaneGenerator`` kwargs for ``cfg`` (its hard-coded sizes are not kwargs)."""
    data = asdict(cfg)
    kwargs: dict[str, Any] = {key: data[key] for key in sorted(_TOP_LEVEL_KWARGS)}
    kwargs["mapping_kwargs"] = data["mapping"]
    kwargs["rendering_kwargs"] = data["rendering"]
    kwargs["sr_kwargs"] = {
        "channel_base": cfg.sr_channel_base,
        "channel_max": cfg.sr_channel_max,
        "fused_modconv_default": cfg.sr_fused_modconv_default,
    }
    return kwargs


HARD_CODED_SIZES = (
    "triplane_resolution", "triplane_channels", "decoder_hidden_dim", "decoder_output_dim", "sr_channels", "sr_input_resolution",
)
"""Fields that are constants in NVlabs' code (read back from tensor shapes when importing)."""
