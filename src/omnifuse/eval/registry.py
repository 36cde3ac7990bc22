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


class _Adapted(Evaluator):
    """A kind's own evaluator object (from a callable in its spec) as an `Evaluator`: calling it
    gives the metrics, named by itself; `evaluate` falls back to that with no details."""

    def __init__(self, inner: Any):
        self.inner = inner
        self.prefix = ""

    def __getattr__(self, name: str) -> Any:  # e.g. the inner evaluator's `score`
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    def evaluate(self, model: torch.nn.Module) -> tuple[dict[str, float], dict[str, Any]]:
        own = getattr(self.inner, "evaluate", None)
        return own(model) if own is not None else (self.inner(model), {})

    def __call__(self, model: torch.nn.Module) -> dict[str, float]:
        return self.inner(model)


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
    built = evaluator(config, samples, model)
    return None if built is None else built if isinstance(built, Evaluator) else _Adapted(built)
