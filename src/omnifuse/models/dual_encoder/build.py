"""Recipe config (+ processor) -> a fresh DualEncoder: towers from scratch/HF, or a CLIP/SigLIP import."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from omnifuse.data.processors import Processor
from omnifuse.data.sample import Sample
from omnifuse.encoders.factory import build_encoder
from omnifuse.losses import build_loss
from omnifuse.models.data_overrides import data_overrides
from omnifuse.models.dual_encoder.config import DualEncoderConfig


def build(
    cls: type[nn.Module],
    cfg: DualEncoderConfig,
    processor: Processor,
    samples: Sequence[Sample] | None = None,
) -> nn.Module:
    """`cls` is the DualEncoder class (bound by the registry); `samples` are not needed."""
    if cfg.from_hf:
        model = cls.from_hf(cfg.from_hf)
        model.processor = processor if processor.processors else model.processor
        return model.train()
    missing = [m for m in cfg.encoders if m not in processor.processors]
    if missing:
        raise ValueError(
            f"no processor for encoder(s) {missing}; the data/processor has {processor.modalities}"
        )
    towers = {m: build_encoder(t, m, data_overrides(processor, m)) for m, t in sorted(cfg.encoders.items())}
    return cls(
        towers,
        cfg.embed_dim,
        build_loss(cfg.loss, **cfg.loss_kwargs),
        projection=cfg.projection,
        init_temperature=cfg.init_temperature,
        init_bias=cfg.init_bias,
        learn_temperature=cfg.learn_temperature,
        anchor=cfg.anchor,
        processor=processor,
    )
