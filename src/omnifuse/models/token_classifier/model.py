"""TokenClassifier: encoders, a fusion module and a per-token head: one label per text word.

The token-classification fine-tuning of BERT (Devlin et al. 2019, https://arxiv.org/abs/1810.04805,
section 4.3: the first sub-token of each word is classified), with the other modalities brought
in by the fusion module. A token-level strategy (its ``token_outputs`` include ``text``) gives
every text token its own fused state; with any other strategy each text token's encoder state
is concatenated with the fused vector. The label names (e.g. IOB2 tags) are saved in the
artifact.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from omnifuse.data.loader import eval_loader
from omnifuse.data.processors import Processor
from omnifuse.data.sample import CorruptSamplePolicy, Sample
from omnifuse.data.token_labels import IGNORE_INDEX, TokenLabelEncoder, first_token_positions, words_and_tags
from omnifuse.encoders.base import Encoder
from omnifuse.fusion import Fusion, build_fusion
from omnifuse.models.artifact import ArtifactMixin
from omnifuse.models.heads import build_head, head_config
from omnifuse.models.multimodal import (
    check_fusion_fits,
    encode_modalities,
    encoders_config,
    encoders_from_config,
)
from omnifuse.models.multimodal_build import dual_encoder_processors
from omnifuse.models.registry import register_model_kind
from omnifuse.models.token_classifier.build import build, modalities, targets
from omnifuse.models.token_classifier.config import TokenClassifierConfig


@dataclass
class TokenClassifierOutput:
    """logits: (B, T, L) per text token; loss when the batch has ``token_labels``; mask: (B, T)."""

    logits: torch.Tensor
    loss: torch.Tensor | None = None
    mask: torch.Tensor | None = None
    aux: dict[str, torch.Tensor] = field(default_factory=dict)


@register_model_kind(
    "token_classifier",
    config=TokenClassifierConfig,
    build=build,
    modalities=modalities,
    capabilities=["label_tokens"],
    evaluator="token_labels",
    targets=targets,
    processors=dual_encoder_processors,
)
class TokenClassifier(ArtifactMixin, nn.Module):
    """``TokenClassifier({"text": t, "image": i}, build_fusion("cross_attention", dims), label_names=[...])``."""

    def __init__(
        self,
        encoders: dict[str, Encoder],
        fusion: Fusion,
        label_names: Sequence[str],
        label_key: str = "tags",
        head_hidden: int | None = None,
        dropout: float = 0.1,
        inputs: str = "tokens",
        processor: Processor | None = None,
    ) -> None:
        super().__init__()
        if "text" not in encoders:
            raise ValueError(
                f"a token classifier labels text tokens: it needs a text encoder; it has {sorted(encoders)}"
            )
        if len(label_names) < 2 or len(set(label_names)) != len(label_names):
            raise ValueError(f"label_names must be at least 2 distinct tags; got {list(label_names)}")
        if inputs != "tokens":
            raise ValueError("a token classifier needs the text tokens: inputs must be 'tokens'")
        check_fusion_fits(encoders, fusion, inputs)
        if fusion.decision_level:
            raise ValueError(f"fusion '{fusion.name}' decides per sample; a token classifier needs features")
        self.encoders = nn.ModuleDict({m: encoders[m] for m in sorted(encoders)})
        self.fusion = fusion
        self.per_token = "text" in fusion.token_outputs
        width = (
            fusion.token_outputs["text"]
            if self.per_token
            else encoders["text"].hidden_size + fusion.output_dim
        )
        self.head = build_head(width, len(label_names), head_hidden, dropout)
        self.label_names, self.label_key, self.inputs = list(label_names), label_key, inputs
        self.processor = processor or Processor({})

    @property
    def modalities(self) -> list[str]:
        return list(self.encoders)

    def forward(self, batch: dict[str, torch.Tensor]) -> TokenClassifierOutput:
        features, present = encode_modalities(self.encoders, batch)  # tokens (B, T, D), pooled (B, D)
        out = self.fusion(features, present)
        text = features["text"]
        if self.per_token:
            states = out.tokens["text"]  # (B, T, W)
        else:
            fused = out.fused[:, None, :].expand(-1, text.tokens.shape[1], -1)  # (B, T, F)
            states = torch.cat([text.tokens, fused], dim=-1)  # (B, T, D + F)
        logits = self.head(states)  # (B, T, L)
        loss = None
        if "token_labels" in batch:
            labels = batch["token_labels"].to(logits.device)  # (B, T), IGNORE_INDEX where unlabelled
            loss = F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=IGNORE_INDEX)
        return TokenClassifierOutput(logits, loss, text.mask, out.aux)

    def label_encoder(self) -> TokenLabelEncoder:
        text = self.processor["text"]
        return TokenLabelEncoder(text.tokenizer, self.label_names, self.label_key, text.max_length)

    @torch.no_grad()
    def label_samples(self, samples: Sequence[Sample], batch_size: int = 64) -> list[list[tuple[str, str]]]:
        """(word, label) for each word of each sample's text that fits in the tokenizer's length;
        a sample whose other inputs cannot be read gets an empty list."""
        was = self.training
        self.eval()
        device = next(self.parameters()).device
        encoder = self.label_encoder()
        others = [m for m in self.modalities if m != "text"]
        results: list[list[tuple[str, str]]] = [[] for _ in samples]
        policy = CorruptSamplePolicy(name="token labelling")
        try:
            for start in range(0, len(samples), batch_size):
                chunk = list(samples[start : start + batch_size])
                if others:
                    batches = list(
                        eval_loader(chunk, self.processor, others, len(chunk), policy, allow_missing=True)
                    )
                    batch = batches[0] if batches else {"index": torch.zeros(0, dtype=torch.long)}
                else:
                    batch = {"index": torch.arange(len(chunk))}
                kept = [int(i) for i in batch.pop("index")]
                if not kept:
                    continue
                enc = encoder.encode([chunk[i] for i in kept], with_labels=False)
                batch = {k: v.to(device) for k, v in batch.items() if isinstance(v, torch.Tensor)}
                batch.update(text=enc["text"].to(device), text_mask=enc["text_mask"].to(device))
                pred = self.forward(batch).logits.argmax(-1).cpu()  # (B, T)
                for row, (i, word_ids) in enumerate(zip(kept, enc["word_ids"])):
                    words = words_and_tags(chunk[i], None)[0]
                    positions = first_token_positions(word_ids)
                    results[start + i] = [
                        (words[w], self.label_names[int(pred[row, p])]) for w, p in enumerate(positions)
                    ]
        finally:
            self.train(was)
        return results

    # ---- artifact -------------------------------------------------------------------------
    def to_config(self) -> dict[str, Any]:
        return {
            "model_type": self.model_type,
            "label_names": self.label_names,
            "label_key": self.label_key,
            "encoders": encoders_config(self.encoders),
            "fusion": self.fusion.to_config(),
            "head": head_config(self.head),
            "inputs": self.inputs,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any], processor: Processor | None = None) -> TokenClassifier:
        fusion_cfg = dict(config["fusion"])
        head = config.get("head") or {}
        return cls(
            encoders_from_config(config["encoders"]),
            build_fusion(fusion_cfg.pop("name"), **fusion_cfg),
            label_names=config["label_names"],
            label_key=config.get("label_key", "tags"),
            head_hidden=head.get("hidden"),
            dropout=head.get("dropout", 0.0),
            inputs=config.get("inputs", "tokens"),
            processor=processor,
        )
