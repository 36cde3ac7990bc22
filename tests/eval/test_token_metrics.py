"""Our token metrics equal seqeval's (default, conlleval-style mode) on the same inputs."""

from __future__ import annotations

import math
import random
import warnings

import pytest

from omnifuse.eval.token_metrics import entities, entity_report, token_accuracy, token_metrics

seqeval = pytest.importorskip("seqeval.metrics")

TAGS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-MISC", "I-MISC", "B", "I", "E-PER", "S-LOC"]


def _random_tags(rng: random.Random, n_sent: int, bio_only: bool) -> tuple[list[list[str]], list[list[str]]]:
    tags = TAGS[:7] if bio_only else TAGS
    true, pred = [], []
    for _ in range(n_sent):
        n = rng.randint(0, 9)
        t = [rng.choice(tags) for _ in range(n)]
        p = [x if rng.random() < 0.6 else rng.choice(tags) for x in t]
        true.append(t)
        pred.append(p)
    return true, pred


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("bio_only", [True, False])
def test_equal_to_seqeval(seed, bio_only):
    rng = random.Random(seed)
    true, pred = _random_tags(rng, rng.randint(1, 12), bio_only)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = seqeval.classification_report(true, pred, output_dict=True, zero_division=0)
        want = {
            "accuracy": seqeval.accuracy_score(true, pred) if any(true) else 0.0,
            "precision": seqeval.precision_score(true, pred, zero_division=0),
            "recall": seqeval.recall_score(true, pred, zero_division=0),
            "f1": seqeval.f1_score(true, pred, zero_division=0),
        }
    got = entity_report(true, pred)
    assert set(got) == set(ref)
    for key, row in ref.items():
        for metric, value in row.items():
            value = 0.0 if math.isnan(value) else float(value)  # no entity at all: seqeval's NaN is our 0
            assert got[key][metric] == pytest.approx(value, abs=1e-12), (key, metric)
    assert token_metrics(true, pred) == pytest.approx(want, abs=1e-12)


def test_entities_of_a_known_sentence():
    assert entities([["B-PER", "I-PER", "O", "B-LOC"], ["I-LOC", "I-LOC", "B-LOC"]]) == [
        ("PER", 0, 1),
        ("LOC", 3, 3),
        ("LOC", 5, 6),  # an I- after the sentence break starts a new entity
        ("LOC", 7, 7),
    ]


def test_partial_span_is_wrong_and_accuracy_counts_tokens():
    true = [["B-A", "I-A", "O"]]
    pred = [["B-A", "O", "O"]]
    m = token_metrics(true, pred, prefix="val/")
    assert m == {"val/accuracy": pytest.approx(2 / 3), "val/precision": 0.0, "val/recall": 0.0, "val/f1": 0.0}
    assert token_accuracy([["O"]], [["O"]]) == 1.0


def test_mismatched_lengths_name_the_sentence():
    with pytest.raises(ValueError, match="sentence 1: 2 true tags but 1 predicted tags"):
        entity_report([["O"], ["O", "O"]], [["O"], ["O"]])
    with pytest.raises(ValueError, match="2 true sentences but 1 predicted"):
        token_accuracy([["O"], ["O"]], [["O"]])
