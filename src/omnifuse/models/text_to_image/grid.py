"""Lay images out on one grid image (rows of candidates per prompt)."""

from __future__ import annotations

from collections.abc import Sequence

from PIL import Image


def image_grid(
    images: Sequence[Image.Image],
    columns: int,
    pad: int = 2,
    background: tuple[int, int, int] = (255, 255, 255),
) -> Image.Image:
    """Images (all the same size) in rows of `columns`, `pad` pixels apart, on `background`."""
    if not images:
        raise ValueError("no images to lay out")
    if columns < 1:
        raise ValueError(f"columns must be >= 1; got {columns}")
    w, h = images[0].size
    rows = -(-len(images) // columns)
    cols = min(columns, len(images))
    grid = Image.new("RGB", (cols * w + (cols + 1) * pad, rows * h + (rows + 1) * pad), background)
    for i, im in enumerate(images):
        r, c = divmod(i, columns)
        grid.paste(im.convert("RGB").resize((w, h)), (pad + c * (w + pad), pad + r * (h + pad)))
    return grid
