"""Encoder kinds by the `type` key of their `to_config()`, so artifacts rebuild any tower.

An encoder class registers itself with ``@register_encoder_kind("video")``; this module imports
only the base class. `import omnifuse.encoders` imports (and so registers) the built-in kinds.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from omnifuse.encoders.base import Encoder

E = TypeVar("E", bound=type[Encoder])

ENCODER_KINDS: dict[str, type[Encoder]] = {}


def register_encoder_kind(name: str) -> Callable[[E], E]:
    """Class decorator: `to_config()["type"] == name` rebuilds with this class's `from_config`."""

    def decorate(cls: E) -> E:
        if name in ENCODER_KINDS and ENCODER_KINDS[name] is not cls:
            raise ValueError(f"encoder kind '{name}' is already registered by {ENCODER_KINDS[name]}")
        ENCODER_KINDS[name] = cls
        return cls

    return decorate


def encoder_from_config(cfg: dict[str, Any]) -> Encoder:
    """Rebuild an encoder (random weights) from its `to_config()` output."""
    kind = cfg.get("type", "hf")
    if kind not in ENCODER_KINDS:
        raise ValueError(f"unknown encoder type '{kind}' in the config; known: {sorted(ENCODER_KINDS)}")
    return ENCODER_KINDS[kind].from_config(cfg)
