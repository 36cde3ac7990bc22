"""The evaluator interface: what the trainer, `omnifuse eval` and a model kind's spec rely on."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from omnifuse.data.sample import Sample


class Evaluator:
    """Validation metrics of a model on fixed samples.

    A model kind names its evaluator in its spec (`evaluator="retrieval"`); the trainer builds
    it with :meth:`from_config` and calls it every `eval_every` steps.
    """

    prefix: str = "val/"

    @classmethod
    def from_config(
        cls, config: Any, samples: Sequence[Sample], model: torch.nn.Module, prefix: str = "val/"
    ):
        """Build from an `EvalConfig` (batch_size, max_items, label_key, class_names, templates,
        only_single_object, group_key), the validation samples and the model to evaluate."""
        raise NotImplementedError

    def evaluate(self, model: torch.nn.Module) -> tuple[dict[str, float], dict[str, Any]]:
        """(metrics named without the prefix, details such as per-class reports; may be empty)."""
        raise NotImplementedError

    def __call__(self, model: torch.nn.Module) -> dict[str, float]:
        """The metrics, each name prefixed (`val/...`): what the trainer logs."""
        return {self.prefix + k: v for k, v in self.evaluate(model)[0].items()}

    def write_details(self, model: torch.nn.Module, out_dir: Path) -> list[Path]:
        """Evaluate `model` and write detailed reports (per-class JSON, plots) under `out_dir`;
        the files written (none by default)."""
        return []
