"""MaskedLM: BERT pre-training (masked language modelling + next-sentence prediction).

Devlin et al. 2019, "BERT: Pre-training of Deep Bidirectional Transformers for Language
Understanding" (https://arxiv.org/abs/1810.04805). The network and its pre-training heads are
transformers' own (`BertForPreTraining`, or `BertForMaskedLM` without NSP; any
`AutoModelForPreTraining` / `AutoModelForMaskedLM` checkpoint when continuing); the masking is
`DataCollatorForLanguageModeling`'s (see :mod:`omnifuse.data.masked_text`). The loss is the
sum of the masked-token cross-entropy and `nsp_weight` times the NSP cross-entropy, each part
reported apart in `losses`.

The encoder (`model.encoder()`, or a tower with `source: omnifuse` naming the artifact) is a
text tower for every other recipe; its tokenizer is saved in the artifact.
"""

from __future__ import annotations

import inspect
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from omnifuse.data.masked_text import (
    IGNORE_INDEX,
    MaskedTextProcessor,
    build_nsp_pairs,
    check_mask_token,
    read_documents,
    train_wordpiece_tokenizer,
)
from omnifuse.data.processors import Processor
from omnifuse.data.sample import Sample
from omnifuse.encoders.hf import HFEncoder, hf_model_class, instantiate
from omnifuse.encoders.presets import preset_config
from omnifuse.models.artifact import ArtifactMixin
from omnifuse.models.masked_lm.config import MaskedLMConfig
from omnifuse.models.registry import register_model_kind
from omnifuse.utils.paths import resolve_model_path

logger = logging.getLogger("omnifuse.models")


@dataclass
class MaskedLMOutput:
    """mlm_logits: (B, T, V); nsp_logits: (B, 2) or None; loss: total; losses: each part apart."""

    mlm_logits: torch.Tensor
    nsp_logits: torch.Tensor | None = None
    loss: torch.Tensor | None = None
    losses: dict[str, torch.Tensor] = field(default_factory=dict)


def has_nsp_head(model: nn.Module) -> bool:
    """Whether an HF pre-training model predicts the next sentence (takes `next_sentence_label`)."""
    return "next_sentence_label" in inspect.signature(model.forward).parameters


def mlm_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy over masked positions (labels -100 elsewhere); (B, T, V), (B, T) -> scalar."""
    return F.cross_entropy(
        logits.reshape(-1, logits.shape[-1]).float(), labels.reshape(-1), ignore_index=IGNORE_INDEX
    )


class MaskedLM(ArtifactMixin, nn.Module):
    """``MaskedLM(BertForPreTraining(config), processor)``; `nsp` follows the model's heads."""

    def __init__(
        self,
        model: nn.Module,
        processor: Processor | None = None,
        nsp: bool | None = None,
        nsp_weight: float = 1.0,
        pooling: str = "cls",
    ):
        super().__init__()
        can_nsp = has_nsp_head(model)
        if nsp and not can_nsp:
            raise ValueError(
                f"{type(model).__name__} has no next-sentence-prediction head; set model.nsp: false "
                "(masked language modelling only) or start from a BERT-style checkpoint"
            )
        self.model = model
        self.nsp = can_nsp if nsp is None else bool(nsp)
        self.nsp_weight = float(nsp_weight)
        self.pooling = pooling
        self.processor = processor or Processor({})
        self.token_counts: torch.Tensor | None = None  # training-token frequencies (the unigram baseline)

    @property
    def modalities(self) -> list[str]:
        return ["text"]

    @property
    def base_prefix(self) -> str:
        return f"model.{self.model.base_model_prefix}."

    def encoder(self) -> HFEncoder:
        """The pre-trained encoder as a text tower (shares the weights)."""
        return HFEncoder(self.model.base_model, "text", self.pooling)

    def forward(self, batch: dict[str, torch.Tensor]) -> MaskedLMOutput:
        ids = batch.get("mlm_input", batch["text"])  # (B, T), masked when training
        kwargs: dict[str, Any] = {"input_ids": ids, "attention_mask": batch.get("text_mask")}
        if "text_segments" in batch and getattr(self.model.config, "type_vocab_size", 0) > 1:
            kwargs["token_type_ids"] = batch["text_segments"]  # (B, T) 0 = segment A, 1 = B
        out = self.model(**kwargs, return_dict=True)
        logits = out.prediction_logits if self.nsp else out.logits  # (B, T, V)
        nsp_logits = out.seq_relationship_logits if self.nsp else None  # (B, 2)
        losses: dict[str, torch.Tensor] = {}
        if "mlm_labels" in batch:
            losses["mlm"] = mlm_loss(logits, batch["mlm_labels"])
        if self.nsp and "next_sentence_label" in batch:
            losses["nsp"] = F.cross_entropy(nsp_logits.float(), batch["next_sentence_label"])
        loss = None
        if losses:
            loss = losses.get("mlm", 0.0) + self.nsp_weight * losses.get("nsp", 0.0)
        return MaskedLMOutput(logits, nsp_logits, loss, losses)

    # ---- artifact -------------------------------------------------------------------------
    def to_config(self) -> dict[str, Any]:
        return {
            "model_type": self.model_type,
            "hf_class": type(self.model).__name__,
            "hf_config": self.model.config.to_dict(),
            "nsp": self.nsp,
            "nsp_weight": self.nsp_weight,
            "pooling": self.pooling,
            # the text tower other recipes can take (encoders.factory, source: omnifuse)
            "encoders": {"text": self.encoder().to_config()},
            "encoder_weights": {"text": {"from": self.base_prefix, "to": "model."}},
        }

    @classmethod
    def from_config(cls, config: dict[str, Any], processor: Processor | None = None) -> MaskedLM:
        model_cls = hf_model_class(config["hf_class"])
        model = instantiate(model_cls, model_cls.config_class.from_dict(dict(config["hf_config"])), None)
        return cls(
            model, processor, config["nsp"], config.get("nsp_weight", 1.0), config.get("pooling", "cls")
        )


# ---- building from a recipe --------------------------------------------------------------------
def _tokenizer(cfg: MaskedLMConfig, texts: Sequence[str]):
    from transformers import AutoTokenizer

    if cfg.tokenizer is not None or cfg.source == "hf":
        name = cfg.tokenizer or cfg.name_or_path
        tok = AutoTokenizer.from_pretrained(resolve_model_path(name))
        check_mask_token(tok, name)
        return tok, name
    if not texts:
        raise ValueError(
            "a masked_lm recipe needs a tokenizer (model.tokenizer, or a checkpoint via source: hf) or "
            "training text to train a WordPiece tokenizer on; data.train gave no text"
        )
    logger.info("training a WordPiece tokenizer (vocab %d) on %d sentences", cfg.vocab_size, len(texts))
    return train_wordpiece_tokenizer(texts, cfg.vocab_size, cfg.min_frequency), None


@dataclass
class PreparedData:
    """What a kind's `prepare` hook gives the training run."""

    train: list[Sample]
    val: list[Sample] | None
    processor: Processor


def prepare(recipe: Any, processor: Processor | None = None) -> PreparedData:
    """Documents -> tokenizer (given, the checkpoint's, or trained) -> NSP pairs (train and val).

    `processor` (a resumed run's) is reused instead of building a new tokenizer.
    """
    cfg: MaskedLMConfig = recipe.model
    data = recipe.data
    train_docs = read_documents(data.train, cfg.text_column, data.strict)
    val_docs = read_documents(data.val, cfg.text_column, data.strict) if data.val else None
    if processor is None:
        tok, name = _tokenizer(cfg, [s for doc in train_docs for s in doc])
        processor = Processor(
            {
                "text": MaskedTextProcessor(
                    tok,
                    cfg.max_length,
                    cfg.mlm_probability,
                    cfg.whole_word_mask,
                    pairs=cfg.nsp,
                    name_or_path=name,
                )
            }
        )
    tok = processor["text"].tokenizer

    def count(text: str) -> int:
        return len(tok.tokenize(text))

    seed = recipe.train.seed
    train, _ = build_nsp_pairs(train_docs, cfg.max_length, count, seed, cfg.nsp, source=str(data.train))
    val = None
    if val_docs is not None:
        val, _ = build_nsp_pairs(val_docs, cfg.max_length, count, seed + 1, cfg.nsp, source=str(data.val))
    return PreparedData(train, val, processor)


def token_counts(processor: Processor, samples: Sequence[Sample], max_samples: int = 20000) -> torch.Tensor:
    """(V,) how often each token id occurs in the training texts (the unigram baseline)."""
    tok = processor["text"].tokenizer
    counts: Counter[int] = Counter()
    for s in samples[:max_samples]:
        value = s.inputs["text"]
        for text in [value] if isinstance(value, str) else value:
            counts.update(tok.convert_tokens_to_ids(tok.tokenize(text)))
    out = torch.zeros(len(tok))
    for i, c in counts.items():
        if i is not None and 0 <= i < len(out):
            out[i] = c
    return out


def build(
    cls: type[MaskedLM], cfg: MaskedLMConfig, processor: Processor, samples: Sequence[Sample] | None = None
) -> MaskedLM:
    """`cls` is the MaskedLM class (bound by the registry)."""
    import transformers

    tok = processor["text"].tokenizer
    if cfg.source == "hf":
        auto = transformers.AutoModelForPreTraining if cfg.nsp else transformers.AutoModelForMaskedLM
        model = auto.from_pretrained(resolve_model_path(cfg.name_or_path))
        if model.get_input_embeddings().num_embeddings < len(tok):
            model.resize_token_embeddings(len(tok))
    else:
        config = preset_config(
            "bert",
            cfg.preset,
            **{
                "vocab_size": len(tok),
                "max_position_embeddings": max(64, cfg.max_length),
                "pad_token_id": tok.pad_token_id or 0,
                "type_vocab_size": 2,
                **cfg.overrides,
            },
        )
        model_cls = transformers.BertForPreTraining if cfg.nsp else transformers.BertForMaskedLM
        model = instantiate(model_cls, config, None)
    lm = cls(model, processor, cfg.nsp, cfg.nsp_weight, cfg.pooling).train()
    if samples:
        lm.token_counts = token_counts(processor, samples)
    return lm


def modalities(cfg: MaskedLMConfig) -> list[str]:
    return ["text"]


def evaluator(eval_cfg: Any, val: Sequence[Sample] | None, model: MaskedLM):
    from omnifuse.models.masked_lm.evaluate import MaskedLMEvaluator

    if not val:
        return None
    return MaskedLMEvaluator(val, batch_size=min(eval_cfg.batch_size, 64), max_items=eval_cfg.max_items)


def targets(model: MaskedLM):
    """NSP labels into each training batch (`next_sentence_label`, (B,))."""
    if not model.nsp:
        return None

    def encode(samples: Sequence[Sample]) -> dict[str, torch.Tensor]:
        return {"next_sentence_label": torch.tensor([int(s.labels["nsp"]) for s in samples])}

    return encode


register_model_kind(
    "masked_lm",
    config=MaskedLMConfig,
    build=build,
    modalities=modalities,
    capabilities=["fill_mask"],
    evaluator=evaluator,
    targets=targets,
    prepare=prepare,
    text_encoder=lambda model: model.encoder(),
)(MaskedLM)
