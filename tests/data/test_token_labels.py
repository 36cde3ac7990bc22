"""Word tags -> sub-word token labels: first sub-token labelled, the rest ignored; bad rows named."""

from __future__ import annotations

import pytest
from tokenizers import Tokenizer, models, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast

from omnifuse.data.sample import DataError, Sample
from omnifuse.data.token_labels import (
    IGNORE_INDEX,
    TokenLabelEncoder,
    align_labels,
    first_token_positions,
    label_names_from,
)


def _subword_tokenizer() -> PreTrainedTokenizerFast:
    """A tiny WordPiece tokenizer that cuts 'circles' into 'circle' + '##s'."""
    vocab = {
        t: i
        for i, t in enumerate(
            ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "a", "red", "circle", "##s", "blue", "sq", "##uare"]
        )
    }
    tok = Tokenizer(models.WordPiece(vocab=vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]"
    )


def test_align_labels_first_subtoken_only():
    assert align_labels([None, 0, 1, 1, 2, None], [5, 6, 7]) == [
        IGNORE_INDEX,
        5,
        6,
        IGNORE_INDEX,
        7,
        IGNORE_INDEX,
    ]
    assert first_token_positions([None, 0, 1, 1, 2, None]) == [1, 2, 4]


def test_encoder_aligns_subwords_and_pads():
    enc = TokenLabelEncoder(_subword_tokenizer(), ["O", "B-x"], "tags", max_length=16)
    samples = [
        Sample({"text": "a red circles"}, {"tags": "O B-x B-x"}),
        Sample({"text": "blue square"}, {"tags": ["B-x", "O"]}),
    ]
    out = enc.encode(samples)
    ids = out["text"].tolist()
    assert ids[0] == [2, 4, 5, 6, 7, 3]  # [CLS] a red circle ##s [SEP]
    assert ids[1] == [2, 8, 9, 10, 3, 0]  # [CLS] blue sq ##uare [SEP] [PAD]
    assert out["token_labels"].tolist() == [
        [IGNORE_INDEX, 0, 1, 1, IGNORE_INDEX, IGNORE_INDEX],
        [IGNORE_INDEX, 1, 0, IGNORE_INDEX, IGNORE_INDEX, IGNORE_INDEX],
    ]
    assert out["text_mask"].tolist()[1] == [1, 1, 1, 1, 1, 0]


def test_misaligned_labels_name_row_and_counts():
    enc = TokenLabelEncoder(_subword_tokenizer(), ["O", "B-x"], "tags", max_length=16)
    bad = [
        Sample({"text": "a red"}, {"tags": "O O"}),
        Sample({"text": "a red circle"}, {"tags": "O B-x"}, {"source": "g.jsonl:2"}),
    ]
    with pytest.raises(DataError, match=r"g.jsonl:2: the text has 3 words but 'tags' has 2 labels"):
        enc.encode(bad)
    with pytest.raises(DataError, match=r"row 0: labels \['B-y'\] are not among the model's \['O', 'B-x'\]"):
        enc.encode([Sample({"text": "a"}, {"tags": "B-y"})])


def test_label_names_o_first_then_by_type():
    samples = [Sample({"text": "a b c d"}, {"t": "I-zeta B-zeta O B-alpha"})]
    assert label_names_from(samples, "t") == ["O", "B-alpha", "B-zeta", "I-zeta"]
