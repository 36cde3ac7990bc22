"""The hook through which a generative kind joins `omnifuse bench generate`.

A kind's spec carries `decode_workload` in its extras: a function `(model or None) ->
DecodeWorkload`. Given None it builds a fresh benchmark-sized model of its kind; given a
loaded artifact it wraps it. The benchmark then times `run` at each batch size, with and
without the KV cache, for each speed configuration.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from omnifuse.generation.settings import GenerationSettings


@dataclass
class DecodeWorkload:
    """One row family of the decode benchmark."""

    name: str
    """Row label, e.g. 'captioner xattn (gpt2 4x256)'."""
    model: nn.Module
    """The model (eval mode); speed configurations may cast or transform a copy of it."""
    inputs: Callable[[int], dict[str, Any]]
    """`inputs(batch_size)` -> keyword arguments for `run` (prompts, images ...)."""
    run: Callable[[nn.Module, dict[str, Any], GenerationSettings], int]
    """`run(model, inputs, settings)` decodes and returns the number of new tokens generated."""
    max_new_tokens: int = 32
    """Tokens decoded per sequence (`min_new_tokens` is set equal so every call decodes all)."""
