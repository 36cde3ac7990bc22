"""The closed vocabulary of the shapes world: shapes, colors, sizes and grid positions.

Everything else in `omnifuse.data.synth` draws its words from here, so a later issue that
adds a shape or a color changes one tuple.
"""

from __future__ import annotations

#: Shapes, in the fixed order used by class lists.
SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star", "diamond", "hexagon")

#: Color names, in the fixed order used by class lists.
COLORS: tuple[str, ...] = ("red", "green", "blue", "yellow", "purple", "orange", "cyan", "white")

#: RGB value of each color: saturated and far apart, so they stay distinct after resizing.
COLOR_RGB: dict[str, tuple[int, int, int]] = {
    "red": (230, 30, 30),
    "green": (30, 190, 40),
    "blue": (40, 80, 255),
    "yellow": (250, 230, 20),
    "purple": (160, 40, 210),
    "orange": (255, 140, 0),
    "cyan": (20, 230, 240),
    "white": (245, 245, 245),
}

#: Neutral dark background, distinct from every object color.
BACKGROUND_RGB: tuple[int, int, int] = (40, 40, 40)

#: Object sizes; radius as a fraction of a grid cell is in `SIZE_RADIUS`.
SIZES: tuple[str, ...] = ("small", "large")

#: Radius of each size as a fraction of the grid cell's side.
SIZE_RADIUS: dict[str, float] = {"small": 0.3, "large": 0.44}

#: Side of the position grid (GRID x GRID cells).
GRID = 3

#: Name of each grid cell, indexed ``POSITIONS[row][col]``; row 0 is the top.
POSITIONS: tuple[tuple[str, ...], ...] = (
    ("top left", "top", "top right"),
    ("left", "center", "right"),
    ("bottom left", "bottom", "bottom right"),
)

#: Preposition that reads naturally before each position ("at the top left", "in the center").
POSITION_PREPOSITION: dict[str, str] = {
    "left": "on the",
    "right": "on the",
    "center": "in the",
}

#: Spatial relations between two objects, decided on grid cells (not pixels).
RELATIONS: tuple[str, ...] = ("left of", "right of", "above", "below")

#: Number words used in captions ("two objects: ...").
NUMBER_WORDS: tuple[str, ...] = (
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
)


def position_name(row: int, col: int) -> str:
    """Name of grid cell (row, col), e.g. ``(0, 0) -> "top left"``."""
    return POSITIONS[row][col]


def position_phrase(row: int, col: int) -> str:
    """Prepositional phrase for a cell: "at the top left", "on the left", "in the center"."""
    name = POSITIONS[row][col]
    return f"{POSITION_PREPOSITION.get(name, 'at the')} {name}"


def color_shape_classes() -> list[str]:
    """All "color shape" combinations (8 x 6 = 48), color-major, in a fixed order.

    Used as class names for zero-shot evaluation, e.g. ``["red circle", "red square", ...]``.
    """
    return [f"{color} {shape}" for color in COLORS for shape in SHAPES]


def split_combo(combo: str) -> tuple[str, str]:
    """Parse "red circle" into ``("red", "circle")``; raise ValueError naming the bad part."""
    parts = combo.split()
    if len(parts) != 2:
        raise ValueError(f"color-shape combination {combo!r} must be two words: '<color> <shape>'")
    color, shape = parts
    if color not in COLORS:
        raise ValueError(f"unknown color {color!r} in {combo!r}; allowed colors: {', '.join(COLORS)}")
    if shape not in SHAPES:
        raise ValueError(f"unknown shape {shape!r} in {combo!r}; allowed shapes: {', '.join(SHAPES)}")
    return color, shape
