"""The thin factory (timm's `_factory.py`): a recipe config -> a built model; a directory -> a loaded one.

Every kind is a registered `ModelSpec` (`omnifuse.models.registry`); this module only looks the
kind up. Importing `omnifuse.models` imports (and so registers) every built-in kind.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from torch import nn

from omnifuse.data.processors import Processor
from omnifuse.data.sample import Sample
from omnifuse.layers.surgery import apply_compression
from omnifuse.models.artifact import load_weights, read_config, resolve_artifact_dir
from omnifuse.models.data_overrides import data_overrides, first_token_id  # noqa: F401  (re-exported)
from omnifuse.models.registry import MODEL_KINDS, get_spec

MODEL_TYPES = MODEL_KINDS
"""The registered kinds by name (the registry itself; `name in MODEL_TYPES` asks if one exists)."""


def build_model(cfg, processor: Processor, samples: Sequence[Sample] | None = None) -> nn.Module:
    """A fresh model from its recipe config (`cfg.type` names the kind); `samples` (training
    data) give classifiers their classes."""
    return get_spec(cfg.type).build(cfg, processor, samples)


def load_model(dir_or_hub_name: str | os.PathLike) -> nn.Module:
    """Load any omnifuse artifact; `model_type` in its config.json names the kind."""
    directory = resolve_artifact_dir(dir_or_hub_name)  # once: a hub name downloads here
    config = read_config(directory)
    model_cls = get_spec(config["model_type"]).model_class
    if "compression" in config:  # int8 / low-rank / pruned modules are rebuilt before the weights load
        model = model_cls.from_config(config, Processor.load(directory))
        apply_compression(model, config["compression"])
        load_weights(model, directory)
        return model.eval()
    return model_cls.from_pretrained(directory)
