"""Masked-language-model data: documents, next-sentence pairs, a WordPiece tokenizer, masking.

- :func:`read_documents`: plain-text files (one sentence or paragraph per line, documents
  separated by blank lines, as BERT's pre-training data), JSONL documents or any manifest's
  text column -> a list of documents, each a list of sentences.
- :func:`build_nsp_pairs`: BERT's next-sentence-prediction pairs (Devlin et al. 2019,
  https://arxiv.org/abs/1810.04805, section 3.1): segment A is a run of sentences of a document,
  segment B is the run that follows it (label 0, "is next") half of the time and a run from
  another document (label 1, "random") the other half. Without NSP (RoBERTa, Liu et al. 2019,
  https://arxiv.org/abs/1907.11692) a sample is one run of contiguous sentences.
- :func:`train_wordpiece_tokenizer`: a BERT-style WordPiece tokenizer trained offline with HF
  `tokenizers` on the training documents.
- :class:`MaskedTextProcessor`: tokenizes single texts or (A, B) pairs with segment ids and, at
  training time, masks them with transformers' `DataCollatorForLanguageModeling` (15 %, 80 %
  [MASK] / 10 % random / 10 % kept, optional whole-word masking) seeded per batch from the
  loader's per-sample generators, so a resumed run masks exactly as an uninterrupted one.
"""

from __future__ import annotations

import json
import logging
import random
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from omnifuse.data.processor_base import register_processor
from omnifuse.data.processors import TextProcessor
from omnifuse.data.sample import DataError, Sample

logger = logging.getLogger("omnifuse.data")

IGNORE_INDEX = -100
"""Label of positions that carry no MLM loss (the HF convention)."""

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")

Document = list[str]


def split_sentences(text: str) -> list[str]:
    """A paragraph -> its sentences (split after . ! ? followed by white space)."""
    return [s.strip() for s in _SENTENCE_END.split(text) if s.strip()]


def _as_document(value: Any) -> Document:
    """A text value -> sentences: a string is split into sentences, a list is taken as sentences."""
    if isinstance(value, str):
        return split_sentences(value)
    if isinstance(value, (list, tuple)):
        return [s.strip() for v in value if isinstance(v, str) for s in split_sentences(v)]
    return []


def read_text_documents(path: Path) -> list[Document]:
    """A plain-text file: blank lines separate documents; each line is split into sentences."""
    docs: list[Document] = []
    current: Document = []
    for line in path.read_text(encoding="utf-8-sig").splitlines():
        if line.strip():
            current.extend(split_sentences(line))
        elif current:
            docs.append(current)
            current = []
    if current:
        docs.append(current)
    return docs


TEXT_SUFFIXES = (".txt", ".text")


def read_documents(spec: str | Path, column: str = "text", strict: bool = False) -> list[Document]:
    """Documents (lists of sentences) from a text file, a directory of text files, or a manifest.

    A manifest (JSONL / CSV / shard directory) gives one document per row, from the column that
    `column` names (a string is split into sentences; a list is a list of sentences).
    """
    from omnifuse.data.readers import read_samples
    from omnifuse.data.sample import CorruptSamplePolicy

    path = Path(spec)
    if not path.exists():
        raise DataError(f"{path}: no such file or directory (documents for masked language modelling)")
    if path.is_file() and path.suffix.lower() in TEXT_SUFFIXES:
        docs = read_text_documents(path)
    elif path.is_dir() and any(path.glob("*.txt")) and not (path / "index.json").exists():
        docs = [d for f in sorted(path.glob("*.txt")) for d in read_text_documents(f)]
    else:
        policy = CorruptSamplePolicy(strict=strict, name=str(path))
        samples = read_samples(path, columns={"text": column}, policy=policy)
        docs = [_as_document(s.inputs.get("text")) for s in samples]
    docs = [d for d in docs if d]
    if not docs:
        raise DataError(f"{path}: no non-empty documents found (column '{column}' for manifests)")
    return docs


def _chunk(sentences: Document, start: int, budget: int, count: Callable[[str], int]) -> tuple[str, int]:
    """Greedy run of sentences from `start` within `budget` tokens (at least one); (text, end)."""
    end, used = start, 0
    while end < len(sentences):
        n = count(sentences[end])
        if end > start and used + n > budget:
            break
        used += n
        end += 1
    return " ".join(sentences[start:end]), end


def build_nsp_pairs(
    documents: Sequence[Document],
    max_tokens: int,
    count_tokens: Callable[[str], int],
    seed: int = 0,
    nsp: bool = True,
    source: str = "documents",
) -> tuple[list[Sample], int]:
    """Training samples from documents; returns (samples, number of documents dropped).

    With `nsp`, each sample's text is the pair ``[A, B]`` and its label `nsp` is 0 when B is
    the run of sentences that follows A in the same document, 1 when B comes from another
    document (chosen with probability 0.5). A and B each get half of `max_tokens` (less the
    three special tokens). Documents with fewer than two sentences cannot give a pair and are
    dropped (counted); at least two documents must remain, for the random halves.
    Without `nsp`, a sample is one run of sentences within `max_tokens` (less two specials)
    and no document is dropped.
    """
    rng = random.Random(seed)
    if not nsp:
        samples = []
        for d, doc in enumerate(documents):
            i = 0
            while i < len(doc):
                text, i = _chunk(doc, i, max_tokens - 2, count_tokens)
                samples.append(Sample({"text": text}, meta={"source": f"{source}:doc{d}"}))
        return samples, 0
    usable = [(d, doc) for d, doc in enumerate(documents) if len(doc) >= 2]
    dropped = len(documents) - len(usable)
    if len(usable) < 2:
        raise DataError(
            f"{source}: next-sentence prediction needs documents of at least two sentences; "
            f"{dropped} of {len(documents)} document(s) were too short, {len(usable)} left (at least 2 "
            "needed for random next segments). Give longer documents (blank lines separate documents "
            "in a text file) or set model.nsp: false"
        )
    if dropped:
        logger.warning("%s: dropped %d of %d documents too short for NSP", source, dropped, len(documents))
    half = max(1, (max_tokens - 3) // 2)
    samples = []
    for d, doc in usable:
        i = 0
        while i < len(doc) - 1:
            a, j = _chunk(doc, i, half, count_tokens)
            if j >= len(doc):  # A took the rest: shorten it to one sentence so a B follows
                a, j = _chunk(doc, i, 0, count_tokens)
            if rng.random() < 0.5:
                b, _ = _chunk(doc, j, half, count_tokens)
                label = 0
            else:
                other = usable[rng.randrange(len(usable) - 1)]
                if other[0] == d:  # any document but this one
                    other = usable[-1]
                start = rng.randrange(len(other[1]))
                b, _ = _chunk(other[1], start, half, count_tokens)
                label = 1
            samples.append(
                Sample({"text": [a, b]}, labels={"nsp": label}, meta={"source": f"{source}:doc{d}"})
            )
            i = j
    return samples, dropped


def train_wordpiece_tokenizer(texts: Sequence[str], vocab_size: int = 4000, min_frequency: int = 2):
    """A BERT-style WordPiece tokenizer (lower-cased) trained offline on `texts` with HF `tokenizers`.

    Specials: [PAD] [UNK] [CLS] [SEP] [MASK]; single texts are wrapped as ``[CLS] A [SEP]`` and
    pairs as ``[CLS] A [SEP] B [SEP]`` with segment ids 0 and 1.
    """
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    from omnifuse.data.processors import SPECIAL_TOKENS

    if not texts:
        raise DataError("no text to train a WordPiece tokenizer on")
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    trainer = trainers.WordPieceTrainer(
        vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=SPECIAL_TOKENS, show_progress=False
    )
    tok.train_from_iterator(list(texts), trainer=trainer)
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls), ("[SEP]", sep)],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
    )


def check_mask_token(tokenizer: Any, name: str) -> None:
    """Masked language modelling needs a mask token; name the tokenizer that lacks one."""
    if getattr(tokenizer, "mask_token", None) is None or getattr(tokenizer, "mask_token_id", None) is None:
        raise ValueError(
            f"tokenizer {name!r} has no mask token, so it cannot be used for masked language modelling; "
            "pick a tokenizer with one (BERT-style [MASK]) or leave the tokenizer unset to train a WordPiece one"
        )


@register_processor("masked_text")
class MaskedTextProcessor(TextProcessor):
    """Text (or, with `pairs`, [A, B] segment pairs) -> ids, mask and segment ids; MLM masking when training.

    Output keys: `text` (B, T) ids, `text_mask` (B, T), `text_segments` (B, T) token type ids and,
    with `train=True`, `mlm_input` (B, T) masked ids and `mlm_labels` (B, T) (original id at masked
    positions, -100 elsewhere). Without `pairs` a list value is a list of paraphrases (one is
    picked), as in :class:`TextProcessor`.
    """

    def __init__(
        self,
        tokenizer: Any,
        max_length: int = 128,
        mlm_probability: float = 0.15,
        whole_word_mask: bool = False,
        pairs: bool = False,
        name_or_path: str | None = None,
    ):
        super().__init__(tokenizer, max_length, name_or_path)
        if not 0.0 < mlm_probability < 1.0:
            raise ValueError(f"mlm_probability must be in (0, 1); got {mlm_probability}")
        check_mask_token(tokenizer, name_or_path or type(tokenizer).__name__)
        if whole_word_mask and not getattr(tokenizer, "is_fast", False):
            raise ValueError("whole_word_mask needs a fast tokenizer (word offsets); this one is not")
        self.mlm_probability = mlm_probability
        self.whole_word_mask = whole_word_mask
        self.pairs = pairs
        self._collator = None

    @property
    def collator(self):
        """transformers' `DataCollatorForLanguageModeling`, used for its masking only."""
        if self._collator is None:
            from transformers import DataCollatorForLanguageModeling

            self._collator = DataCollatorForLanguageModeling(
                self.tokenizer,
                mlm=True,
                mlm_probability=self.mlm_probability,
                whole_word_mask=self.whole_word_mask,
            )
        return self._collator

    def encode(
        self, values: Sequence[Any], rngs: Sequence[random.Random] | None = None
    ) -> dict[str, torch.Tensor]:
        if self.pairs:
            bad = [v for v in values if not (isinstance(v, (list, tuple)) and len(v) == 2)]
            if bad:
                raise ValueError(f"a segment-pair text value is [A, B]; got {bad[0]!r}")
            firsts, seconds = [v[0] for v in values], [v[1] for v in values]
            enc = self.tokenizer(
                firsts, seconds, padding=True, truncation="longest_first", max_length=self.max_length,
                return_tensors="pt", return_special_tokens_mask=True, return_token_type_ids=True,
                return_offsets_mapping=self.whole_word_mask,
            )  # fmt: skip
        else:
            texts = [self.choose(v, rngs[i] if rngs else None) for i, v in enumerate(values)]
            enc = self.tokenizer(
                texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt",
                return_special_tokens_mask=True, return_token_type_ids=True,
                return_offsets_mapping=self.whole_word_mask,
            )  # fmt: skip
        return enc

    def mask(
        self,
        ids: torch.Tensor,
        special_tokens_mask: torch.Tensor,
        generator: torch.Generator,
        offsets: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(masked ids, labels) by `DataCollatorForLanguageModeling.torch_mask_tokens`; padding never masked."""
        collator = self.collator
        collator.generator = generator
        return collator.torch_mask_tokens(ids.clone(), special_tokens_mask.bool(), offsets)

    def __call__(
        self,
        values: Sequence[Any],
        train: bool = False,
        rngs: Sequence[random.Random] | None = None,
    ) -> dict[str, torch.Tensor]:
        enc = self.encode(values, rngs if train else None)
        out = {
            "text": enc["input_ids"],
            "text_mask": enc["attention_mask"],
            "text_segments": enc["token_type_ids"],
        }
        if train:
            seed = rngs[0].getrandbits(63) if rngs else random.getrandbits(63)
            generator = torch.Generator().manual_seed(seed)
            offsets = enc.get("offset_mapping") if self.whole_word_mask else None
            special = enc["special_tokens_mask"] | (enc["attention_mask"] == 0)
            out["mlm_input"], out["mlm_labels"] = self.mask(enc["input_ids"], special, generator, offsets)
        return out

    def state(self) -> dict[str, Any]:
        return {
            **super().state(),
            "mlm_probability": self.mlm_probability,
            "whole_word_mask": self.whole_word_mask,
            "pairs": self.pairs,
        }


def write_documents(path: str | Path, documents: Sequence[Document]) -> Path:
    """Write documents as a plain-text file: one sentence per line, a blank line between documents."""
    path = Path(path)
    path.write_text("\n\n".join("\n".join(doc) for doc in documents) + "\n", encoding="utf-8")
    return path


def write_jsonl_documents(path: str | Path, documents: Sequence[Document], column: str = "text") -> Path:
    path = Path(path)
    path.write_text("".join(json.dumps({column: " ".join(doc)}) + "\n" for doc in documents))
    return path
