"""Load typed configs: schema defaults <- YAML files <- ``key=value`` overrides.

Every source is merged onto ``OmegaConf.structured(schema)``, so an unknown key or
a value of the wrong type fails at load time with the source file and the key path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence, TypeVar

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from pe3d.errors import InvalidInput

T = TypeVar("T")


class ConfigError(InvalidInput):
    """A config source is malformed: the message names the source and the key path."""


def _read_yaml(path: Path) -> Any:
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML: {error}") from error
    except UnicodeDecodeError as error:
        raise ConfigError(f"{path}: not a UTF-8 text file") from error
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def parse_overrides(overrides: Sequence[str]) -> dict[str, Any]:
    """Turn ``["a.b=1", "c=[1,2]"]`` into a nested dict (values parsed as YAML scalars)."""
    dotlist: list[str] = []
    for item in overrides:
        if "=" not in item or item.startswith("="):
            raise ConfigError(f"override {item!r}: expected key=value")
        dotlist.append(item)
    try:
        return OmegaConf.to_container(OmegaConf.from_dotlist(dotlist))  # type: ignore[return-value]
    except (OmegaConfBaseException, yaml.YAMLError) as error:
        raise ConfigError(f"overrides {list(overrides)}: {error}") from error


def _merge_one(base: DictConfig, source: Any, name: str, select: str | None) -> DictConfig:
    if isinstance(source, (str, Path)):
        data = _read_yaml(Path(source))
        name = str(source)
    else:
        data = source
    if select is not None:
        for part in select.split("."):
            if not isinstance(data, Mapping) or part not in data:
                return base
            data = data[part]
    try:
        return OmegaConf.merge(base, data)  # type: ignore[return-value]
    except OmegaConfBaseException as error:
        key = getattr(error, "full_key", None) or "?"
        key = f"{select}.{key}" if select else key
        msg = str(error).splitlines()[0]
        raise ConfigError(f"{name}: key '{key}': {msg}") from error


def load_structured(
    schema: type[T],
    sources: Sequence[str | Path | Mapping[str, Any]] = (),
    overrides: Sequence[str] = (),
    select: str | None = None,
) -> T:
    """Build a ``schema`` dataclass from defaults, YAML files / dicts, then overrides.

    Args:
        schema: a dataclass type whose fields all have defaults.
        sources: YAML paths or mappings merged in order (later wins).
        overrides: ``key=value`` strings merged last.
        select: optional dotted key; only that subsection of each source is used.

    Returns:
        An instance of ``schema`` (a real dataclass object, not a DictConfig).

    Raises:
        ConfigError: naming the source and the key path of the first bad value.
    """
    merged: DictConfig = OmegaConf.structured(schema)
    for index, source in enumerate(sources):
        merged = _merge_one(merged, source, f"source #{index}", select)
    if overrides:
        merged = _merge_one(merged, parse_overrides(overrides), "command-line override", None)
    try:
        return OmegaConf.to_object(merged)  # type: ignore[return-value]
    except OmegaConfBaseException as error:
        key = getattr(error, "full_key", None) or "?"
        raise ConfigError(f"config key '{key}': {str(error).splitlines()[0]}") from error
    except ValueError as error:  # a schema's __post_init__ refusing a value: the user's input, not a bug
        if isinstance(error, ConfigError):
            raise
        raise ConfigError(f"{schema.__name__}: {error}") from error


def load_fit_config(
    schema: type[T], config: str | Path | None, overrides: Sequence[str], default: str | Path | None = None
) -> T:
    """A recipe config: ``schema`` defaults <- YAML (``config``, else ``default``) <- ``key=value`` overrides."""
    source = config or default
    return load_structured(schema, [Path(source)] if source else [], overrides)


def to_yaml(config: Any) -> str:
    """YAML text of a dataclass config."""
    return OmegaConf.to_yaml(OmegaConf.structured(config))


def save_resolved(config: Any, path: str | Path) -> Path:
    """Write a resolved config as YAML, atomically."""
    from pe3d.io import atomic_write_text

    return atomic_write_text(Path(path), to_yaml(config))
