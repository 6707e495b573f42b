"""Pair generators registered by short name.

``style.yaml`` says ``generator: filter``; this module maps that short name to a
:class:`~pe3d.styles.generators.PairGenerator` subclass. Built-in generators live in
:mod:`pe3d.styles.generators`; a style folder may ship a ``generator.py`` that registers
its own (it is imported by :func:`pe3d.styles.discovery.import_style_plugin`)::

    from pe3d.styles import PairGenerator, register_generator

    @register_generator("noise")
    class NoiseGenerator(PairGenerator):
        ...
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, TypeVar

from pe3d.config import ConfigError, load_structured
from pe3d.styles.spec import StyleError, StyleSpec, is_safe_name

if TYPE_CHECKING:
    from pe3d.styles.generators import PairGenerator

G = TypeVar("G", bound=type)

_GENERATORS: dict[str, type] = {}


def _ensure_builtins() -> None:
    """Import the built-in generators (they register themselves on import); InstructPix2Pix
    (``instruct-pix2pix``) lives in its own module, imported here rather than by ``generators``."""
    import pe3d.styles.generators  # noqa: F401
    import pe3d.styles.ip2p  # noqa: F401


def register_generator(name: str) -> Callable[[G], G]:
    """Class decorator: register a :class:`PairGenerator` subclass under ``name``.

    Re-registering the same class (same module and qualified name, e.g. a plugin file
    imported again) replaces the old entry; a different class under a taken name is an
    error naming both.
    """
    if not is_safe_name(name):
        raise StyleError(f"generator name {name!r} is not a safe short name (lower-case letters, digits, '_', '-')")

    def decorate(cls: G) -> G:
        from pe3d.styles.generators import PairGenerator

        if not (isinstance(cls, type) and issubclass(cls, PairGenerator)):
            raise StyleError(f"@register_generator({name!r}): {cls!r} is not a PairGenerator subclass")
        old = _GENERATORS.get(name)
        if old is not None and old is not cls:
            same = (old.__module__, old.__qualname__) == (cls.__module__, cls.__qualname__)
            if not same:
                raise StyleError(
                    f"generator {name!r} registered twice: {old.__module__}.{old.__qualname__} "
                    f"and {cls.__module__}.{cls.__qualname__}"
                )
        cls.generator_name = name
        _GENERATORS[name] = cls
        return cls

    return decorate


def unregister_generator(name: str) -> None:
    """Remove a registered generator (for tests and interactive use)."""
    _GENERATORS.pop(name, None)


def generator_names() -> list[str]:
    """Sorted short names of every registered generator."""
    _ensure_builtins()
    return sorted(_GENERATORS)


def get_generator(name: str) -> type[PairGenerator]:
    """The generator class registered as ``name``.

    Raises:
        StyleError: unknown name; the message lists the known names.
    """
    _ensure_builtins()
    try:
        return _GENERATORS[name]  # type: ignore[return-value]
    except (KeyError, TypeError):
        raise StyleError(f"unknown pair generator {name!r} (known: {', '.join(sorted(_GENERATORS))})") from None


def parse_params(spec: StyleSpec) -> Any:
    """``spec.params`` as an instance of the generator's ``Params`` dataclass, validated.

    Raises:
        ConfigError: naming ``style.yaml`` and the key (``params.<field>``), or ``generator``
            when the name is unknown.
    """
    where = str(spec.style_file) if spec.folder else f"style {spec.name!r}"
    try:
        cls = get_generator(spec.generator)
    except StyleError as error:
        raise ConfigError(f"{where}: key 'generator': {error}") from None
    try:
        params = load_structured(cls.Params, [dict(spec.params)])
    except ConfigError as error:
        message = str(error)
        for head in ("source #0: key '", "config key '"):
            if message.startswith(head):
                message = f"{where}: key 'params." + message[len(head) :]
                break
        else:
            message = f"{where}: key 'params': {message}"
        raise ConfigError(message) from None
    except (TypeError, ValueError, KeyError, AttributeError) as error:
        raise ConfigError(f"{where}: key 'params': {type(error).__name__}: {error}") from None
    from pe3d.styles.generators import ParamError

    try:
        cls.validate_params(params, spec)
    except ParamError as error:
        raise ConfigError(f"{where}: key 'params.{error.key}': {error.message}") from None
    return params


def check_generator_params(spec: StyleSpec) -> None:
    """Validate ``spec.generator`` and ``spec.params`` (ConfigError naming file and key)."""
    parse_params(spec)


def build_generator(spec: StyleSpec) -> PairGenerator:
    """Instantiate the style's generator with its parsed ``Params``."""
    cls = get_generator(spec.generator)
    return cls(spec, parse_params(spec))
