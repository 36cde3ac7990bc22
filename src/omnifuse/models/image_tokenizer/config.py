"""The image tokenizer's recipe config (`model.type: image_tokenizer`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

GRIDS = (4, 8, 16, 32)
"""Token grids a tokenizer may have (side of the square grid of codes)."""


@dataclass
class ImageTokenizerConfig:
    """A VQ-VAE: conv encoder -> `grid` x `grid` vectors -> nearest of `codebook_size` codes -> conv decoder.

    The grid is set by how often the encoder halves the image: `processor.image.size / grid`
    must be a power of two (e.g. 64 px with grid 8: three stride-2 convolutions).
    """

    type: Literal["image_tokenizer"] = "image_tokenizer"
    """The model kind; selects this config in a recipe."""
    grid: int = 8
    """Side of the token grid: an image becomes grid * grid codes (allowed: 4, 8, 16, 32)."""
    codebook_size: int = 256
    """Number of codes (the image vocabulary of a text-to-image prior)."""
    codebook_dim: int = 32
    """Width of a code vector."""
    hidden: int = 64
    """Channels of the first conv stage; each downsampling stage doubles them (capped at 4x)."""
    res_blocks: int = 1
    """Residual blocks at the lowest resolution, in the encoder and in the decoder."""
    ema_decay: float = 0.9
    """EMA decay of the codebook updates (codes move to the running mean of their assigned vectors)."""
    dead_code_threshold: float = 1.0
    """A code whose EMA cluster size falls below this is restarted from a vector of the batch
    (0 disables restarts)."""
    commitment_weight: float = 0.25
    """Weight of the commitment loss ||z - sg(q)||^2 (van den Oord et al. 2017's beta)."""
    kmeans_init: bool = True
    """Initialise the codebook by k-means on the first training batch."""

    def __post_init__(self) -> None:
        if self.grid not in GRIDS:
            raise ValueError(f"model.grid must be one of {GRIDS}; got {self.grid}")
        if self.codebook_size < 2:
            raise ValueError(f"model.codebook_size must be >= 2; got {self.codebook_size}")
        for name in ("codebook_dim", "hidden", "res_blocks"):
            if getattr(self, name) <= 0:
                raise ValueError(f"model.{name} must be positive; got {getattr(self, name)}")
        if not 0 < self.ema_decay < 1:
            raise ValueError(f"model.ema_decay must be in (0, 1); got {self.ema_decay}")
        if self.dead_code_threshold < 0:
            raise ValueError(f"model.dead_code_threshold must be >= 0; got {self.dead_code_threshold}")
        if self.commitment_weight < 0:
            raise ValueError(f"model.commitment_weight must be >= 0; got {self.commitment_weight}")


def downsamplings(image_size: int, grid: int) -> int:
    """How many stride-2 stages take `image_size` pixels to `grid` tokens; a clear error otherwise."""
    ratio, n = image_size // grid, 0
    if image_size % grid or ratio < 2 or ratio & (ratio - 1):
        raise ValueError(
            f"the image size ({image_size} px, processor.image.size) divided by model.grid ({grid}) "
            f"must be a power of two >= 2; choose grid in "
            f"{[g for g in GRIDS if image_size % g == 0 and (image_size // g) & (image_size // g - 1) == 0 and image_size // g >= 2]}"
        )
    while ratio > 1:
        ratio //= 2
        n += 1
    return n
