"""EnsembleClassifier: several trained classifiers over the same task, predictions combined.

Wraps `omnifuse.fusion.FusionEnsemble` (mean of logits, or a stacking meta-classifier) with
the classifier interface (`processor`, `modalities`, `predict_proba`, class names), so the
evaluators and the benchmark treat an ensemble like any single model. In-memory only: save
the members, not the ensemble.
"""

from __future__ import annotations

import torch
from torch import nn

from omnifuse.fusion import FusionEnsemble
from omnifuse.models.fusion_classifier.model import ClassifierOutput, FusionClassifier
from omnifuse.models.heads import probabilities


class EnsembleClassifier(nn.Module):
    def __init__(
        self, members: list[FusionClassifier], mode: str = "mean", weights: list[float] | None = None
    ):
        super().__init__()
        if not members:
            raise ValueError("an ensemble needs at least one member")
        first = members[0]
        for m in members[1:]:
            if (m.task, m.class_names, m.label_key) != (first.task, first.class_names, first.label_key):
                raise ValueError("ensemble members must predict the same task with the same class names")
            if m.processor.fingerprint() != first.processor.fingerprint():
                raise ValueError("ensemble members must share preprocessing (processor.json); they differ")
        n = len(first.class_names) if first.class_names else 1
        self.ensemble = FusionEnsemble(members, mode=mode, num_outputs=n, weights=weights)
        self.task, self.class_names, self.label_key = first.task, first.class_names, first.label_key
        self.processor = first.processor
        self.modalities = sorted(set().union(*(m.modalities for m in members)))

    def forward(self, batch: dict[str, torch.Tensor]) -> ClassifierOutput:
        out = self.ensemble(batch)
        return ClassifierOutput(out.logits, aux={"member_logits": out.member_logits})

    @torch.no_grad()
    def predict_proba(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return probabilities(self.task, self.forward(batch).logits)
