"""Evaluators by name, registered with a decorator; a model kind's spec names its own."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import torch

from omnifuse.data.sample import Sample
from omnifuse.eval.base import Evaluator

E = TypeVar("E", bound=type[Evaluator])

EVALUATORS: dict[str, type[Evaluator]] = {}


def register_evaluator(name: str) -> Callable[[E], E]:
    """Class decorator: make the decorated `Evaluator` subclass available as `name`."""

    def decorate(cls: E) -> E:
        if name in EVALUATORS and EVALUATORS[name] is not cls:
            raise ValueError(f"evaluator '{name}' is already registered by {EVALUATORS[name]}")
        EVALUATORS[name] = cls
        return cls

    return decorate


def get_evaluator(name: str) -> type[Evaluator]:
    if name not in EVALUATORS:
        raise ValueError(f"unknown evaluator '{name}'; known: {', '.join(sorted(EVALUATORS)) or 'none'}")
    return EVALUATORS[name]


def build_evaluator(
    evaluator: str | Callable[..., Evaluator] | None,
    config: Any,
    samples: Sequence[Sample],
    model: torch.nn.Module,
    prefix: str = "val/",
) -> Evaluator | None:
    """The evaluator a kind's spec names (`spec.evaluator`: a registered name or a callable
    `evaluator(config, samples, model)`), over `samples`; None when the kind has none. `prefix`
    applies to registered evaluators (a callable names its metrics itself)."""
    if evaluator is None:
        return None
    if isinstance(evaluator, str):
        return get_evaluator(evaluator).from_config(config, samples, model, prefix=prefix)
    return evaluator(config, samples, model)
