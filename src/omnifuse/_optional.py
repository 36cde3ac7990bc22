"""One helper to import optional heavy dependencies with an actionable error."""

from __future__ import annotations

import importlib
from types import ModuleType


class MissingDependencyError(ImportError):
    """Raised when an optional dependency is needed but not installed."""


def require(module: str, extra: str, purpose: str = "") -> ModuleType:
    """Import `module`, or raise an error telling which omnifuse extra installs it.

    >>> require("yaml", "core")  # doctest: +ELLIPSIS
    <module 'yaml' ...>
    """
    try:
        return importlib.import_module(module)
    except ImportError as err:
        what = f" for {purpose}" if purpose else ""
        raise MissingDependencyError(
            f"'{module}' is needed{what} but is not installed: pip install 'omnifuse[{extra}]'"
        ) from err
