"""The one thin factory: a model config (+ processor) -> a built model; a directory -> a loaded model."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from torch import nn

from omnifuse.data.processors import Processor
from omnifuse.data.sample import Sample
from omnifuse.encoders.factory import build_encoder
from omnifuse.layers.surgery import apply_compression
from omnifuse.losses import build_loss
from omnifuse.models.artifact import load_weights, read_config, resolve_artifact_dir
from omnifuse.models.config import ModelConfig
from omnifuse.models.dual_encoder import DualEncoder
from omnifuse.models.fusion_classifier import FusionClassifier
from omnifuse.models.fusion_factory import build_fusion_model
from omnifuse.models.multitask import MultiTaskModel
from omnifuse.models.registry import MODEL_KINDS, ModelSpec

MODEL_TYPES: dict[str, type[nn.Module]] = {
    "dual_encoder": DualEncoder,
    "fusion_classifier": FusionClassifier,
    "multitask": MultiTaskModel,
}


def first_token_id(tokenizer, *names: str) -> int | None:
    return next((getattr(tokenizer, n) for n in names if getattr(tokenizer, n, None) is not None), None)


def data_overrides(processor: Processor, modality: str) -> dict[str, Any]:
    """Config fields of a from-scratch tower that the data decides."""
    if modality not in processor.processors:
        return {}
    proc = processor[modality]
    if modality == "text":
        tok = proc.tokenizer
        ids = {
            # the ends of a text, for towers that pool at the end-of-text token (CLIP)
            "bos_token_id": first_token_id(tok, "cls_token_id", "bos_token_id"),
            "eos_token_id": first_token_id(tok, "sep_token_id", "eos_token_id"),
        }
        return {
            "vocab_size": proc.vocab_size,
            "max_position_embeddings": max(64, proc.max_length),
            "pad_token_id": tok.pad_token_id or 0,
            **{k: v for k, v in ids.items() if v is not None},
        }
    if modality == "image":
        return {"image_size": proc.settings.size}
    if modality == "video":  # frame size for the per-frame/clip model, clip length for temporal positions
        return {"image_size": proc.settings.image.size, "num_frames": proc.settings.num_frames}
    if modality == "audio" and proc.settings.features == "log_mel":  # AST: mel bins x frames
        return {"num_mel_bins": proc.settings.n_mels, "max_length": proc.settings.max_frames}
    return {}


def registered_spec(cfg) -> ModelSpec | None:
    """The spec of a recipe's model config when its kind is registered (and not built here)."""
    kind = getattr(cfg, "type", None)
    return MODEL_KINDS.get(kind) if kind not in MODEL_TYPES else None


def build_model(cfg, processor: Processor, samples: Sequence[Sample] | None = None) -> nn.Module:
    """A model from its recipe config; `samples` (training data) give classifiers their classes."""
    spec = registered_spec(cfg)
    if spec is not None:
        return spec.build(cfg, processor, samples)
    if not isinstance(cfg, ModelConfig):
        return build_fusion_model(cfg, processor, samples, data_overrides)
    if cfg.from_hf:
        model = DualEncoder.from_hf(cfg.from_hf)
        model.processor = processor if processor.processors else model.processor
        return model.train()
    missing = [m for m in cfg.towers if m not in processor.processors]
    if missing:
        raise ValueError(
            f"no processor for tower(s) {missing}; the data/processor has {processor.modalities}"
        )
    towers = {m: build_encoder(t, m, data_overrides(processor, m)) for m, t in sorted(cfg.towers.items())}
    return DualEncoder(
        towers,
        cfg.embed_dim,
        build_loss(cfg.loss, **cfg.loss_kwargs),
        projection=cfg.projection,
        init_temperature=cfg.init_temperature,
        init_bias=cfg.init_bias,
        learn_temperature=cfg.learn_temperature,
        anchor=cfg.anchor,
        processor=processor,
    )


def load_model(dir_or_hub_name: str | os.PathLike) -> nn.Module:
    """Load any omnifuse artifact, dispatching on `model_type` in its config.json."""
    directory = resolve_artifact_dir(dir_or_hub_name)  # once: a hub name downloads here
    config = read_config(directory)
    known = {**{n: s.model_class for n, s in MODEL_KINDS.items()}, **MODEL_TYPES}
    if config["model_type"] not in known:
        raise ValueError(f"unknown model_type '{config['model_type']}'; known: {sorted(known)}")
    model_cls = known[config["model_type"]]
    if "compression" in config:  # int8 / low-rank / pruned modules are rebuilt before the weights load
        model = model_cls.from_config(config, Processor.load(directory))
        apply_compression(model, config["compression"])
        load_weights(model, directory)
        return model.eval()
    return model_cls.from_pretrained(directory)
