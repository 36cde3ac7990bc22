"""Config fields of a from-scratch encoder that the data decides (vocabulary, lengths, sizes)."""

from __future__ import annotations

from typing import Any

from omnifuse.data.processors import Processor


def first_token_id(tokenizer, *names: str) -> int | None:
    """The first of the tokenizer's special-token ids `names` that is set."""
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
