"""Caption metrics equal pycocoevalcap's scorers; VQA accuracy; hallucination; the evaluator."""

from __future__ import annotations

import pytest

from omnifuse.eval.captioning import (
    caption_scores,
    hallucination,
    mentions,
    normalize_answer,
    ptb_tokenize,
    vqa_accuracy,
)

REFS = [
    [
        "a red circle left of a blue square",
        "there is a red circle and a blue square",
        "two objects: a red circle and a blue square",
    ],
    ["a large green star at the top", "a green star"],
    ["a yellow triangle", "there is a small yellow triangle in the center"],
]
CANDS = ["a red circle left of a square", "a green star at the top left", "a purple triangle."]


def test_ptb_tokenize_matches_the_ptb_step():
    assert (
        ptb_tokenize("Two objects: a Red circle, and a blue square.")
        == "two objects a red circle and a blue square"
    )
    assert ptb_tokenize("what's left?") == "what's left"


def test_scores_equal_pycocoevalcap_scorers_on_the_same_inputs():
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    ours = caption_scores(REFS, CANDS)
    gts = {i: [ptb_tokenize(r) for r in refs] for i, refs in enumerate(REFS)}
    res = {i: [ptb_tokenize(c)] for i, c in enumerate(CANDS)}
    assert ours["bleu4"] == Bleu(4).compute_score(gts, res, verbose=0)[0][3]
    assert ours["cider"] == Cider().compute_score(gts, res)[0]
    assert ours["rouge_l"] == Rouge().compute_score(gts, res)[0]
    assert 0 < ours["bleu4"] < 1 and ours["cider"] > 0


def _lcs(a, b):
    table = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i, x in enumerate(a):
        for j, y in enumerate(b):
            table[i + 1][j + 1] = table[i][j] + 1 if x == y else max(table[i][j + 1], table[i + 1][j])
    return table[-1][-1]


def test_rouge_l_by_the_formula():
    """ROUGE-L (Lin 2004) with beta 1.2 over max precision / max recall across references."""
    refs, cand = REFS[0], CANDS[0]
    c = ptb_tokenize(cand).split()
    lcs = [_lcs(ptb_tokenize(r).split(), c) for r in refs]
    p = max(n / len(c) for n in lcs)
    r = max(n / len(ptb_tokenize(ref).split()) for n, ref in zip(lcs, refs, strict=True))
    beta = 1.2
    expected = (1 + beta**2) * p * r / (r + beta**2 * p)
    assert caption_scores([refs], [cand])["rouge_l"] == pytest.approx(expected)


def test_identical_captions_score_bleu_one():
    refs = [["a red circle left of a blue square"], ["a green star at the top of the image"]]
    scores = caption_scores(refs, [r[0] for r in refs])
    assert scores["bleu4"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="candidates for"):
        caption_scores(refs, ["a"])


def test_vqa_accuracy_exact_and_soft():
    assert normalize_answer("The Two.") == "2"
    assert vqa_accuracy("Red", ["red"]) == 1.0 and vqa_accuracy("blue", ["red"]) == 0.0
    refs = ["red"] * 3 + ["blue"] * 7  # 3 of 10 annotators said red
    assert vqa_accuracy("red", refs) == pytest.approx((3 * (2 / 3) + 7 * 1.0) / 10)
    assert vqa_accuracy("blue", refs) == 1.0 and vqa_accuracy("green", refs) == 0.0


def test_hallucination_counts_colour_shape_mentions_not_in_the_scene():
    assert mentions("Two red circles and a blue square at the top") == ["red circle", "blue square"]
    out = hallucination(
        ["a red circle left of a blue square", "a green star", "nothing here"],
        [["red circle", "blue square"], ["green triangle"], ["red circle"]],
    )
    assert out["hallucination"] == pytest.approx(1 / 3)
    assert out["hallucination_captions"] == pytest.approx(1 / 3)
    assert out["hallucination_1_objects"] == 1.0 and out["hallucination_2_objects"] == 0.0


def test_evaluator_groups_tasks_and_spreads_its_budget():
    from omnifuse.data.sample import Sample
    from omnifuse.eval.captioning import CaptionerEvaluator

    answers = [
        Sample(inputs={"image": "x.png", "text": "t"}, meta={"task": "answer", "question": f"q{i}"})
        for i in range(100)
    ]
    captions = [Sample(inputs={"image": "x.png", "text": "a red circle"}) for _ in range(3)]
    ev = CaptionerEvaluator(answers + captions, max_items=10)
    assert [s.meta["question"] for s in ev.groups["answer"]] == [f"q{i}" for i in range(0, 100, 10)]
    assert len(ev.groups["caption"]) == 3  # a row without a task and without <image> is a caption
    with pytest.raises(ValueError, match="no caption, answer or few-shot"):
        CaptionerEvaluator([Sample(inputs={"image": "x.png", "text": "<image>x"})])
