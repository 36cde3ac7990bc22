"""Zero-shot classification: class names x prompt templates -> averaged text embeddings -> logits."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from omnifuse.models.dual_encoder.model import DualEncoder

DEFAULT_TEMPLATES = ("a {}", "a photo of a {}", "there is a {}")


class ZeroShotClassifier:
    """Classify items of any modality by similarity to prompt-built class embeddings."""

    def __init__(
        self,
        model: DualEncoder,
        class_names: Sequence[str],
        templates: Sequence[str] = DEFAULT_TEMPLATES,
        text_modality: str = "text",
        batch_size: int = 256,
    ):
        if not class_names:
            raise ValueError("zero-shot classification needs at least one class name")
        bad = [t for t in templates if "{}" not in t]
        if bad:
            raise ValueError(f"prompt templates need a '{{}}' placeholder for the class name: {bad}")
        self.model = model
        self.class_names = list(class_names)
        self.templates = list(templates)
        self.text_modality = text_modality
        self.class_embeddings = self._embed_classes(batch_size)  # (C, E)

    @torch.no_grad()
    def _embed_classes(self, batch_size: int) -> torch.Tensor:
        prompts = [t.format(c) for c in self.class_names for t in self.templates]
        proc = self.model.processor[self.text_modality]
        chunks = []
        for i in range(0, len(prompts), batch_size):
            batch = proc(prompts[i : i + batch_size])
            chunks.append(self.model.encode(self.text_modality, batch))
        emb = torch.cat(chunks).view(len(self.class_names), len(self.templates), -1)  # (C, K, E)
        return F.normalize(emb.mean(1), dim=-1)  # (C, E)

    @torch.no_grad()
    def logits(self, embeddings: torch.Tensor) -> torch.Tensor:
        """(N, E) normalised item embeddings -> (N, C) logits."""
        return self.model.scale() * embeddings @ self.class_embeddings.T

    @torch.no_grad()
    def predict(self, modality: str, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Class probabilities (N, C) for a processed batch of one modality."""
        return self.logits(self.model.encode(modality, batch)).softmax(-1)
