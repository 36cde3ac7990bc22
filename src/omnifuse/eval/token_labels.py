"""The evaluator of token-labelling models (a kind that can `label_tokens`): per-word tags scored
with :mod:`omnifuse.eval.token_metrics` (token accuracy; entity precision / recall / F1 as seqeval)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from omnifuse.data.sample import Sample
from omnifuse.data.token_labels import words_and_tags
from omnifuse.eval.base import Evaluator
from omnifuse.eval.registry import register_evaluator
from omnifuse.eval.token_metrics import entity_report, token_metrics


@register_evaluator("token_labels")
class TokenLabelEvaluator(Evaluator):
    """Metrics ``accuracy`` (tokens = words), ``precision``, ``recall``, ``f1`` (entities, micro);
    details: ``per_label``, the entity report per tag type. Words past the tokenizer's length
    count as predicted ``O``. The model gives ``label_samples(samples, batch_size)``."""

    def __init__(
        self,
        samples: Sequence[Sample],
        label_key: str,
        batch_size: int = 256,
        max_items: int | None = 1000,
        prefix: str = "val/",
    ) -> None:
        self.samples = list(samples)[:max_items] if max_items else list(samples)
        self.label_key, self.batch_size, self.prefix = label_key, batch_size, prefix

    @classmethod
    def from_config(
        cls, config: Any, samples: Sequence[Sample], model: torch.nn.Module, prefix: str = "val/"
    ):
        return cls(samples, model.label_key, config.batch_size, config.max_items, prefix=prefix)

    def tags(self, model: Any) -> tuple[list[list[str]], list[list[str]]]:
        """True and predicted tags, one per word of each sample."""
        true = []
        for i, s in enumerate(self.samples):
            tags = words_and_tags(s, self.label_key, i)[1]
            if tags is None:
                raise ValueError(
                    f"{s.meta.get('source') or f'row {i}'}: no '{self.label_key}' tags to score against; "
                    f"read them as labels (omnifuse eval: --label-column {self.label_key})"
                )
            true.append(tags)
        pred = [
            [label for _, label in row] + ["O"] * (len(t) - len(row))
            for row, t in zip(model.label_samples(self.samples, self.batch_size), true)
        ]
        return true, pred

    def evaluate(self, model: Any) -> tuple[dict[str, float], dict[str, Any]]:
        true, pred = self.tags(model)
        return token_metrics(true, pred), {"per_label": entity_report(true, pred)}

    def score(self, metrics: dict[str, float]) -> float:
        return metrics[f"{self.prefix}f1"]

    def write_details(self, model: Any, out_dir: Path) -> list[Path]:
        """``per_label.json``: the entity report per tag type, with micro / macro / weighted averages."""
        out_dir.mkdir(parents=True, exist_ok=True)
        path = out_dir / "per_label.json"
        path.write_text(json.dumps(self.evaluate(model)[1]["per_label"], indent=2))
        return [path]
