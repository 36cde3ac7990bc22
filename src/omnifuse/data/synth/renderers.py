"""The renderer registry: modality name -> renderer, filled by a decorator.

A renderer is a function ``(scene, sample_id, out_dir, rng, config) -> dict`` that writes
its file(s) under ``out_dir`` and returns the fields it adds to the manifest row, with
paths relative to ``out_dir`` (e.g. ``{"image": "images/000123.png"}``). Modules register
theirs with ``@register_renderer("audio")``; this module imports nothing of the shapes world.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

Renderer = Callable[[Any, str, Path, np.random.Generator, Any], dict[str, Any]]
"""`(scene, sample_id, out_dir, rng, config) -> manifest fields`."""

R = TypeVar("R", bound=Renderer)

#: Modality name -> renderer; `SynthConfig.modalities` picks from these.
RENDERERS: dict[str, Renderer] = {}


def register_renderer(name: str) -> Callable[[R], R]:
    """Decorator: register the renderer under a modality name (at import time, so worker
    processes see it too)."""

    def decorate(renderer: R) -> R:
        if name in RENDERERS and RENDERERS[name] is not renderer:
            raise ValueError(f"a renderer named {name!r} is already registered")
        RENDERERS[name] = renderer
        return renderer

    return decorate
