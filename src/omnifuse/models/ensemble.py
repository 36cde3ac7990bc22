"""EnsembleClassifier: several trained classifiers over the same task, predictions combined, one artifact.

Wraps `omnifuse.fusion.FusionEnsemble` (mean of logits, a stacking meta-classifier, or a
weighted hard vote) with the classifier interface (`processor`, `modalities`, `predict_proba`,
class names), so the evaluators, the runtime and the benchmark treat an ensemble like any
single model. `save_pretrained` writes one artifact: config.json holds every member's config
(and how the ensemble was made: bagging seeds, boosting alphas), model.safetensors every
member's weights, processor.json the preprocessing they share.

Also a model kind (`model.type: ensemble`): a recipe lists trained member artifacts; training it
fine-tunes them together (or, with `mode: stack` and `freeze_members: true`, only the meta
classifier). `omnifuse train --ensemble bagging|boosting` builds one from a member recipe.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import nn

from omnifuse.data.processors import Processor
from omnifuse.fusion import FusionEnsemble
from omnifuse.fusion.ensemble import MODES
from omnifuse.models.artifact import ArtifactMixin, read_config, resolve_artifact_dir
from omnifuse.models.fusion_classifier.build import targets as classifier_targets
from omnifuse.models.fusion_classifier.model import ClassifierOutput
from omnifuse.models.heads import TaskSpec, probabilities
from omnifuse.models.registry import get_spec, register_model_kind


@dataclass
class EnsembleConfig:
    """An ensemble of trained classifier artifacts (`model.type: ensemble`)."""

    type: Literal["ensemble"] = "ensemble"
    """The model kind; selects this config in a recipe."""
    members: list[str] = field(default_factory=list)
    """Artifact directories of the members (same task, class names and preprocessing)."""
    mode: Literal["mean", "stack", "hard_vote"] = "mean"
    """How member logits combine: weighted mean, a learned linear meta-classifier, or a weighted hard vote."""
    weights: list[float] | None = None
    """One non-negative weight per member (mean, hard_vote); null: uniform."""
    freeze_members: bool = False
    """Train only the stacking meta-classifier."""

    def __post_init__(self) -> None:
        if len(self.members) < 2:
            raise ValueError(f"model.members must list at least 2 artifact directories; got {self.members}")
        if self.mode not in MODES:
            raise ValueError(f"model.mode must be one of {list(MODES)}; got {self.mode!r}")


def check_members(members: list[nn.Module]) -> None:
    """Members must predict the same task with the same classes, from the same preprocessing."""
    first = members[0]
    for i, m in enumerate(members[1:], start=1):
        if not get_spec(m.model_type).can("classify"):
            raise ValueError(f"ensemble member {i} is a {m.model_type}, which does not classify")
        if (m.task, m.label_key) != (first.task, first.label_key):
            raise ValueError(
                f"ensemble member {i} predicts {m.label_key!r} ({m.task}); member 0 predicts "
                f"{first.label_key!r} ({first.task}); members must share the task"
            )
        if m.class_names != first.class_names:
            extra = sorted(set(m.class_names or []) - set(first.class_names or []))
            lacking = sorted(set(first.class_names or []) - set(m.class_names or []))
            raise ValueError(
                f"ensemble members disagree on classes: member {i} has {len(m.class_names or [])} "
                f"({'extra ' + str(extra) if extra else ''}{' ' if extra and lacking else ''}"
                f"{'lacking ' + str(lacking) if lacking else ''}{'another order' if not extra and not lacking else ''}), "
                f"member 0 has {len(first.class_names or [])}; train every member with the same class_names"
            )
        if m.processor.fingerprint() != first.processor.fingerprint():
            raise ValueError(
                f"ensemble member {i} preprocesses differently from member 0 (processor.json differs); "
                "members must share preprocessing"
            )


def _build(cls: type[nn.Module], cfg: EnsembleConfig, processor: Processor, samples: Any = None) -> nn.Module:
    from omnifuse.models.factory import load_model

    members = [load_model(d).train() for d in cfg.members]
    model = cls(members, mode=cfg.mode, weights=cfg.weights, freeze_members=cfg.freeze_members)
    return model.train()


def _modalities(cfg: EnsembleConfig) -> list[str]:
    found: set[str] = set()
    for d in cfg.members:
        config = read_config(resolve_artifact_dir(d))
        found |= set(config.get("encoders") or config.get("towers") or {})
    return sorted(found)


def _processors(cfg: EnsembleConfig) -> dict[str, Any]:
    return dict(Processor.load(resolve_artifact_dir(cfg.members[0])).processors)


@register_model_kind(
    "ensemble",
    config=EnsembleConfig,
    build=_build,
    modalities=_modalities,
    capabilities=("classify",),
    evaluator="classification",
    targets=classifier_targets,
    processors=_processors,
)
class EnsembleClassifier(ArtifactMixin, nn.Module):
    """``EnsembleClassifier([clf_a, clf_b], mode="mean")``; ``info`` records how it was made."""

    def __init__(
        self,
        members: list[nn.Module],
        mode: str = "mean",
        weights: list[float] | None = None,
        freeze_members: bool = False,
        info: dict[str, Any] | None = None,
    ):
        super().__init__()
        if not members:
            raise ValueError("an ensemble needs at least one member")
        check_members(members)
        first = members[0]
        n = len(first.class_names) if first.class_names else 1
        self.ensemble = FusionEnsemble(
            members, mode=mode, num_outputs=n, weights=weights, freeze_members=freeze_members
        )
        self.task, self.class_names, self.label_key = first.task, first.class_names, first.label_key
        self.processor = first.processor
        self.info = dict(info or {})
        self.modalities = sorted(set().union(*(m.modalities for m in members)))

    @property
    def members(self) -> list[nn.Module]:
        return list(self.ensemble.members)

    @property
    def tasks(self) -> dict[str, TaskSpec]:
        """The one task, named '' (as for a FusionClassifier)."""
        return {"": TaskSpec(self.task, self.class_names, self.label_key)}

    def forward(self, batch: dict[str, torch.Tensor]) -> ClassifierOutput:
        out = self.ensemble(batch)
        loss = None
        if "labels" in batch:  # fine-tuning the ensemble (model.type: ensemble) uses the members' loss
            from omnifuse.models.heads import task_loss

            loss = task_loss(self.task, out.logits, batch["labels"])
        return ClassifierOutput(out.logits, loss, aux={"member_logits": out.member_logits})

    @torch.no_grad()
    def predict_proba(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return probabilities(self.task, self.forward(batch).logits)

    # ---- artifact -------------------------------------------------------------------------
    def to_config(self) -> dict[str, Any]:
        ens = self.ensemble
        return {
            "model_type": self.model_type,
            "task": self.task,  # the members' (what the runtime reads); from_config ignores these three
            "class_names": self.class_names,
            "label_key": self.label_key,
            "mode": ens.mode,
            "weights": ens.weights,
            "freeze_members": ens.freeze_members,
            "info": self.info,
            "members": [m.to_config() for m in ens.members],
        }

    @classmethod
    def from_config(cls, config: dict[str, Any], processor: Processor | None = None) -> EnsembleClassifier:
        processor = processor or Processor({})
        members = [get_spec(c["model_type"]).model_class.from_config(c, processor) for c in config["members"]]
        return cls(
            members,
            mode=config["mode"],
            weights=config.get("weights"),
            freeze_members=config.get("freeze_members", False),
            info=config.get("info"),
        )
