"""Compatibility alias: adapters moved to :mod:`pe3d.adapters` (inference loads them without the
pair-generation code of :mod:`pe3d.styles`)."""

from pe3d.adapters import (  # noqa: F401
    ADAPTER_FILE,
    Adapter,
    AdapterMismatchError,
    adapter_parameter_names,
    apply_adapter,
    check_adapter,
    load_adapter_into,
    read_adapter,
    save_adapter,
)

__all__ = [
    "ADAPTER_FILE",
    "Adapter",
    "AdapterMismatchError",
    "adapter_parameter_names",
    "apply_adapter",
    "check_adapter",
    "load_adapter_into",
    "read_adapter",
    "save_adapter",
]
