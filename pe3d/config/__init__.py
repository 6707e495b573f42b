"""Typed configuration: dataclass schemas merged with OmegaConf in one fixed order, and where
built-in configs, styles and benchmarks are found (:mod:`pe3d.config.paths`)."""

from pe3d.config.loading import ConfigError, load_fit_config, load_structured, parse_overrides, save_resolved
from pe3d.config.paths import (
    benchmarks_dir,
    builtin_root,
    builtin_styles_dir,
    configs_dir,
    is_builtin,
    named_config,
    runs_dir,
    user_styles_dir,
)

__all__ = [
    "ConfigError",
    "benchmarks_dir",
    "builtin_root",
    "builtin_styles_dir",
    "configs_dir",
    "is_builtin",
    "load_fit_config",
    "load_structured",
    "named_config",
    "parse_overrides",
    "runs_dir",
    "save_resolved",
    "user_styles_dir",
]
