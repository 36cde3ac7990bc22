"""FusionClassifier: an encoder per modality, a fusion module and a head.

The BERT+ViT-style multimodal classifier generalised: any encoders, any strategy from
`omnifuse.fusion`, and single-label, multi-label or regression targets. A sample may lack
some modalities (`<modality>_present` in the batch); the fusion module masks them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from omnifuse.data.processors import Processor
from omnifuse.encoders.base import Encoder
from omnifuse.fusion import Fusion, build_fusion
from omnifuse.models.artifact import ArtifactMixin
from omnifuse.models.fusion_classifier.build import build, targets
from omnifuse.models.fusion_classifier.config import FusionClassifierConfig
from omnifuse.models.graphs import classifier_graph
from omnifuse.models.heads import TaskSpec, build_head, check_task, head_config, probabilities, task_loss
from omnifuse.models.multimodal import (
    check_fusion_fits,
    encode_modalities,
    encoders_config,
    encoders_from_config,
)
from omnifuse.models.multimodal_build import dual_encoder_processors, fusion_model_modalities
from omnifuse.models.registry import register_model_kind


@dataclass
class ClassifierOutput:
    """logits: (B, C) (regression: (B, 1)); loss when the batch has `labels`; fused: (B, F)."""

    logits: torch.Tensor
    loss: torch.Tensor | None = None
    fused: torch.Tensor | None = None
    aux: dict[str, torch.Tensor] = field(default_factory=dict)


@register_model_kind(
    "fusion_classifier",
    config=FusionClassifierConfig,
    export_graphs=classifier_graph,  # one ONNX graph: every modality + presence flags -> probabilities
    build=build,
    modalities=fusion_model_modalities,
    capabilities=("classify",),
    evaluator="classification",
    targets=targets,
    processors=dual_encoder_processors,
)
class FusionClassifier(ArtifactMixin, nn.Module):
    """Built from modules: ``FusionClassifier({"text": t, "image": i}, build_fusion("gated", dims), ...)``.

    task: "single_label" (softmax, cross-entropy), "multi_label" (sigmoid, BCE) or
    "regression" (one output, MSE). `class_names` are saved with the artifact; `class_weights`
    (C,) weight the loss for imbalanced classes. `inputs`: "tokens" gives the fusion token
    sequences and pooled vectors, "pooled" only pooled vectors (token-level strategies refuse). Decision-level fusion (late fusion) already
    gives logits, so no head is added on top of it.
    """

    def __init__(
        self,
        encoders: dict[str, Encoder],
        fusion: Fusion,
        task: str = "single_label",
        class_names: list[str] | None = None,
        label_key: str = "label",
        head_hidden: int | None = None,
        dropout: float = 0.1,
        class_weights: list[float] | None = None,
        inputs: str = "tokens",
        processor: Processor | None = None,
    ):
        super().__init__()
        num_outputs = check_task(task, class_names)
        check_fusion_fits(encoders, fusion, inputs)
        if fusion.decision_level and getattr(fusion, "num_outputs", num_outputs) != num_outputs:
            raise ValueError(
                f"fusion '{fusion.name}' gives {fusion.num_outputs} outputs; the task has {num_outputs}"
            )
        if class_weights is not None and len(class_weights) != num_outputs:
            raise ValueError(f"class_weights has {len(class_weights)} values for {num_outputs} classes")
        self.encoders = nn.ModuleDict({m: encoders[m] for m in sorted(encoders)})
        self.fusion = fusion
        self.head = (
            None
            if fusion.decision_level
            else build_head(fusion.output_dim, num_outputs, head_hidden, dropout)
        )
        self.task = task
        self.class_names = list(class_names) if class_names else None
        self.label_key = label_key
        self.inputs = inputs
        weights = torch.tensor(class_weights, dtype=torch.float32) if class_weights is not None else None
        self.register_buffer("class_weights", weights, persistent=False)
        self.processor = processor or Processor({})

    @property
    def modalities(self) -> list[str]:
        return list(self.encoders)

    @property
    def tasks(self) -> dict[str, TaskSpec]:
        """The one task, named '' (classifiers share this view with the multi-task model)."""
        return {"": TaskSpec(self.task, self.class_names, self.label_key)}

    def forward(self, batch: dict[str, torch.Tensor]) -> ClassifierOutput:
        features, present = encode_modalities(
            self.encoders, batch
        )  # per modality: tokens (B, T, D), pooled (B, D)
        out = self.fusion(features, present)
        logits = out.logits if out.logits is not None else self.head(out.fused)  # (B, C)
        loss = (
            task_loss(self.task, logits, batch["labels"], self.class_weights) if "labels" in batch else None
        )
        return ClassifierOutput(logits, loss, out.fused, out.aux)

    @torch.no_grad()
    def predict_proba(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """(B, C) probabilities (sigmoid per class for multi-label; the value for regression)."""
        return probabilities(self.task, self.forward(batch).logits)

    # ---- artifact -------------------------------------------------------------------------
    def to_config(self) -> dict[str, Any]:
        return {
            "model_type": self.model_type,
            "task": self.task,
            "class_names": self.class_names,
            "label_key": self.label_key,
            "encoders": encoders_config(self.encoders),
            "fusion": self.fusion.to_config(),
            "head": head_config(self.head) if self.head is not None else None,
            "class_weights": self.class_weights.tolist() if self.class_weights is not None else None,
            "inputs": self.inputs,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any], processor: Processor | None = None) -> FusionClassifier:
        encoders = encoders_from_config(config["encoders"])
        fusion_cfg = dict(config["fusion"])
        head = config.get("head") or {}
        return cls(
            encoders,
            build_fusion(fusion_cfg.pop("name"), **fusion_cfg),
            task=config["task"],
            class_names=config.get("class_names"),
            label_key=config.get("label_key", "label"),
            head_hidden=head.get("hidden"),
            dropout=head.get("dropout", 0.0),
            class_weights=config.get("class_weights"),
            inputs=config.get("inputs", "tokens"),
            processor=processor,
        )
