"""Quality of a model on a data split, by model type: a small registry the model types extend.

Each function returns metrics (higher is better) and names its primary one, which `--max-drop`
watches. `register_quality("my_type", fn)` adds a model type.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from omnifuse.data.labels import require_label_key
from omnifuse.data.sample import Sample
from omnifuse.models.registry import spec_of


@dataclass
class Quality:
    """metrics: name -> value (higher is better); primary: the name `--max-drop` watches."""

    metrics: dict[str, float]
    primary: str


QualityFn = Callable[[nn.Module, Sequence[Sample], str, int], Quality]
QUALITY: dict[str, QualityFn] = {}


def register_quality(model_type: str, fn: QualityFn) -> None:
    QUALITY[model_type] = fn


def dual_encoder_quality(
    model: nn.Module, samples: Sequence[Sample], label_key: str, batch_size: int
) -> Quality:
    """Zero-shot top-1 on `label_key` (single-object scenes when the data marks them) and R@1 both ways."""
    from omnifuse.eval.evaluator import DualEncoderEvaluator

    single = any(s.meta.get("n_objects") == 1 for s in samples)
    evaluator = DualEncoderEvaluator(
        samples,
        batch_size=batch_size,
        max_items=len(samples),
        label_key=label_key,
        only_single_object=single,
        prefix="",
    )
    raw = evaluator(model)
    a, b = evaluator.pair
    metrics = {f"{a}_to_{b}/R@1": raw[f"{a}_to_{b}/R@1"], f"{b}_to_{a}/R@1": raw[f"{b}_to_{a}/R@1"]}
    if "zero_shot/top1" in raw:
        metrics = {"zero_shot/top1": raw["zero_shot/top1"], **metrics}
    return Quality(metrics, next(iter(metrics)))


@torch.no_grad()
def classifier_quality(
    model: nn.Module, samples: Sequence[Sample], label_key: str, batch_size: int
) -> Quality:
    """Accuracy of `predict_proba` (argmax) against the model's own label key, on labelled samples."""
    from omnifuse.deploy.compress.data import iterate_batches

    was_training = model.training
    model.eval()
    correct = total = 0
    for batch in iterate_batches(model, samples, batch_size):
        labels = batch.pop("labels")  # (B,) class indices, -100 where unknown
        pred = model.predict_proba(batch).argmax(-1)  # (B,)
        known = labels >= 0
        correct += int((pred[known] == labels[known]).sum())
        total += int(known.sum())
    model.train(was_training)
    if total == 0:
        raise ValueError(f"no evaluation sample has a known '{model.label_key}' label")
    return Quality({"accuracy": correct / total}, "accuracy")


register_quality("dual_encoder", dual_encoder_quality)
register_quality("fusion_classifier", classifier_quality)


DEFAULT_LABEL_KEY = "color_shape"
"""The zero-shot label used when none is named and the data has it (the shapes world)."""


def measure_quality(
    model: nn.Module, samples: Sequence[Sample], label_key: str | None, batch_size: int = 128
) -> Quality:
    """The kind's quality metrics on `samples`. A named `label_key` (zero-shot classes of a
    model that can `zero_shot`) that no sample has is an error naming the keys that exist;
    None uses `DEFAULT_LABEL_KEY` when the data has it, else retrieval only."""
    spec = spec_of(model)  # a ValueError naming the class when it is no registered kind
    kind = spec.name
    if label_key is None:
        label_key = DEFAULT_LABEL_KEY if any(DEFAULT_LABEL_KEY in s.labels for s in samples) else None
    elif spec.can("zero_shot"):
        require_label_key(samples, label_key, "compress --data", column_option=None)
    if kind not in QUALITY:
        raise ValueError(f"no quality function for a '{kind}'; known: {sorted(QUALITY)}")
    return QUALITY[kind](model, samples, label_key, batch_size)
