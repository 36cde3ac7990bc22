"""What building the fusion kinds (fusion_classifier, multitask) shares: encoders (from config
or a trained DualEncoder), the fusion module, class names and weights from the training data.

Build-time checks name the problem and the fix: a token-based fusion over encoders that give
only pooled vectors, a fusion that cannot take this many modalities, mismatched sizes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from omnifuse.data.processors import Processor
from omnifuse.data.sample import Sample
from omnifuse.data.targets import class_names_from, label_of
from omnifuse.encoders.base import Encoder
from omnifuse.encoders.factory import build_encoder
from omnifuse.encoders.freezing import freeze
from omnifuse.encoders.lora import apply_lora
from omnifuse.fusion import Fusion, build_fusion, check_inputs
from omnifuse.models.artifact import read_config, resolve_artifact_dir
from omnifuse.models.data_overrides import data_overrides
from omnifuse.models.dual_encoder.model import DualEncoder
from omnifuse.models.multimodal_config import FusionModelConfig, TaskConfig


def dual_encoder_modalities(cfg: FusionModelConfig) -> list[str]:
    """The towers taken from `from_dual_encoder` (none without one)."""
    if not cfg.from_dual_encoder:
        return []
    towers = sorted(read_config(resolve_artifact_dir(cfg.from_dual_encoder), "dual_encoder")["towers"])
    wanted = cfg.dual_encoder_towers if cfg.dual_encoder_towers is not None else towers
    unknown = sorted(set(wanted) - set(towers))
    if unknown:
        raise ValueError(f"dual_encoder_towers names {unknown}; {cfg.from_dual_encoder} has towers {towers}")
    return sorted(wanted)


def pretrained_modalities(cfg: FusionModelConfig) -> list[str]:
    """The encoders of a `from_pretrained` artifact (none without one)."""
    if not cfg.from_pretrained:
        return []
    config = read_config(resolve_artifact_dir(cfg.from_pretrained))
    if "encoders" not in config or "fusion" not in config:
        raise ValueError(
            f"from_pretrained: {cfg.from_pretrained} holds a '{config['model_type']}' without encoders and a "
            "fusion module; name a vl_pretrain (or fusion classifier) artifact"
        )
    return sorted(config["encoders"])


def fusion_model_modalities(cfg: FusionModelConfig) -> list[str]:
    """Every modality the model consumes: the taken DualEncoder towers, the configured encoders and
    a pre-trained artifact's encoders."""
    return sorted(set(dual_encoder_modalities(cfg)) | set(cfg.encoders) | set(pretrained_modalities(cfg)))


def dual_encoder_processors(cfg: FusionModelConfig) -> dict[str, Processor]:
    """The preprocessing saved with `from_dual_encoder` (for the towers taken from it) or with
    `from_pretrained` (its text processor without MLM masking)."""
    from omnifuse.data.processors import TextProcessor

    if cfg.from_pretrained:
        saved = Processor.load(resolve_artifact_dir(cfg.from_pretrained)).processors
        return {m: TextProcessor(p.tokenizer, p.max_length) if m == "text" else p for m, p in saved.items()}
    taken = dual_encoder_modalities(cfg)
    if not taken:
        return {}
    saved = Processor.load(resolve_artifact_dir(cfg.from_dual_encoder)).processors
    return {m: saved[m] for m in taken}


def build_parts(
    cfg: FusionModelConfig, processor: Processor, num_outputs: int | None
) -> tuple[dict[str, Encoder], Fusion]:
    """The encoders and the fusion module: from a `from_pretrained` artifact, or from the config."""
    if cfg.from_pretrained:
        from omnifuse.models.factory import load_model

        pretrained_modalities(cfg)  # a clear error for an artifact without encoders and fusion
        model = load_model(cfg.from_pretrained).train()
        if model.fusion.decision_level:
            raise ValueError(
                f"from_pretrained: the fusion of {cfg.from_pretrained} decides itself; no head fits"
            )
        return dict(model.encoders.items()), model.fusion
    encoders = build_encoders(cfg, processor)
    return encoders, build_fusion_for(cfg, encoders, num_outputs)


def build_encoders(cfg: FusionModelConfig, processor: Processor) -> dict[str, Encoder]:
    """From-config towers, plus (overridden by) a trained DualEncoder's towers; then LoRA."""
    encoders: dict[str, Encoder] = {}
    taken = dual_encoder_modalities(cfg)
    if taken:
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
        unknown = sorted(set(cfg.lora.encoders) - set(encoders))
        if unknown:
            raise ValueError(
                f"lora.encoders names {unknown}, which are not encoders of this model ({sorted(encoders)})"
            )
        for m in cfg.lora.encoders or sorted(encoders):
            apply_lora(encoders[m], cfg.lora)
    return encoders


def build_fusion_for(cfg: FusionModelConfig, encoders: dict[str, Encoder], num_outputs: int | None) -> Fusion:
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
