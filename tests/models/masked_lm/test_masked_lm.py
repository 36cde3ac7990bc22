"""masked_lm: masking statistics, NSP pairs, loss parity with HF, artifact, tower reuse, bad input, CLI."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch
import transformers
import yaml

from omnifuse.data.masked_text import (
    MaskedTextProcessor,
    build_nsp_pairs,
    read_documents,
    train_wordpiece_tokenizer,
    write_documents,
)
from omnifuse.data.processors import Processor, build_word_tokenizer
from omnifuse.data.sample import DataError
from omnifuse.data.synth.pretraining import scene_documents
from omnifuse.models.masked_lm.model import MaskedLM

DOCS = [
    ["the red circle is big.", "it sits on the left.", "a blue square is near it."],
    ["dogs bark at night.", "cats sleep all day."],
    ["one long sentence about green stars and purple diamonds.", "and another one."],
    ["a lonely sentence."],
]


def words(text: str) -> int:
    return len(text.split())


@pytest.fixture(scope="module")
def tokenizer():
    docs = scene_documents(40, seed=1)
    return train_wordpiece_tokenizer([s for d in docs for s in d], vocab_size=300, min_frequency=1)


def tiny_bert(tokenizer, nsp: bool = True):
    config = transformers.BertConfig(
        vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=64, type_vocab_size=2,
    )  # fmt: skip
    torch.manual_seed(0)
    return (transformers.BertForPreTraining if nsp else transformers.BertForMaskedLM)(config)


def test_masking_statistics_80_10_10_and_specials_never_masked(tokenizer):
    proc = MaskedTextProcessor(tokenizer, max_length=64)
    docs = scene_documents(300, seed=2)
    texts = [" ".join(d[:2]) for d in docs]
    batch = proc(texts, train=True, rngs=[random.Random(i) for i in range(len(texts))])
    ids, masked, labels = batch["text"], batch["mlm_input"], batch["mlm_labels"]
    special = torch.tensor(
        [tokenizer.get_special_tokens_mask(row, already_has_special_tokens=True) for row in ids.tolist()]
    ).bool() | (batch["text_mask"] == 0)
    chosen = labels != -100
    assert not (chosen & special).any(), "a special or padding token was chosen for prediction"
    assert torch.equal(masked[special], ids[special]), "a special or padding token was changed"
    assert torch.equal(labels[chosen], ids[chosen])
    rate = chosen.sum().item() / (~special).sum().item()
    assert abs(rate - 0.15) < 0.02, rate
    n = chosen.sum().item()
    as_mask = (masked[chosen] == tokenizer.mask_token_id).sum().item() / n
    kept = (masked[chosen] == ids[chosen]).sum().item() / n
    randomised = 1 - as_mask - kept
    assert abs(as_mask - 0.8) < 0.04 and abs(kept - 0.1) < 0.03 and abs(randomised - 0.1) < 0.03, (
        as_mask,
        kept,
        randomised,
    )
    assert not (masked[~chosen] != ids[~chosen]).any(), "an unchosen token was changed"


def test_masking_is_seeded_by_the_loader_rngs(tokenizer):
    proc = MaskedTextProcessor(tokenizer, max_length=32)
    texts = ["a red circle left of a blue square"] * 8
    a = proc(texts, train=True, rngs=[random.Random(5) for _ in texts])
    b = proc(texts, train=True, rngs=[random.Random(5) for _ in texts])
    c = proc(texts, train=True, rngs=[random.Random(6) for _ in texts])
    assert torch.equal(a["mlm_input"], b["mlm_input"]) and not torch.equal(a["mlm_labels"], c["mlm_labels"])
    assert "mlm_input" not in proc(texts, train=False)


def test_whole_word_masking_masks_every_piece_of_a_word():
    tok = train_wordpiece_tokenizer([s for d in scene_documents(20) for s in d], 50, 1)  # words split
    proc = MaskedTextProcessor(tok, max_length=32, whole_word_mask=True, mlm_probability=0.5)
    enc = tok("triangles hexagons", return_offsets_mapping=True, add_special_tokens=False)
    assert len(enc["input_ids"]) > 2  # the word is split into pieces
    batch = proc(["triangles hexagons"] * 64, train=True, rngs=[random.Random(i) for i in range(64)])
    chosen = batch["mlm_labels"] != -100  # (B, T)
    word_ids = tok("triangles hexagons").word_ids()
    for row in chosen:
        for w in {w for w in word_ids if w is not None}:
            pieces = [row[i].item() for i, x in enumerate(word_ids) if x == w]
            assert all(pieces) or not any(pieces), "a word was masked only in part"


def test_nsp_pairs_labels_and_segment_ids(tokenizer):
    samples, dropped = build_nsp_pairs(DOCS, max_tokens=12, count_tokens=words, seed=0)
    assert dropped == 1  # the one-sentence document
    assert samples, "no pairs built"
    sentence_doc = {s: d for d, doc in enumerate(DOCS) for s in doc}
    for s in samples:
        a, b = s.inputs["text"]
        first_a, last_a, first_b = a.split(". ")[0], a, b.split(". ")[0]
        doc_a = sentence_doc[first_a if first_a.endswith(".") else first_a + "."]
        doc_b = sentence_doc[first_b if first_b.endswith(".") else first_b + "."]
        if s.labels["nsp"] == 0:  # B continues A in the same document
            doc = DOCS[doc_a]
            last = last_a.split(". ")[-1]
            last = last if last.endswith(".") else last + "."
            assert (
                doc_b == doc_a
                and doc.index(first_b if first_b.endswith(".") else first_b + ".") == doc.index(last) + 1
            )
        else:
            assert doc_b != doc_a
    # about half random over a bigger corpus
    many, _ = build_nsp_pairs(scene_documents(200, seed=3), 64, words, seed=1)
    share = sum(s.labels["nsp"] for s in many) / len(many)
    assert 0.4 < share < 0.6
    proc = MaskedTextProcessor(tokenizer, max_length=64, pairs=True)
    batch = proc([["a red circle.", "a blue square."]])
    ids, seg = batch["text"][0].tolist(), batch["text_segments"][0].tolist()
    first_sep = ids.index(tokenizer.sep_token_id)
    assert seg[: first_sep + 1] == [0] * (first_sep + 1) and seg[first_sep + 1 :] == [1] * (
        len(ids) - first_sep - 1
    )


def test_documents_too_short_for_nsp_fail_and_count(caplog):
    with pytest.raises(DataError, match=r"3 of 4 document\(s\) were too short, 1 left"):
        build_nsp_pairs(DOCS[1:2] + [["x."], ["y."], ["z."]], 12, words)
    _, dropped = build_nsp_pairs(DOCS, 12, words)
    assert dropped == 1 and "dropped 1 of 4 documents" in caplog.text
    samples, dropped = build_nsp_pairs([["x."], ["y."]], 12, words, nsp=False)  # RoBERTa-style: no pairs
    assert dropped == 0 and [s.inputs["text"] for s in samples] == ["x.", "y."]


def test_read_documents_text_and_jsonl(tmp_path):
    path = write_documents(tmp_path / "docs.txt", DOCS)
    assert read_documents(path) == DOCS
    (tmp_path / "d.jsonl").write_text('{"body": "One. Two!"}\n{"body": ["Three.", "Four? Five."]}\n')
    assert read_documents(tmp_path / "d.jsonl", column="body") == [
        ["One.", "Two!"],
        ["Three.", "Four?", "Five."],
    ]


def test_loss_equals_the_hf_models_own_loss(tokenizer):
    hf = tiny_bert(tokenizer)
    model = MaskedLM(hf, Processor({"text": MaskedTextProcessor(tokenizer, 32, pairs=True)}), nsp=True).eval()
    pairs = [["a red circle.", "a blue square."], ["there is a star.", "two objects."]] * 4
    batch = model.processor["text"](pairs, train=True, rngs=[random.Random(i) for i in range(len(pairs))])
    batch["next_sentence_label"] = torch.tensor([0, 1] * 4)
    ours = model(batch)
    theirs = hf(
        input_ids=batch["mlm_input"], attention_mask=batch["text_mask"], token_type_ids=batch["text_segments"],
        labels=batch["mlm_labels"], next_sentence_label=batch["next_sentence_label"],
    ).loss  # fmt: skip
    torch.testing.assert_close(ours.loss, theirs)
    assert set(ours.losses) == {"mlm", "nsp"}
    torch.testing.assert_close(ours.losses["mlm"] + ours.losses["nsp"], ours.loss)
    mlm_only = MaskedLM(tiny_bert(tokenizer, nsp=False), model.processor, nsp=False).eval()
    theirs = mlm_only.model(
        input_ids=batch["mlm_input"], attention_mask=batch["text_mask"], token_type_ids=batch["text_segments"],
        labels=batch["mlm_labels"],
    )  # fmt: skip
    torch.testing.assert_close(mlm_only(batch).loss, theirs.loss)


def test_save_load_round_trip_and_tower(tokenizer, tmp_path):
    from omnifuse.encoders.factory import TowerConfig, build_encoder
    from omnifuse.models.factory import load_model

    model = MaskedLM(
        tiny_bert(tokenizer), Processor({"text": MaskedTextProcessor(tokenizer, 32, pairs=True)})
    )
    model.eval().save_pretrained(tmp_path / "a")
    loaded = load_model(tmp_path / "a")
    assert isinstance(loaded, MaskedLM) and loaded.nsp
    batch = model.processor["text"]([["a red circle.", "a blue square."]])
    torch.testing.assert_close(loaded(batch).mlm_logits, model(batch).mlm_logits)
    assert loaded.processor["text"].pairs and len(loaded.processor["text"].tokenizer) == len(tokenizer)
    tower = build_encoder(TowerConfig(source="omnifuse", name_or_path=str(tmp_path / "a")), "text")
    torch.testing.assert_close(tower.eval()(batch).tokens, model.encoder().eval()(batch).tokens)
    with pytest.raises(ValueError, match="has no image encoder"):
        build_encoder(TowerConfig(source="omnifuse", name_or_path=str(tmp_path / "a")), "image")


def test_bad_input_errors(tmp_path, tokenizer):
    from omnifuse.models.masked_lm.config import MaskedLMConfig
    from omnifuse.models.masked_lm.model import _tokenizer

    with pytest.raises(ValueError, match="needs a tokenizer .* or training text"):
        _tokenizer(MaskedLMConfig(), [])
    no_mask = build_word_tokenizer(["a b c"])
    no_mask.mask_token = None
    with pytest.raises(ValueError, match="has no mask token"):
        MaskedTextProcessor(no_mask, 16)
    no_mask.save_pretrained(tmp_path / "tok")
    with pytest.raises(ValueError, match="has no mask token"):
        _tokenizer(MaskedLMConfig(tokenizer=str(tmp_path / "tok")), ["a b c"])
    with pytest.raises(ValueError, match="no next-sentence-prediction head"):
        MaskedLM(tiny_bert(tokenizer, nsp=False), nsp=True)
    (tmp_path / "empty.txt").write_text("\n\n")
    with pytest.raises(DataError, match="no non-empty documents"):
        read_documents(tmp_path / "empty.txt")


@pytest.mark.slow
def test_cli_trains_masked_lm_and_reuses_it_as_a_text_tower(tmp_path):
    from omnifuse.cli.main import main
    from omnifuse.models.factory import load_model

    docs = scene_documents(48, seed=0)
    write_documents(tmp_path / "train.txt", docs[:40])
    write_documents(tmp_path / "val.txt", docs[40:])
    recipe = yaml.safe_load((Path(__file__).parents[3] / "recipes" / "shapes_masked_lm.yaml").read_text())
    recipe.update(name="mlm", output_dir=str(tmp_path / "runs"))
    recipe["data"] = {"train": str(tmp_path / "train.txt"), "val": str(tmp_path / "val.txt")}
    recipe["model"].update(
        vocab_size=200, max_length=48, overrides={"hidden_size": 32, "intermediate_size": 64}
    )
    recipe["train"].update(batch_size=8, max_steps=4, eval_every=None, log_every=2, progress=False)
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(recipe))
    assert main(["train", str(tmp_path / "r.yaml")]) == 0
    rows = [yaml.safe_load(line) for line in (tmp_path / "runs/mlm/metrics.jsonl").read_text().splitlines()]
    assert any("train/loss_nsp" in r for r in rows)
    final = rows[-1]
    for key in ("val/mlm_accuracy", "val/mlm_accuracy_unigram", "val/perplexity", "val/nsp_accuracy"):
        assert key in final
    assert isinstance(load_model(tmp_path / "runs/mlm/best"), MaskedLM)
    # the encoder as the text tower of a classifier
    (tmp_path / "cls.jsonl").write_text(
        "".join(f'{{"text": "{d[0]}", "label": "{"many" if "," in d[0] else "few"}"}}\n' for d in docs)
    )
    cls = {
        "name": "cls", "output_dir": str(tmp_path / "runs"),
        "data": {"train": str(tmp_path / "cls.jsonl"), "columns": {"text": "text"}},
        "model": {
            "type": "fusion_classifier", "fusion": {"name": "concat"},
            "encoders": {"text": {"source": "omnifuse", "name_or_path": str(tmp_path / "runs/mlm/best")}},
        },
        "train": {"batch_size": 8, "max_steps": 2, "log_every": 1, "progress": False},
    }  # fmt: skip
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cls))
    assert main(["train", str(tmp_path / "c.yaml")]) == 0
    clf = load_model(tmp_path / "runs/cls/best")
    assert len(clf.processor["text"].tokenizer) == len(
        load_model(tmp_path / "runs/mlm/best").processor["text"].tokenizer
    )


def test_continues_from_an_hf_checkpoint_directory(tokenizer, tmp_path):
    from omnifuse.models.masked_lm.config import MaskedLMConfig
    from omnifuse.models.masked_lm.model import _tokenizer
    from omnifuse.models.registry import get_spec

    tiny_bert(tokenizer).save_pretrained(tmp_path / "bert")
    tokenizer.save_pretrained(tmp_path / "bert")
    cfg = MaskedLMConfig(source="hf", name_or_path=str(tmp_path / "bert"))
    tok, name = _tokenizer(cfg, [])  # the checkpoint's own tokenizer, no training text needed
    assert name == str(tmp_path / "bert") and len(tok) == len(tokenizer)
    processor = Processor({"text": MaskedTextProcessor(tok, 32, pairs=True)})
    model = get_spec("masked_lm").build(cfg, processor)
    assert model.nsp and type(model.model).__name__ == "BertForPreTraining"
    original = transformers.BertForPreTraining.from_pretrained(tmp_path / "bert")
    torch.testing.assert_close(
        model.model.bert.embeddings.word_embeddings.weight, original.bert.embeddings.word_embeddings.weight
    )
    roberta = transformers.RobertaConfig(
        vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=70,
    )  # fmt: skip
    transformers.RobertaForMaskedLM(roberta).save_pretrained(tmp_path / "roberta")  # no NSP head
    cfg = MaskedLMConfig(
        source="hf", name_or_path=str(tmp_path / "roberta"), tokenizer=str(tmp_path / "bert")
    )
    with pytest.raises(ValueError, match="no next-sentence-prediction head; set model.nsp: false"):
        get_spec("masked_lm").build(cfg, processor)
    cfg = MaskedLMConfig(
        source="hf", name_or_path=str(tmp_path / "roberta"), tokenizer=str(tmp_path / "bert"), nsp=False
    )
    assert not get_spec("masked_lm").build(cfg, processor).nsp  # RoBERTa-style: MLM only
