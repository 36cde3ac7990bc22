"""Interleaved image-text sequences -> token ids, attention mask and LM labels.

A captioner's text is a string in which `<image>` marks where each image goes and
`<|endofchunk|>` ends the text that belongs to an image (OpenFlamingo's format):
`<image>Caption: a red circle<|endofchunk|><image>Caption: ...`. A plain caption without any
`<image>` gets the caption prompt in front. The loss covers every text token (the chunk ends
included), never padding, the beginning-of-sequence token or the `<image>` placeholders.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from omnifuse.data.processor_base import register_processor
from omnifuse.data.processors import TextProcessor
from omnifuse.generation import GenerationError
from omnifuse.models.captioner.config import END_OF_CHUNK, IMAGE_TOKEN

IGNORE = -100


def add_media_tokens(tokenizer) -> list[int]:
    """Add `<image>` and `<|endofchunk|>` as special tokens (once); their ids."""
    from tokenizers import AddedToken

    missing = [t for t in (IMAGE_TOKEN, END_OF_CHUNK) if t not in tokenizer.get_vocab()]
    if missing:
        tokenizer.add_tokens(
            [AddedToken(t, special=True, normalized=False) for t in missing], special_tokens=True
        )
    return tokenizer.convert_tokens_to_ids([IMAGE_TOKEN, END_OF_CHUNK])


def bos_id(tokenizer) -> int | None:
    for name in ("bos_token_id", "cls_token_id"):
        value = getattr(tokenizer, name, None)
        if value is not None:
            return int(value)
    return None


def as_training_text(text: str, caption_prompt: str) -> str:
    """A caption without `<image>` gets the caption prompt; every text ends its last chunk."""
    text = text.strip()
    if IMAGE_TOKEN not in text:
        text = f"{caption_prompt} {text}"
    if not text.endswith(END_OF_CHUNK):
        text += END_OF_CHUNK
    return text


@register_processor("captioner_text")
class CaptionerTextProcessor(TextProcessor):
    """`{"text": (B, T), "text_mask": (B, T), "text_labels": (B, T)}`, right-padded.

    Holds the LM's tokenizer with the two media tokens added.
    """

    modality = "text"

    def __init__(self, tokenizer: Any, max_length: int = 128, caption_prompt: str = "<image>Caption:"):
        super().__init__(tokenizer, max_length)
        self.image_id, self.end_of_chunk_id = add_media_tokens(tokenizer)
        self.caption_prompt = caption_prompt
        self.bos_id = bos_id(tokenizer)
        if tokenizer.pad_token_id is None:  # GPT-2, Llama: batching pads with EOS (masked anyway)
            tokenizer.pad_token = tokenizer.eos_token or END_OF_CHUNK
        self.pad_id = int(tokenizer.pad_token_id)

    def encode(self, text: str) -> list[int]:
        """Token ids of `text` after the beginning-of-sequence token (no padding, no cut)."""
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        return ([self.bos_id] if self.bos_id is not None else []) + list(ids)

    def __call__(
        self,
        values: Sequence[str | Sequence[str]],
        train: bool = False,
        rngs: Sequence[random.Random] | None = None,
    ) -> dict[str, torch.Tensor]:
        texts = [self.choose(v, rngs[i] if (train and rngs) else None) for i, v in enumerate(values)]
        rows = [self.encode(as_training_text(t, self.caption_prompt))[: self.max_length] for t in texts]
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, row in enumerate(rows):
            ids[i, : len(row)] = torch.tensor(row)
            mask[i, : len(row)] = 1
        labels = ids.masked_fill((mask == 0) | (ids == self.image_id), IGNORE)
        if self.bos_id is not None:
            labels[:, 0] = IGNORE
        return {"text": ids, "text_mask": mask, "text_labels": labels}

    def state(self) -> dict[str, Any]:
        return {**super().state(), "caption_prompt": self.caption_prompt}


def count_images(text: str) -> int:
    return text.count(IMAGE_TOKEN)


def read_few_shot(
    path: str | Path, task: str, caption_prompt: str, question_prompt: str
) -> list[tuple[str, str]]:
    """In-context examples from a JSONL file -> (image path, text chunk) pairs.

    Each line: `{"image": PATH, "text": CAPTION}` (task `caption`) or `{"image": PATH,
    "question": Q, "answer": A}` (task `answer`); relative paths resolve against the file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"few-shot file not found: {path}")
    shots = []
    for n, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise GenerationError(f"{path}:{n}: not a JSON object ({err.msg})") from err
        need = ("image", "text") if task == "caption" else ("image", "question", "answer")
        lacking = [k for k in need if not isinstance(row.get(k), str) or not row[k].strip()]
        if lacking:
            raise GenerationError(
                f"{path}:{n}: a {task} example needs {list(need)}; missing or empty: {lacking}"
            )
        image = Path(row["image"]).expanduser()
        image = image if image.is_absolute() else path.parent / image
        if not image.is_file():
            raise GenerationError(f"{path}:{n}: image file not found: {image}")
        if task == "caption":
            chunk = f"{caption_prompt} {row['text'].strip()}{END_OF_CHUNK}"
        else:
            chunk = f"{question_prompt.format(question=row['question'].strip())} {row['answer'].strip()}{END_OF_CHUNK}"
        shots.append((str(image), chunk))
    if not shots:
        raise GenerationError(f"{path}: no few-shot examples")
    return shots
