"""Losses by name, for configs: ``build_loss("triplet", margin=0.3, mining="semihard")``."""

from __future__ import annotations

import inspect
from typing import Any

from torch import nn

from omnifuse.losses.contrastive import ClipLoss, SigLipLoss
from omnifuse.losses.metric import CircleLoss, NPairLoss, TripletLoss

LOSSES: dict[str, type[nn.Module]] = {
    "clip": ClipLoss,
    "siglip": SigLipLoss,
    "triplet": TripletLoss,
    "npair": NPairLoss,
    "circle": CircleLoss,
}


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
