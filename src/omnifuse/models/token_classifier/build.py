"""Recipe config (+ processor, training samples) -> a fresh TokenClassifier; its training targets."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from omnifuse.data.processors import Processor
from omnifuse.data.sample import Sample
from omnifuse.data.token_labels import TokenLabelEncoder, label_names_from
from omnifuse.models.multimodal_build import build_parts, fusion_model_modalities
from omnifuse.models.token_classifier.config import TokenClassifierConfig


def modalities(cfg: TokenClassifierConfig) -> list[str]:
    """The fusion model's modalities; text is required (its words are labelled)."""
    found = fusion_model_modalities(cfg)
    if "text" not in found:
        raise ValueError(f"a token classifier labels text words: it needs a text encoder; it has {found}")
    return found


def build(
    cls: type[nn.Module],
    cfg: TokenClassifierConfig,
    processor: Processor,
    samples: Sequence[Sample] | None = None,
) -> nn.Module:
    """`cls` is the TokenClassifier class (bound by the registry); the tag names come from
    `cfg.label_names` or else from the tags of `samples`."""
    names = cfg.label_names
    if names is None:
        if not samples:
            raise ValueError(
                f"model.label_names is not set and there is no training data to find the '{cfg.label}' tags in"
            )
        names = label_names_from(samples, cfg.label)
    encoders, fusion = build_parts(cfg, processor, len(names))
    return cls(
        encoders, fusion, label_names=names, label_key=cfg.label, head_hidden=cfg.head_hidden,
        dropout=cfg.dropout, inputs=cfg.inputs, processor=processor,
    ).train()  # fmt: skip


def targets(model: nn.Module) -> TokenLabelEncoder:
    """Word-aligned ``text`` ids and ``token_labels`` for each training batch."""
    return model.label_encoder()
