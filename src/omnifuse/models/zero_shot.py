"""Zero-shot classification, defined once: class names x prompt templates -> averaged text
embeddings -> scaled cosine logits (CLIP, Radford et al. 2021, arXiv:2103.00020).

Every caller uses these functions: training-time validation and `omnifuse eval` (through
`ZeroShotClassifier`), the runtime predictors and the server (`zero_shot_probs`), compression
quality and `omnifuse bench infer`. The templates are part of the model: a dual encoder saves
its `zero_shot_templates` in config.json and every caller uses them unless told otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

#: Prompt templates of a model that names none (and of `omnifuse train` unless the recipe does).
DEFAULT_TEMPLATES: tuple[str, ...] = ("a {}", "there is a {}", "a picture with a {}")


def check_templates(templates: Sequence[str]) -> list[str]:
    """The templates as a list; a clear error when there are none or one lacks '{}'."""
    templates = list(templates)
    if not templates:
        raise ValueError("zero-shot classification needs at least one prompt template")
    bad = [t for t in templates if not isinstance(t, str) or "{}" not in t]
    if bad:
        raise ValueError(f"prompt templates need a '{{}}' placeholder for the class name: {bad}")
    return templates


def templates_of(model_or_config: Any) -> list[str]:
    """The zero-shot templates a model (or its config.json dict) was saved with, else the defaults."""
    if isinstance(model_or_config, dict):
        saved = model_or_config.get("zero_shot_templates")
    else:
        saved = getattr(model_or_config, "zero_shot_templates", None)
    return check_templates(saved or DEFAULT_TEMPLATES)


def class_prompts(class_names: Sequence[str], templates: Sequence[str]) -> list[str]:
    """Every template filled with every class name, class-major: (C * T) prompts."""
    if not class_names:
        raise ValueError("zero-shot classification needs at least one class name")
    return [t.format(c) for c in class_names for t in check_templates(templates)]


def class_embeddings(prompt_embeddings: torch.Tensor, n_classes: int) -> torch.Tensor:
    """(C * T, E) class-major prompt embeddings -> (C, E) normalised mean per class."""
    emb = prompt_embeddings.float().reshape(n_classes, -1, prompt_embeddings.shape[-1])  # (C, T, E)
    return F.normalize(emb.mean(1), dim=-1)  # (C, E)


def zero_shot_logits(items: torch.Tensor, classes: torch.Tensor, logit_scale: float) -> torch.Tensor:
    """(N, E) normalised item embeddings, (C, E) class embeddings -> (N, C) logits."""
    return logit_scale * items.float() @ classes.T


def zero_shot_probs(items: np.ndarray, prompts: np.ndarray, n_labels: int, logit_scale: float) -> np.ndarray:
    """numpy in and out (the predictors): items (N, E), prompts (C * T, E) -> (N, C) probabilities."""
    classes = class_embeddings(torch.from_numpy(np.asarray(prompts, dtype=np.float32)), n_labels)
    logits = zero_shot_logits(torch.from_numpy(np.asarray(items, dtype=np.float32)), classes, logit_scale)
    return logits.softmax(-1).numpy()


class ZeroShotClassifier:
    """Classify items of any modality by similarity to prompt-built class embeddings."""

    def __init__(
        self,
        model,
        class_names: Sequence[str],
        templates: Sequence[str] | None = None,
        text_modality: str = "text",
        batch_size: int = 256,
    ):
        self.model = model
        self.class_names = list(class_names)
        self.templates = check_templates(templates) if templates else templates_of(model)
        self.text_modality = text_modality
        self.class_embeddings = self._embed_classes(batch_size)  # (C, E)

    @torch.no_grad()
    def _embed_classes(self, batch_size: int) -> torch.Tensor:
        prompts = class_prompts(self.class_names, self.templates)
        proc = self.model.processor[self.text_modality]
        chunks = []
        for i in range(0, len(prompts), batch_size):
            batch = proc(prompts[i : i + batch_size])
            chunks.append(self.model.encode(self.text_modality, batch))
        return class_embeddings(torch.cat(chunks), len(self.class_names))  # (C, E)

    @torch.no_grad()
    def logits(self, embeddings: torch.Tensor) -> torch.Tensor:
        """(N, E) normalised item embeddings -> (N, C) logits."""
        return zero_shot_logits(embeddings, self.class_embeddings, float(self.model.scale()))

    @torch.no_grad()
    def predict(self, modality: str, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Class probabilities (N, C) for a processed batch of one modality."""
        return self.logits(self.model.encode(modality, batch)).softmax(-1)
