"""Error types that mean "the user gave something wrong" (a file, a name, a value, a key).

``pe3d`` commands turn a :class:`UserInputError` into one line on stderr and exit code 2;
every other exception is a bug or an environment failure and keeps its traceback (exit 1).
The specific errors of each room (``ConfigError``, ``ImageLoadError``, ``StyleError``, ...)
subclass :class:`UserInputError` and, for compatibility, the built-in type callers expect
(``ValueError`` or ``FileNotFoundError``).
"""

from __future__ import annotations

__all__ = ["InputFileNotFound", "InvalidInput", "UserInputError"]


class UserInputError(Exception):
    """Base class of every error caused by the user's input (reported in one line, exit 2)."""


class InvalidInput(UserInputError, ValueError):
    """A value, option or file content the user gave is not acceptable (the message names it)."""


class InputFileNotFound(UserInputError, FileNotFoundError):
    """A file or folder the user named does not exist (the message names the path)."""
