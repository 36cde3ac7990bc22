"""Recipe config -> FusionClassifier / MultiTaskModel: encoders, fusion, heads, class names.

Build-time checks name the problem and the fix: a token-based fusion over encoders that give
only pooled vectors, a fusion that cannot take this many modalities, mismatched sizes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from torch import nn

from omnifuse.data.processors import Processor
from omnifuse.data.sample import Sample
from omnifuse.data.targets import TargetEncoder, Targets, class_names_from, label_of
from omnifuse.encoders.base import Encoder
from omnifuse.encoders.factory import build_encoder
from omnifuse.encoders.lora import apply_lora
from omnifuse.fusion import build_fusion, check_inputs
from omnifuse.models.config import FusionClassifierConfig, FusionModelConfig, MultiTaskConfig, TaskConfig
from omnifuse.models.fusion_classifier import FusionClassifier
from omnifuse.models.multitask import MultiTaskModel, TaskSpec, label_batch_key


def dual_encoder_modalities(cfg: FusionModelConfig) -> list[str]:
    """The towers taken from `from_dual_encoder` (none without one)."""
    if not cfg.from_dual_encoder:
        return []
    from omnifuse.models.artifact import read_config, resolve_artifact_dir

    towers = sorted(read_config(resolve_artifact_dir(cfg.from_dual_encoder), "dual_encoder")["towers"])
    wanted = cfg.dual_encoder_towers if cfg.dual_encoder_towers is not None else towers
    unknown = sorted(set(wanted) - set(towers))
    if unknown:
        raise ValueError(f"dual_encoder_towers names {unknown}; {cfg.from_dual_encoder} has towers {towers}")
    return sorted(wanted)


def fusion_model_modalities(cfg: FusionModelConfig) -> list[str]:
    return sorted(set(dual_encoder_modalities(cfg)) | set(cfg.encoders))


def build_encoders(cfg: FusionModelConfig, processor: Processor, data_overrides) -> dict[str, Encoder]:
    """From-config towers, plus (overridden by) a trained DualEncoder's towers; then LoRA."""
    encoders: dict[str, Encoder] = {}
    taken = dual_encoder_modalities(cfg)
    if taken:
        from omnifuse.encoders.freezing import freeze
        from omnifuse.models.dual_encoder import DualEncoder

        towers = DualEncoder.from_pretrained(cfg.from_dual_encoder).train().towers
        for m in taken:
            encoders[m] = towers[m]
            if cfg.dual_encoder_trainable_layers is not None:
                freeze(encoders[m], cfg.dual_encoder_trainable_layers)
    both = sorted(set(taken) & set(cfg.encoders))
    if both:
        raise ValueError(
            f"{both} come both from from_dual_encoder and from encoders; drop them from one "
            "(dual_encoder_towers chooses which towers the artifact gives)"
        )
    for m, tower in sorted(cfg.encoders.items()):
        encoders[m] = build_encoder(tower, m, data_overrides(processor, m))
    if cfg.lora is not None:
        unknown = sorted(set(cfg.lora.towers) - set(encoders))
        if unknown:
            raise ValueError(
                f"lora.towers names {unknown}, which are not encoders of this model ({sorted(encoders)})"
            )
        for m in cfg.lora.towers or sorted(encoders):
            apply_lora(encoders[m], cfg.lora)
    return encoders


def build_fusion_for(cfg: FusionModelConfig, encoders: dict[str, Encoder], num_outputs: int | None):
    dims = {m: int(e.hidden_size) for m, e in encoders.items()}
    tokens = cfg.inputs == "tokens" and all(getattr(e, "provides_tokens", True) for e in encoders.values())
    check_inputs(cfg.fusion.name, dims, tokens_available=tokens, **cfg.fusion.kwargs)
    return build_fusion(cfg.fusion.name, dims, num_outputs=num_outputs, **cfg.fusion.kwargs)


def resolve_task(
    task: TaskConfig, samples: Sequence[Sample] | None
) -> tuple[list[str] | None, list[float] | None]:
    """Class names (from the config or the training labels) and class weights."""
    names = task.class_names
    if task.kind != "regression" and names is None:
        if not samples:
            raise ValueError(f"task '{task.label}' needs class_names or training data to find them in")
        names = class_names_from(samples, task.label, task.kind)
    weights = task.class_weights
    if weights == "balanced":
        if task.kind != "single_label":
            raise ValueError("class_weights 'balanced' is for single-label tasks; give a list instead")
        counts = Counter(str(label_of(s, task.label)) for s in samples or [])
        total = sum(counts[c] for c in names)
        weights = [total / (len(names) * max(counts[c], 1)) for c in names]
    return names, weights


def build_fusion_model(cfg: FusionModelConfig, processor: Processor, samples, data_overrides) -> nn.Module:
    encoders = build_encoders(cfg, processor, data_overrides)
    if isinstance(cfg, FusionClassifierConfig):
        names, weights = resolve_task(cfg.task, samples)
        n = 1 if cfg.task.kind == "regression" else len(names)
        return FusionClassifier(
            encoders, build_fusion_for(cfg, encoders, n), task=cfg.task.kind, class_names=names,
            label_key=cfg.task.label, head_hidden=cfg.head_hidden, dropout=cfg.dropout,
            class_weights=weights, inputs=cfg.inputs, processor=processor,
        )  # fmt: skip
    if isinstance(cfg, MultiTaskConfig):
        specs = {}
        for t, task in cfg.tasks.items():
            names, _ = resolve_task(task, samples)
            specs[t] = TaskSpec(task.kind, names, task.label, task.weight)
        return MultiTaskModel(
            encoders, build_fusion_for(cfg, encoders, None), specs, sharing=cfg.sharing,
            loss_weighting=cfg.loss_weighting, soft_l2=cfg.soft_l2, head_hidden=cfg.head_hidden,
            dropout=cfg.dropout, inputs=cfg.inputs, processor=processor,
        )  # fmt: skip
    raise ValueError(f"not a fusion model config: {type(cfg).__name__}")


def targets_for(model: nn.Module) -> Targets:
    """The label encoders that put a model's training targets into each batch."""
    if isinstance(model, MultiTaskModel):
        return Targets(
            [
                TargetEncoder(s.label_key, s.kind, s.class_names, label_batch_key(t))
                for t, s in model.tasks.items()
            ]
        )
    return Targets([TargetEncoder(model.label_key, model.task, model.class_names, "labels")])
