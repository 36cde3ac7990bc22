"""Scenes: what is in an image, independent of how it is rendered or described."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from omnifuse.data.synth.config import SynthConfig
from omnifuse.data.synth.vocab import COLORS, GRID, RELATIONS, SHAPES, SIZE_RADIUS, SIZES


@dataclass(frozen=True)
class SceneObject:
    """One object: what it is, its grid cell and its pixel centre (cell centre plus jitter)."""

    shape: str
    color: str
    size: str
    row: int
    """Grid row, 0 = top."""
    col: int
    """Grid column, 0 = left."""
    x: int
    """Pixel column of the centre, in an image of the scene's `image_size`."""
    y: int
    """Pixel row of the centre."""

    @property
    def combo(self) -> str:
        """ "color shape", e.g. "red circle"; unique within a scene."""
        return f"{self.color} {self.shape}"

    def to_dict(self) -> dict[str, Any]:
        return {f: getattr(self, f) for f in _OBJECT_FIELDS}


_OBJECT_FIELDS = tuple(f.name for f in fields(SceneObject))


@dataclass(frozen=True)
class Scene:
    """Objects in distinct grid cells, sorted in reading order (row, then column).

    No two objects share a color-shape combination, so "the red circle" always names
    exactly one object.
    """

    objects: tuple[SceneObject, ...]
    image_size: int

    @property
    def combos(self) -> list[str]:
        return [o.combo for o in self.objects]

    def find(self, combo: str) -> SceneObject | None:
        """The object with this "color shape", or None."""
        return next((o for o in self.objects if o.combo == combo), None)


def relation_holds(a: SceneObject, b: SceneObject, relation: str) -> bool:
    """Whether "a <relation> b" is true on the grid ("left of": a's column < b's column)."""
    if relation == "left of":
        return a.col < b.col
    if relation == "right of":
        return a.col > b.col
    if relation == "above":
        return a.row < b.row
    if relation == "below":
        return a.row > b.row
    raise ValueError(f"unknown relation {relation!r}; known: {', '.join(RELATIONS)}")


def sample_scene(
    rng: np.random.Generator,
    config: SynthConfig,
    *,
    exclude: Collection[str] = (),
    require: Collection[str] = (),
) -> Scene:
    """Draw a scene: 1..max objects in distinct cells, uniform shape, color and size.

    exclude: "color shape" combinations never used (train split: the held-out ones). An
        excluded draw is redrawn per object, which gives the same distribution as
        rejecting whole scenes, because objects are drawn independently.
    require: if given, one object (at a random place in the draw order) takes a
        combination drawn uniformly from these (test split: force a held-out one).
    """
    n = int(rng.integers(config.min_objects, config.max_objects + 1))
    cells = rng.permutation(GRID * GRID)[:n]
    required = sorted(require)
    excluded = set(exclude)
    # Combinations first (the forced one before the others, so no other object repeats it).
    combos: list[str | None] = [None] * n
    if required:
        combos[int(rng.integers(n))] = required[int(rng.integers(len(required)))]
    for k in range(n):
        while combos[k] is None:
            combo = f"{COLORS[int(rng.integers(len(COLORS)))]} {SHAPES[int(rng.integers(len(SHAPES)))]}"
            if combo not in excluded and combo not in combos:
                combos[k] = combo
    cell = config.image_size / GRID
    objects = []
    for combo, flat in zip(combos, cells):
        color, shape = str(combo).split()
        size = SIZES[int(rng.integers(len(SIZES)))]
        row, col = divmod(int(flat), GRID)
        # Jitter the centre while keeping the whole shape (plus a 1 px margin) inside its cell.
        room = max(0.0, cell / 2 - SIZE_RADIUS[size] * cell - 1)
        dx, dy = rng.uniform(-room, room, size=2)
        x = int(round((col + 0.5) * cell + dx))
        y = int(round((row + 0.5) * cell + dy))
        objects.append(SceneObject(shape, color, size, row, col, x, y))
    objects.sort(key=lambda o: (o.row, o.col))
    return Scene(objects=tuple(objects), image_size=config.image_size)


def scene_labels(scene: Scene) -> dict[str, Any]:
    """Class labels: the first object (reading order) and the object count.

    ``color_shape`` is only a fair image label for single-object scenes; it is set for
    all scenes, from the first object, so every row has the same keys.
    """
    first = scene.objects[0]
    return {
        "color": first.color,
        "shape": first.shape,
        "color_shape": first.combo,
        "count": len(scene.objects),
    }
