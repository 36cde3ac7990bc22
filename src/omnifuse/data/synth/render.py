"""Renderers: turn a `Scene` into files and manifest fields, one renderer per modality.

A renderer is a function ``(scene, sample_id, out_dir, rng, config) -> dict`` that writes
its file(s) under ``out_dir`` and returns the fields it adds to the manifest row, with
paths relative to ``out_dir`` (e.g. ``{"image": "images/000123.png"}``). Later issues add
``audio`` (spoken captions) and ``video`` (clips) with `register_renderer`, without touching
scenes, text or the generator. Each renderer gets its own random stream, so adding one
never changes what the others produce.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from omnifuse.data.synth.config import SynthConfig
from omnifuse.data.synth.renderers import register_renderer
from omnifuse.data.synth.scene import Scene
from omnifuse.data.synth.vocab import BACKGROUND_RGB, COLOR_RGB, GRID, SIZE_RADIUS


def _regular_polygon(x: float, y: float, r: float, k: int, start_deg: float) -> list[tuple[float, float]]:
    return [
        (
            x + r * math.cos(math.radians(start_deg + 360 * i / k)),
            y + r * math.sin(math.radians(start_deg + 360 * i / k)),
        )
        for i in range(k)
    ]


def _star(x: float, y: float, r: float) -> list[tuple[float, float]]:
    points = []
    for i in range(10):
        radius = r if i % 2 == 0 else 0.45 * r
        angle = math.radians(-90 + 36 * i)
        points.append((x + radius * math.cos(angle), y + radius * math.sin(angle)))
    return points


def shape_polygon(shape: str, x: float, y: float, r: float) -> list[tuple[float, float]] | None:
    """Vertices of a shape of "radius" r centred at (x, y); None for the circle."""
    if shape == "circle":
        return None
    if shape == "square":
        h = 0.82 * r  # about the circle's area
        return [(x - h, y - h), (x + h, y - h), (x + h, y + h), (x - h, y + h)]
    if shape == "triangle":
        return _regular_polygon(x, y, r, 3, -90)  # pointing up, centroid at (x, y)
    if shape == "star":
        return _star(x, y, r)
    if shape == "diamond":
        return [(x, y - r), (x + 0.75 * r, y), (x, y + r), (x - 0.75 * r, y)]
    if shape == "hexagon":
        return _regular_polygon(x, y, r, 6, 0)
    raise ValueError(f"cannot draw unknown shape {shape!r}")


def render_image(scene: Scene, image_size: int | None = None) -> Image.Image:
    """Draw a scene as an RGB image of ``image_size`` pixels (default: the scene's own size).

    Flat colors on `BACKGROUND_RGB`, no antialiasing: the pixel at an object's centre has
    exactly the object's color.
    """
    size = image_size or scene.image_size
    scale = size / scene.image_size
    image = Image.new("RGB", (size, size), BACKGROUND_RGB)
    draw = ImageDraw.Draw(image)
    cell = size / GRID
    for obj in scene.objects:
        x, y = obj.x * scale, obj.y * scale
        r = SIZE_RADIUS[obj.size] * cell
        fill = COLOR_RGB[obj.color]
        polygon = shape_polygon(obj.shape, x, y, r)
        if polygon is None:
            draw.ellipse([x - r, y - r, x + r, y + r], fill=fill)
        else:
            draw.polygon(polygon, fill=fill)
    return image


@register_renderer("image")
def _image_renderer(
    scene: Scene, sample_id: str, out_dir: Path, rng: np.random.Generator, config: SynthConfig
) -> dict[str, Any]:
    rel = f"images/{sample_id}.png"
    path = out_dir / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    render_image(scene, config.image_size).save(path, format="PNG")
    return {"image": rel}
