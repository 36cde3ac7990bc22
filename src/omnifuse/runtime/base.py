"""The predictor contract shared by every backend (PyTorch, ONNX Runtime fp32/int8).

A predictor takes raw inputs (strings, image paths/bytes/PIL images), preprocesses them with
the artifact's own `processor.json`, runs the model in batches and returns numpy arrays, so
callers (the server, the index builder, benchmarks) never depend on the backend.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from omnifuse.data.processors import Processor
from omnifuse.models.registry import ModelSpec, get_spec
from omnifuse.models.zero_shot import DEFAULT_TEMPLATES, class_prompts, templates_of, zero_shot_probs

__all__ = ["DEFAULT_TEMPLATES", "LabelScore", "Predictor", "zero_shot_probs"]


@dataclass
class LabelScore:
    label: str
    score: float


class Predictor(ABC):
    """Same API for every backend: `embed`, `classify`, `modalities`, `fingerprint`."""

    backend: str = "?"

    def __init__(self, config: dict[str, Any], processor: Processor, batch_size: int = 32):
        self.config = config
        self.processor = processor
        self.batch_size = batch_size

    @property
    def model_type(self) -> str:
        return self.config["model_type"]

    @property
    def spec(self) -> ModelSpec:
        """The model kind's spec: what this model can do (`predictor.can("embed")`)."""
        import omnifuse.models  # noqa: F401  (importing the package registers every kind)

        return get_spec(self.model_type)

    def can(self, capability: str) -> bool:
        return self.spec.can(capability)

    @property
    def modalities(self) -> list[str]:
        """Modalities this predictor can take as input."""
        return self.processor.modalities

    @property
    def fingerprint(self) -> str:
        """Identifies model + preprocessing (an index built with another model is refused)."""
        return self.config.get("fingerprint") or self.processor.fingerprint()

    # ---- backend hooks --------------------------------------------------------------------
    @abstractmethod
    def _embed_batch(self, modality: str, batch: dict[str, torch.Tensor]) -> np.ndarray:
        """A processed batch of one modality -> (B, E) float32 L2-normalised embeddings."""

    def _classify_batch(self, batch: dict[str, torch.Tensor]) -> np.ndarray:
        """A processed multimodal batch -> (B, C) class probabilities (trained-head models)."""
        raise ValueError(f"a {self.model_type} has no classification head; give zero-shot labels")

    @property
    def logit_scale(self) -> float:
        """The model's (clamped) temperature: zero-shot logits are this times cosine similarity."""
        return float(np.exp(self.config.get("logit_scale", np.log(100.0))))

    def _logit_scale(self) -> float:  # the former private name
        return self.logit_scale

    @property
    def zero_shot_templates(self) -> list[str]:
        """The prompt templates saved with the model (the defaults for an artifact without them)."""
        return templates_of(self.config)

    # ---- public API -----------------------------------------------------------------------
    def _check_modality(self, modality: str) -> None:
        if modality not in self.modalities:
            raise ValueError(f"this model takes {self.modalities}; got '{modality}'")

    def embed(self, modality: str, items: Sequence[Any]) -> np.ndarray:
        """Raw items of one modality -> (N, E) float32 embeddings (L2-normalised)."""
        self._check_modality(modality)
        self.spec.require("embed", "embeddings")
        if not len(items):
            raise ValueError("no items to embed")
        chunks = []
        for i in range(0, len(items), self.batch_size):
            batch = self.processor({modality: list(items[i : i + self.batch_size])})
            chunks.append(self._embed_batch(modality, batch))
        return np.concatenate(chunks).astype(np.float32, copy=False)

    @property
    def class_names(self) -> list[str] | None:
        """The trained head's classes (classifiers); None for a dual encoder."""
        return self.config.get("class_names")

    def classify(
        self,
        inputs: dict[str, Sequence[Any]],
        labels: Sequence[str] | None = None,
        templates: Sequence[str] | None = None,
        top_k: int | None = None,
    ) -> list[list[LabelScore]]:
        """Per item, labels sorted by score: zero-shot over `labels` (dual encoder) or the head.

        `inputs` maps modality -> raw items (one modality for zero-shot; any subset of the
        classifier's modalities for a fusion classifier). `templates`: the model's own unless given.
        """
        if not inputs:
            raise ValueError("no inputs to classify")
        if labels:
            probs, names = self._zero_shot(inputs, list(labels), templates or self.zero_shot_templates)
        else:
            if not self.class_names:
                raise ValueError("zero-shot classification needs 'labels' (this model has no trained head)")
            for m in inputs:
                self._check_modality(m)
            probs, names = self._head_probs(inputs), self.class_names
        k = min(top_k or len(names), len(names))
        order = np.argsort(-probs, axis=1)[:, :k]
        return [[LabelScore(names[j], float(row[j])) for j in idx] for row, idx in zip(probs, order)]

    def _zero_shot(
        self, inputs: dict[str, Sequence[Any]], labels: list[str], templates: Sequence[str]
    ) -> tuple[np.ndarray, list[str]]:
        if len(inputs) != 1:
            raise ValueError(f"zero-shot classifies one modality at a time; got {sorted(inputs)}")
        if "text" not in self.modalities:
            raise ValueError("zero-shot classification needs a model with a text tower")
        prompts = class_prompts(labels, templates)  # checks the templates
        ((modality, items),) = inputs.items()
        items_emb = self.embed(modality, items)  # (N, E)
        prompt_emb = self.embed("text", prompts)  # (C * T, E)
        return zero_shot_probs(items_emb, prompt_emb, len(labels), self.logit_scale), labels

    def _head_probs(self, inputs: dict[str, Sequence[Any]]) -> np.ndarray:
        sizes = {len(v) for v in inputs.values()}
        if len(sizes) != 1:
            raise ValueError(f"every modality needs the same number of items; got {sorted(sizes)}")
        (n,) = sizes
        chunks = []
        for i in range(0, n, self.batch_size):
            batch = self.processor({m: list(v[i : i + self.batch_size]) for m, v in inputs.items()})
            chunks.append(self._classify_batch(batch))
        return np.concatenate(chunks)
