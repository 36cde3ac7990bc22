"""The `vl_pretrain` kind's spec: build from a recipe, preprocessing, ITM targets, evaluator."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from omnifuse.data.masked_text import MaskedTextProcessor
from omnifuse.data.processors import Processor
from omnifuse.data.sample import Sample
from omnifuse.encoders.factory import build_encoder
from omnifuse.models.registry import register_model_kind
from omnifuse.models.vl_pretrain.config import VLPretrainConfig
from omnifuse.models.vl_pretrain.model import VLPretrain, check_joint


def adapt_processor(processor: Processor, cfg: VLPretrainConfig) -> Processor:
    """The recipe's text processor, masking for MLM when training (same tokenizer and length)."""
    text = processor["text"]
    masked = MaskedTextProcessor(
        text.tokenizer,
        text.max_length,
        cfg.mlm_probability,
        cfg.whole_word_mask,
        name_or_path=text.name_or_path,
    )
    return Processor({**processor.processors, "text": masked})


def build(
    cls: type[VLPretrain],
    cfg: VLPretrainConfig,
    processor: Processor,
    samples: Sequence[Sample] | None = None,
) -> VLPretrain:
    """`cls` is the VLPretrain class (bound by the registry)."""
    from omnifuse.fusion import build_fusion, check_inputs
    from omnifuse.models.data_overrides import data_overrides

    if "minimal_pairs" in cfg.itm_negatives and cfg.weight("itm") and samples is not None:
        if not any(cfg.negative_label in s.labels for s in samples[:5000]):
            raise ValueError(
                f"model.itm_negatives lists minimal_pairs but no training sample has a '{cfg.negative_label}' "
                "label; list its column in data.labels (e.g. the shapes world's pretrain_*.jsonl 'negative') "
                "or drop minimal_pairs"
            )
    encoders = {m: build_encoder(t, m, data_overrides(processor, m)) for m, t in sorted(cfg.encoders.items())}
    dims = {m: int(e.hidden_size) for m, e in encoders.items()}
    fusion_cls = check_inputs(cfg.fusion.name, dims, tokens_available=True, **cfg.fusion.kwargs)
    if fusion_cls.decision_level:  # before building it (a decision-level strategy wants num_outputs)
        for objective, what in (("itm", "image-text matching (ITM)"), ("mlm", "image-conditioned MLM")):
            if cfg.weight(objective):
                check_joint(fusion_cls, what)
    fusion = build_fusion(cfg.fusion.name, dims, num_outputs=2, **cfg.fusion.kwargs)
    return cls(
        encoders, fusion, vocab_size=processor["text"].vocab_size, embed_dim=cfg.embed_dim,
        loss_weights={k: cfg.weight(k) for k in ("itc", "itm", "mlm")}, itm_negatives=tuple(cfg.itm_negatives),
        init_temperature=cfg.init_temperature, negative_label=cfg.negative_label, processor=processor,
    ).train()  # fmt: skip


def modalities(cfg: VLPretrainConfig) -> list[str]:
    return sorted(cfg.encoders)


def targets(model: VLPretrain):
    """Each sample's minimal-pair false caption, tokenized: `itm_negative`, `itm_negative_mask`,
    `itm_negative_present` (B,) (False where the sample has none)."""
    if "minimal_pairs" not in model.itm_negatives or not model.loss_weights["itm"]:
        return None
    from omnifuse.data.processors import first_text

    key = model.negative_label

    def encode(samples: Sequence[Sample]) -> dict[str, torch.Tensor]:
        present = [key in s.labels and bool(s.labels[key]) for s in samples]
        texts = [s.labels[key] if p else first_text(s.inputs["text"]) for s, p in zip(samples, present)]
        enc = model.processor["text"](texts, train=False)
        return {
            "itm_negative": enc["text"],
            "itm_negative_mask": enc["text_mask"],
            "itm_negative_present": torch.tensor(present),
        }

    return encode


def evaluator(eval_cfg: Any, val: Sequence[Sample] | None, model: VLPretrain):
    from omnifuse.models.vl_pretrain.evaluate import VLPretrainEvaluator

    if not val:
        return None
    return VLPretrainEvaluator(
        val,
        batch_size=min(eval_cfg.batch_size, 64),
        max_items=eval_cfg.max_items,
        group_key=eval_cfg.group_key,
    )


register_model_kind(
    "vl_pretrain",
    config=VLPretrainConfig,
    build=build,
    modalities=modalities,
    capabilities=["fill_mask"],
    evaluator=evaluator,
    targets=targets,
    adapt_processor=adapt_processor,
)(VLPretrain)
