"""Compatibility alias: adapters moved to :mod:`pe3d.adapters` (inference loads them without the
pair-generation code of :mod:`pe3d.styles`)."""

from pe3d.adapters import *  # noqa: F401,F403
from pe3d.adapters import __all__  # noqa: F401
