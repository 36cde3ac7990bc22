"""Per-sample random streams: each (seed, sample, stream) gets its own generator."""

from __future__ import annotations

import numpy as np


def sample_rng(seed: int, index: int, stream: int) -> np.random.Generator:
    """The generator for one stream of one sample; depends only on its three arguments."""
    return np.random.default_rng([seed, index, stream])
