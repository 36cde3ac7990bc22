"""Losses by name, for configs: ``build_loss("triplet", margin=0.3, mining="semihard")``.

A loss class registers itself with ``@register_loss("clip")``; this module imports only torch's
base class. `import omnifuse.losses` imports (and so registers) the built-in losses.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, TypeVar

from torch import nn

L = TypeVar("L", bound=type[nn.Module])

LOSSES: dict[str, type[nn.Module]] = {}


def register_loss(name: str) -> Callable[[L], L]:
    """Class decorator: make the loss available to configs as `name`."""

    def decorate(cls: L) -> L:
        if name in LOSSES and LOSSES[name] is not cls:
            raise ValueError(f"loss '{name}' is already registered by {LOSSES[name].__name__}")
        LOSSES[name] = cls
        return cls

    return decorate


def loss_kwargs(cls: type[nn.Module]) -> list[str]:
    """Names of the keyword arguments a loss class accepts (its ``__init__`` parameters)."""
    params = inspect.signature(cls.__init__).parameters.values()
    named = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return [p.name for p in params if p.name != "self" and p.kind in named]


def build_loss(name: str, **kwargs: Any) -> nn.Module:
    """Instantiate the loss registered as ``name`` with ``kwargs``.

    Raises ``ValueError`` for an unknown name (listing the known ones) or for keyword arguments
    the loss does not take (listing those it does).
    """
    if name not in LOSSES:
        raise ValueError(f"unknown loss '{name}'; known: {sorted(LOSSES)}")
    cls = LOSSES[name]
    accepted = loss_kwargs(cls)
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        raise ValueError(
            f"loss '{name}' got unknown argument(s) {unknown}; it accepts {accepted or 'no arguments'}"
        )
    return cls(**kwargs)
