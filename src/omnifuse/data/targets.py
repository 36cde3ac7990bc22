"""Training targets from sample labels: class indices, multi-hot vectors or real values.

A label the encoder cannot map (a class never seen in training, a missing label) becomes
an ignored target (-100 for classes, NaN for multi-label rows and regression), so the loss
skips it instead of training on a wrong value.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch

from omnifuse.data.sample import Sample

IGNORE_INDEX = -100
TaskKind = Literal["single_label", "multi_label", "regression"]


def label_of(sample: Sample, key: str) -> Any:
    return sample.labels.get(key, sample.meta.get(key))


def class_names_from(samples: Sequence[Sample], key: str, kind: TaskKind = "single_label") -> list[str]:
    """Sorted distinct labels (each item of a list label for multi-label) found under `key`."""
    names: set[str] = set()
    for s in samples:
        value = label_of(s, key)
        if value is None:
            continue
        items = value if kind == "multi_label" and isinstance(value, list) else [value]
        names.update(str(v) for v in items)
    if not names:
        raise ValueError(f"no sample has a '{key}' label; check the manifest's label column")
    return sorted(names)


@dataclass
class TargetEncoder:
    """Encodes the `key` label of samples for one task into the batch under `batch_key`."""

    key: str
    kind: TaskKind = "single_label"
    class_names: list[str] | None = None
    batch_key: str = "labels"

    def __post_init__(self) -> None:
        if self.kind != "regression" and not self.class_names:
            raise ValueError(f"a {self.kind} task needs class names (label '{self.key}')")
        self.index = {c: i for i, c in enumerate(self.class_names or [])}

    def encode(self, value: Any) -> Any:
        if self.kind == "single_label":
            return self.index.get(str(value), IGNORE_INDEX) if value is not None else IGNORE_INDEX
        if self.kind == "multi_label":
            row = [0.0] * len(self.index)
            if value is None:
                return [float("nan")] * len(self.index)
            for v in value if isinstance(value, list) else [value]:
                if str(v) in self.index:
                    row[self.index[str(v)]] = 1.0
            return row
        try:
            return float(value) if value is not None else float("nan")
        except (TypeError, ValueError) as err:
            raise ValueError(f"regression label '{self.key}' must be a number; got {value!r}") from err

    def __call__(self, samples: Sequence[Sample]) -> dict[str, torch.Tensor]:
        values = [self.encode(label_of(s, self.key)) for s in samples]
        dtype = torch.long if self.kind == "single_label" else torch.float32
        return {self.batch_key: torch.tensor(values, dtype=dtype)}


class Targets:
    """Several target encoders (multi-task), merged into one batch dict."""

    def __init__(self, encoders: Sequence[TargetEncoder]):
        self.encoders = list(encoders)

    def __call__(self, samples: Sequence[Sample]) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}
        for enc in self.encoders:
            out.update(enc(samples))
        return out
