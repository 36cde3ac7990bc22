"""Sample inputs for tracing and parity checks, made with the artifact's own processor.

Several batch sizes and (for text) sequence lengths, so a graph whose batch or sequence axis
was frozen at trace time fails the parity check instead of failing in production.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from omnifuse.deploy.export.graphs import GraphSpec, placeholder_inputs

WORDS = (
    "a small red circle at the top left of a large blue square below green star cyan hexagon "
    "yellow triangle purple and there is one two three big tiny right bottom middle next to"
).split()

#: (batch size, words per text) of the sample batches; the last is used for tracing.
SAMPLE_SHAPES = ((1, 3), (4, 40), (3, 9))


def raw_samples(modality: str, processor, n: int, words: int, seed: int) -> list:
    rng = np.random.default_rng(seed)
    if modality == "text":
        # varied lengths within a batch, so padding and the mask are exercised
        return [" ".join(rng.choice(WORDS, size=max(1, words - 2 * i))) for i in range(n)]
    if modality == "image":
        size = processor["image"].settings.size
        return [rng.integers(0, 256, (size + 3 * i, size + 5, 3), dtype=np.uint8) for i in range(n)]
    if modality == "audio":
        # (waveform, rate) pairs of different lengths (shorter than the max: padding is masked)
        rate = processor["audio"].settings.sample_rate
        return [
            (rng.standard_normal(int(rate * (0.5 + 0.3 * i))).astype(np.float32) * 0.1, rate)
            for i in range(n)
        ]
    if modality == "video":
        size = processor["video"].settings.image.size
        frames = processor["video"].settings.num_frames
        # one clip shorter than the frame count, so the frame mask is exercised
        lengths = [max(1, frames - (i % 2)) for i in range(n)]
        return [rng.integers(0, 256, (f, size, size, 3), dtype=np.uint8) for f in lengths]
    raise ValueError(
        f"cannot make sample '{modality}' inputs for export; exportable: text, image, audio, video"
    )


def sample_batches(model: nn.Module, spec: GraphSpec) -> list[dict[str, torch.Tensor]]:
    """Processed batches feeding `spec` (classifier graphs: also one per missing modality)."""
    processor = model.processor
    batches = []
    for i, (n, words) in enumerate(SAMPLE_SHAPES):
        batch: dict[str, torch.Tensor] = {}
        for m in spec.modalities:
            batch.update(processor({m: raw_samples(m, processor, n, words, seed=i)}))
        if spec.name == "classifier":
            for m in spec.modalities:
                batch[f"{m}_present"] = torch.ones(n, dtype=torch.bool)
        batches.append(batch)
    if spec.name == "classifier" and len(spec.modalities) > 1:
        n = SAMPLE_SHAPES[-1][0]
        for m in spec.modalities:
            missing = dict(batches[-1])
            missing.update(placeholder_inputs(m, processor, n))
            missing[f"{m}_present"] = torch.zeros(n, dtype=torch.bool)
            batches.insert(0, missing)
    return batches
