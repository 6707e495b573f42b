"""Styles: the style contract, discovery of style plugin folders, and pair generators.

A style is a folder ``styles/<name>/`` with a ``style.yaml`` (:class:`StyleSpec`), its
prompts (8 train / 5 test, as in the paper), and optionally a ``generator.py`` that
registers its own pair generator. See ``styles/README.md``.

Main entry points: :func:`load_style` (a folder), :func:`load_named_style` (a name),
:func:`discover_styles`, :func:`build_generator`, :func:`register_generator`; pair sets
on disk are in :mod:`pe3d.data.pairs`.
"""

from pe3d.styles.spec import (
    AdaptSpec,
    PairsSpec,
    PoseSpec,
    PromptsSpec,
    RefineSpec,
    StyleError,
    StyleSpec,
    check_prompt_counts,
    is_safe_name,
    load_style,
)
from pe3d.styles.registry import (
    build_generator,
    check_generator_params,
    generator_names,
    get_generator,
    parse_params,
    register_generator,
    unregister_generator,
)
from pe3d.styles.generators import (
    FilterGenerator,
    FolderGenerator,
    NoParams,
    Pair,
    PairGenerator,
    ParamError,
)
from pe3d.styles.discovery import (
    ENTRY_POINT_GROUP,
    check_style_reference,
    discover_styles,
    find_style,
    import_style_plugin,
    list_styles,
    load_named_style,
    load_styles,
)

__all__ = [
    "AdaptSpec",
    "ENTRY_POINT_GROUP",
    "FilterGenerator",
    "FolderGenerator",
    "NoParams",
    "Pair",
    "PairGenerator",
    "PairsSpec",
    "ParamError",
    "PoseSpec",
    "PromptsSpec",
    "RefineSpec",
    "StyleError",
    "StyleSpec",
    "build_generator",
    "check_generator_params",
    "check_prompt_counts",
    "check_style_reference",
    "discover_styles",
    "find_style",
    "generator_names",
    "get_generator",
    "import_style_plugin",
    "is_safe_name",
    "list_styles",
    "load_named_style",
    "load_style",
    "load_styles",
    "parse_params",
    "register_generator",
    "unregister_generator",
]
