"""Typed configuration: dataclass schemas merged with OmegaConf in one fixed order."""

from pe3d.config.loading import ConfigError, load_fit_config, load_structured, parse_overrides, save_resolved
from pe3d.config.paths import configs_dir, named_config, project_root, runs_dir, styles_dir

__all__ = [
    "ConfigError",
    "configs_dir",
    "load_fit_config",
    "load_structured",
    "named_config",
    "parse_overrides",
    "project_root",
    "runs_dir",
    "save_resolved",
    "styles_dir",
]
