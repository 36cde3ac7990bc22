"""Recipe config (+ processor, training samples) -> a fresh FusionClassifier; its training targets."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from omnifuse.data.processors import Processor
from omnifuse.data.sample import Sample
from omnifuse.data.targets import TargetEncoder, Targets
from omnifuse.models.fusion_classifier.config import FusionClassifierConfig
from omnifuse.models.multimodal_build import build_parts, resolve_task


def build(
    cls: type[nn.Module],
    cfg: FusionClassifierConfig,
    processor: Processor,
    samples: Sequence[Sample] | None = None,
) -> nn.Module:
    """`cls` is the FusionClassifier class (bound by the registry); the class names come from
    `cfg.task.class_names` or else from the labels of `samples`."""
    names, weights = resolve_task(cfg.task, samples)
    n = 1 if cfg.task.kind == "regression" else len(names)
    encoders, fusion = build_parts(cfg, processor, n)
    return cls(
        encoders, fusion, task=cfg.task.kind, class_names=names,
        label_key=cfg.task.label, head_hidden=cfg.head_hidden, dropout=cfg.dropout,
        class_weights=weights, inputs=cfg.inputs, processor=processor,
    )  # fmt: skip


def targets(model: nn.Module) -> Targets:
    """The label encoder that puts the classifier's training target into each batch (`labels`)."""
    return Targets([TargetEncoder(model.label_key, model.task, model.class_names, "labels")])
