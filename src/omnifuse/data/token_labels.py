"""Per-word tags -> per-token label ids aligned to a sub-word tokenizer.

A token-labelled sample holds a text (its words are the whitespace-separated pieces) and, under
a label column, one tag per word: a list of tag names or one space-separated string
(``"O B-mismatch O O"``). The tokenizer may cut a word into several sub-word tokens: the
first one carries the word's label, the others and the special tokens carry
:data:`IGNORE_INDEX` (-100, which ``cross_entropy`` ignores), as in the transformers
token-classification examples. Words cut off by ``max_length`` are not labelled.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from omnifuse.data.processors import first_text
from omnifuse.data.sample import DataError, Sample

IGNORE_INDEX = -100
"""Label id of tokens that carry no label (later sub-tokens, specials, padding)."""


def align_labels(word_ids: Sequence[int | None], word_labels: Sequence[int]) -> list[int]:
    """The label of each token: its word's label on the word's first token, else IGNORE_INDEX."""
    out, previous = [], None
    for w in word_ids:
        out.append(IGNORE_INDEX if w is None or w == previous else word_labels[w])
        previous = w
    return out


def first_token_positions(word_ids: Sequence[int | None]) -> list[int]:
    """Token index of each word's first token (for the words the tokenizer kept)."""
    seen: dict[int, int] = {}
    for i, w in enumerate(word_ids):
        if w is not None and w not in seen:
            seen[w] = i
    return [seen[w] for w in sorted(seen)]


def _source(sample: Sample, row: int) -> str:
    return str(sample.meta.get("source") or sample.meta.get("id") or f"row {row}")


def words_and_tags(sample: Sample, label_key: str | None, row: int = 0) -> tuple[list[str], list[str] | None]:
    """The sample's words and (when ``label_key`` is given and present) its tags, checked to align."""
    words = first_text(sample.inputs["text"]).split()
    if label_key is None or label_key not in sample.labels:
        return words, None
    tags = sample.labels[label_key]
    tags = tags.split() if isinstance(tags, str) else list(tags)
    if len(tags) != len(words):
        raise DataError(
            f"{_source(sample, row)}: the text has {len(words)} words but '{label_key}' has {len(tags)} labels "
            f"(one label per whitespace-separated word): {' '.join(words)!r}"
        )
    return words, [str(t) for t in tags]


class TokenLabelEncoder:
    """Samples -> ``text`` ids, ``text_mask`` and ``token_labels`` (B, T) for the training loop.

    It tokenizes the words itself (``is_split_into_words``), so the labels align with exactly
    the ids the model sees; it needs a fast (Rust) tokenizer, which gives ``word_ids``.
    """

    def __init__(self, tokenizer: Any, label_names: Sequence[str], label_key: str, max_length: int) -> None:
        if not getattr(tokenizer, "is_fast", False):
            raise ValueError("token labelling needs a fast tokenizer (it maps tokens back to words)")
        self.tokenizer, self.label_key, self.max_length = tokenizer, label_key, max_length
        self.label_names = list(label_names)
        self.label2id = {name: i for i, name in enumerate(self.label_names)}

    def encode(self, samples: Sequence[Sample], with_labels: bool = True) -> dict[str, Any]:
        pairs = [words_and_tags(s, self.label_key if with_labels else None, i) for i, s in enumerate(samples)]
        enc = self.tokenizer(
            [w for w, _ in pairs],
            is_split_into_words=True,
            padding=True,
            truncation=True,
            max_length=self.max_length,
            return_tensors="pt",
        )
        word_ids = [enc.word_ids(i) for i in range(len(samples))]
        out: dict[str, Any] = {
            "text": enc["input_ids"],
            "text_mask": enc["attention_mask"],
            "word_ids": word_ids,
        }
        if with_labels:
            rows = []
            for i, ((_, tags), ids) in enumerate(zip(pairs, word_ids)):
                if tags is None:
                    raise DataError(f"{_source(samples[i], i)}: no '{self.label_key}' labels")
                unknown = sorted({t for t in tags if t not in self.label2id})
                if unknown:
                    raise DataError(
                        f"{_source(samples[i], i)}: labels {unknown} are not among the model's {self.label_names}"
                    )
                rows.append(align_labels(ids, [self.label2id[t] for t in tags]))
            out["token_labels"] = torch.tensor(rows, dtype=torch.long)
        return out

    def __call__(self, samples: Sequence[Sample]) -> dict[str, torch.Tensor]:
        """The training loop's ``targets``: overrides the processor's text ids with word-aligned ones."""
        out = self.encode(samples)
        out.pop("word_ids")
        return out


def label_names_from(samples: Sequence[Sample], label_key: str) -> list[str]:
    """The tag set of the training data: ``O`` first, then the others sorted by type and prefix."""
    names = set()
    for i, s in enumerate(samples):
        _, tags = words_and_tags(s, label_key, i)
        if tags is None:
            raise DataError(f"{_source(s, i)}: no '{label_key}' labels")
        names.update(tags)
    if not names:
        raise DataError(f"no '{label_key}' labels in the training data")
    return sorted(names, key=lambda t: (t != "O", t[2:] if t[1:2] == "-" else t, t))
