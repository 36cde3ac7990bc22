"""MultiTaskModel: several prediction tasks over the same multimodal inputs.

Sharing (Ruder 2017, "An Overview of Multi-Task Learning in Deep Neural Networks",
arXiv:1706.05098):
- "hard": one set of encoders + fusion shared by every task, one head per task;
- "soft": every task has its own encoders + fusion, tied by an L2 penalty pulling each
  task's parameters towards their mean across tasks (Duong et al. 2015).
Heads are linear, or multi-branch MLPs with `head_hidden`. Task losses are summed with
fixed weights or with learned uncertainty weights (Kendall et al. 2018, arXiv:1705.07115:
sum_t exp(-s_t) L_t + s_t, with s_t = log sigma_t^2 learned).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from omnifuse.data.processors import Processor
from omnifuse.encoders.base import Encoder
from omnifuse.fusion import Fusion, build_fusion
from omnifuse.models.artifact import ArtifactMixin
from omnifuse.models.heads import TaskSpec, build_head, check_task, head_config, probabilities, task_loss
from omnifuse.models.multimodal import (
    check_fusion_fits,
    encode_modalities,
    encoders_config,
    encoders_from_config,
)
from omnifuse.models.multimodal_build import dual_encoder_processors, fusion_model_modalities
from omnifuse.models.multitask.build import build, targets
from omnifuse.models.multitask.config import MultiTaskConfig
from omnifuse.models.multitask.tasks import label_batch_key
from omnifuse.models.registry import register_model_kind

SHARING = ("hard", "soft")
WEIGHTINGS = ("fixed", "uncertainty")


@dataclass
class MultiTaskOutput:
    """logits: task -> (B, C_t); loss: the weighted sum; task_losses: task -> unweighted loss."""

    logits: dict[str, torch.Tensor]
    loss: torch.Tensor | None = None
    task_losses: dict[str, torch.Tensor] = field(default_factory=dict)


class _Trunk(nn.Module):
    """Encoders + fusion: the part that hard sharing shares and soft sharing copies per task."""

    def __init__(self, encoders: dict[str, Encoder], fusion: Fusion, inputs: str = "tokens"):
        super().__init__()
        check_fusion_fits(encoders, fusion, inputs)
        self.pooled_only = inputs == "pooled"
        self.encoders = nn.ModuleDict({m: encoders[m] for m in sorted(encoders)})
        self.fusion = fusion

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        features, present = encode_modalities(self.encoders, batch, self.pooled_only)
        return self.fusion(features, present).fused  # (B, F)


@register_model_kind(
    "multitask",
    config=MultiTaskConfig,
    build=build,
    modalities=fusion_model_modalities,
    capabilities=("classify",),
    evaluator="classification",
    targets=targets,
    processors=dual_encoder_processors,
)
class MultiTaskModel(ArtifactMixin, nn.Module):
    """One head per task over shared (hard) or per-task L2-tied (soft) encoders + fusion.

    Labels come in the batch as `labels/<task>`; a task whose labels are absent from a batch
    adds no loss. `forward` returns every task's logits, `predict_proba` their probabilities.
    """

    def __init__(
        self,
        encoders: dict[str, Encoder],
        fusion: Fusion,
        tasks: dict[str, TaskSpec],
        sharing: str = "hard",
        loss_weighting: str = "fixed",
        soft_l2: float = 1e-3,
        head_hidden: int | None = None,
        dropout: float = 0.1,
        inputs: str = "tokens",
        processor: Processor | None = None,
    ):
        super().__init__()
        if not tasks:
            raise ValueError("a multi-task model needs at least one task")
        if sharing not in SHARING:
            raise ValueError(f"unknown sharing '{sharing}'; known: {SHARING}")
        if loss_weighting not in WEIGHTINGS:
            raise ValueError(f"unknown loss_weighting '{loss_weighting}'; known: {WEIGHTINGS}")
        if fusion.decision_level:
            raise ValueError(
                f"fusion '{fusion.name}' decides itself; multi-task heads need a feature-level fusion"
            )
        self.tasks = {t: tasks[t] for t in sorted(tasks)}
        sizes = {t: check_task(s.kind, s.class_names) for t, s in self.tasks.items()}
        trunk = _Trunk(encoders, fusion, inputs)
        if sharing == "hard":
            self.trunks = nn.ModuleDict({"shared": trunk})
        else:  # each task starts from the same weights, then drifts as far as the L2 tie allows
            self.trunks = nn.ModuleDict({t: copy.deepcopy(trunk) for t in self.tasks})
        self.heads = nn.ModuleDict(
            {t: build_head(fusion.output_dim, n, head_hidden, dropout) for t, n in sizes.items()}
        )
        self.sharing, self.loss_weighting, self.soft_l2 = sharing, loss_weighting, soft_l2
        self.log_vars = (
            nn.Parameter(torch.zeros(len(self.tasks))) if loss_weighting == "uncertainty" else None
        )
        self.processor = processor or Processor({})

    @property
    def modalities(self) -> list[str]:
        return list(next(iter(self.trunks.values())).encoders)

    def soft_sharing_penalty(self) -> torch.Tensor:
        """sum over parameters of sum_t ||theta_t - mean_t theta||^2."""
        trunks = list(self.trunks.values())
        total = next(self.parameters()).new_zeros(())
        for params in zip(*(t.parameters() for t in trunks)):
            stacked = torch.stack(params)  # (n_tasks, *shape)
            total = total + (stacked - stacked.mean(0)).pow(2).sum()
        return total

    def forward(self, batch: dict[str, torch.Tensor]) -> MultiTaskOutput:
        if self.sharing == "hard":
            fused = self.trunks["shared"](batch)  # (B, F), computed once for every task
            logits = {t: self.heads[t](fused) for t in self.tasks}
        else:
            logits = {t: self.heads[t](self.trunks[t](batch)) for t in self.tasks}
        task_losses = {
            t: task_loss(s.kind, logits[t], batch[label_batch_key(t)])
            for t, s in self.tasks.items()
            if label_batch_key(t) in batch
        }
        if not task_losses:
            return MultiTaskOutput(logits)
        loss = self.combine(task_losses)
        if self.sharing == "soft" and self.soft_l2 > 0:
            loss = loss + self.soft_l2 * self.soft_sharing_penalty()
        return MultiTaskOutput(logits, loss, task_losses)

    def combine(self, task_losses: dict[str, torch.Tensor]) -> torch.Tensor:
        names = list(self.tasks)
        total = 0.0
        for t, loss in task_losses.items():
            if self.log_vars is None:
                total = total + self.tasks[t].weight * loss
            else:
                s = self.log_vars[names.index(t)]
                total = total + torch.exp(-s) * loss + s
        return total

    @torch.no_grad()
    def predict_proba(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        logits = self.forward(batch).logits
        return {t: probabilities(s.kind, logits[t]) for t, s in self.tasks.items()}

    # ---- artifact -------------------------------------------------------------------------
    def to_config(self) -> dict[str, Any]:
        trunk = next(iter(self.trunks.values()))
        return {
            "model_type": self.model_type,
            "tasks": {t: vars(s) for t, s in self.tasks.items()},
            "sharing": self.sharing,
            "loss_weighting": self.loss_weighting,
            "soft_l2": self.soft_l2,
            "encoders": encoders_config(trunk.encoders),
            "fusion": trunk.fusion.to_config(),
            "head": head_config(next(iter(self.heads.values()))),
            "inputs": "pooled" if trunk.pooled_only else "tokens",
        }

    @classmethod
    def from_config(cls, config: dict[str, Any], processor: Processor | None = None) -> MultiTaskModel:
        fusion_cfg = dict(config["fusion"])
        return cls(
            encoders_from_config(config["encoders"]),
            build_fusion(fusion_cfg.pop("name"), **fusion_cfg),
            {t: TaskSpec(**s) for t, s in config["tasks"].items()},
            sharing=config["sharing"],
            loss_weighting=config["loss_weighting"],
            soft_l2=config.get("soft_l2", 0.0),
            head_hidden=config["head"].get("hidden"),
            dropout=config["head"].get("dropout", 0.0),
            inputs=config.get("inputs", "tokens"),
            processor=processor,
        )
