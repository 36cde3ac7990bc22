import json

import numpy as np
import pytest
import torch

from omnifuse.eval.linear_probe import linear_probe
from omnifuse.eval.metrics import (
    bidirectional_retrieval,
    classification_report,
    confusion_matrix,
    retrieval_metrics,
    retrieval_ranks,
    topk_accuracy,
)

# ---------------------------------------------------------------------------- retrieval


def test_identity_is_perfect():
    m = retrieval_metrics(torch.eye(5), ks=(1, 5))
    assert m == {"R@1": 1.0, "R@5": 1.0, "median_rank": 1.0, "mean_rank": 1.0}


def test_reversed_order_known_ranks():
    # target scores decrease with j for every query, so target i has exactly i targets above it
    n = 4
    sim = torch.arange(n, 0, -1, dtype=torch.float).repeat(n, 1)  # every row: [4, 3, 2, 1]
    assert retrieval_ranks(sim).tolist() == [1, 2, 3, 4]
    m = retrieval_metrics(sim, ks=(1, 2, 3))
    assert m["R@1"] == pytest.approx(0.25)
    assert m["R@2"] == pytest.approx(0.5)
    assert m["R@3"] == pytest.approx(0.75)
    assert m["median_rank"] == pytest.approx(2.5)
    assert m["mean_rank"] == pytest.approx(2.5)


def test_constant_matrix_is_not_rewarded():
    m = retrieval_metrics(torch.zeros(6, 6), ks=(1, 5))
    assert m["R@1"] == 0.0
    assert m["R@5"] == 0.0  # every query ties with all 5 wrong targets: rank 6
    assert m["median_rank"] == 6.0


def test_ties_count_against_query():
    sim = torch.tensor([[0.5, 0.5, 0.1], [0.9, 0.2, 0.2], [0.0, 0.3, 0.3]])
    # q0: one wrong target ties -> 2; q1: one above and one tie -> 3; q2: one wrong ties -> 2
    assert retrieval_ranks(sim).tolist() == [2, 3, 2]


def test_multiple_correct_targets_best_counts():
    sim = torch.tensor(
        [
            [0.1, 0.9, 0.8, 0.3, 0.2],  # correct {2, 4}: best correct is 2 (0.8), one wrong above -> 2
            [0.7, 0.1, 0.2, 0.6, 0.5],  # correct {0}: rank 1
            [0.1, 0.2, 0.3, 0.4, 0.5],  # correct {0, 1}: best is 1 (0.2), wrong above: 2, 3, 4 -> 4
        ]
    )
    targets = [[2, 4], [0], [0, 1]]
    assert retrieval_ranks(sim, targets).tolist() == [2, 1, 4]
    m = retrieval_metrics(sim, targets, ks=(1, 2), prefix="x/")
    assert m["x/R@1"] == pytest.approx(1 / 3)
    assert m["x/R@2"] == pytest.approx(2 / 3)
    assert m["x/median_rank"] == 2.0
    assert m["x/mean_rank"] == pytest.approx(7 / 3)


def test_retrieval_bad_inputs():
    with pytest.raises(ValueError, match="square"):
        retrieval_metrics(torch.zeros(2, 3))
    with pytest.raises(ValueError, match="empty"):
        retrieval_metrics(torch.zeros(2, 3), [[0], []])
    with pytest.raises(ValueError, match="outside"):
        retrieval_metrics(torch.zeros(2, 3), [[0], [3]])
    with pytest.raises(ValueError, match="NaN"):
        retrieval_metrics(torch.full((2, 2), float("nan")))


def _paired(n=40, d=16, noise=0.5, seed=0):
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(n, d, generator=g)
    b = a + noise * torch.randn(n, d, generator=g)
    return torch.nn.functional.normalize(a, dim=-1), torch.nn.functional.normalize(b, dim=-1)


def test_bidirectional_keys_and_values():
    a, b = _paired()
    m = bidirectional_retrieval(a, b, ks=(1, 5))
    expected = {
        f"{d}/{k}"
        for d in ("text_to_image", "image_to_text")
        for k in ("R@1", "R@5", "median_rank", "mean_rank")
    }
    assert set(m) == expected
    assert all(type(v) is float for v in m.values())
    json.dumps(m)
    assert m["text_to_image/R@1"] == pytest.approx(retrieval_metrics(a @ b.T, ks=(1,))["R@1"])
    assert m["image_to_text/R@1"] == pytest.approx(retrieval_metrics(b @ a.T, ks=(1,))["R@1"])
    named = bidirectional_retrieval(a, b, a_name="audio", b_name="video", ks=(1,))
    assert "audio_to_video/R@1" in named and "video_to_audio/median_rank" in named


def test_chunking_equals_unchunked():
    a, b = _paired(n=37, noise=1.0)
    full = bidirectional_retrieval(a, b, chunk_size=10_000)
    for chunk in (1, 5, 36):
        assert bidirectional_retrieval(a, b, chunk_size=chunk) == full


def test_bidirectional_many_to_one():
    # 2 captions per image: captions 2i and 2i+1 describe image i
    g = torch.Generator().manual_seed(1)
    img = torch.nn.functional.normalize(torch.randn(5, 8, generator=g), dim=-1)
    cap = torch.nn.functional.normalize(
        img.repeat_interleave(2, 0) + 0.01 * torch.randn(10, 8, generator=g), dim=-1
    )
    m = bidirectional_retrieval(cap, img, a_to_b_targets=[[i // 2] for i in range(10)], chunk_size=3)
    assert m["text_to_image/R@1"] == 1.0
    assert m["image_to_text/R@1"] == 1.0
    with pytest.raises(ValueError, match="matched by no"):
        bidirectional_retrieval(cap, img, a_to_b_targets=[[0]] * 10)
    with pytest.raises(ValueError, match="paired"):
        bidirectional_retrieval(cap, img)


# ---------------------------------------------------------------------------- classification


def test_topk_accuracy_hand_computed():
    logits = torch.tensor(
        [
            [0.1, 0.5, 0.2, 0.9],  # target 3: rank 1
            [0.8, 0.1, 0.6, 0.3],  # target 2: rank 2
            [0.4, 0.3, 0.2, 0.1],  # target 3: rank 4
            [0.2, 0.7, 0.5, 0.6],  # target 2: rank 3
        ]
    )
    targets = torch.tensor([3, 2, 3, 2])
    m = topk_accuracy(logits, targets, ks=(1, 2, 3, 5))
    assert m == {"top1": 0.25, "top2": 0.5, "top3": 0.75, "top5": 1.0}  # k=5 > C=4 clipped
    assert topk_accuracy(torch.zeros(3, 4), torch.tensor([0, 1, 2]), ks=(1,))["top1"] == 0.0


def test_topk_bad_inputs():
    with pytest.raises(ValueError, match="targets"):
        topk_accuracy(torch.zeros(2, 3), torch.tensor([0]))
    with pytest.raises(ValueError, match="class indices"):
        topk_accuracy(torch.zeros(2, 3), torch.tensor([0, 3]))


def test_classification_report_hand_counts():
    targets = [0, 0, 0, 1, 1, 2]
    preds = [0, 0, 1, 1, 2, 2]
    rep = classification_report(torch.tensor(preds), np.array(targets), ["cat", "dog", "owl"])
    json.dumps(rep)
    assert rep["accuracy"] == pytest.approx(4 / 6)
    # cat: tp 2, fp 0, fn 1 -> P 1, R 2/3; dog: tp 1, fp 1, fn 1 -> P 1/2, R 1/2; owl: tp 1, fp 1, fn 0
    cat, dog, owl = (rep["per_class"][n] for n in ("cat", "dog", "owl"))
    assert cat == pytest.approx({"precision": 1.0, "recall": 2 / 3, "f1": 0.8, "support": 3})
    assert dog == pytest.approx({"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2})
    assert owl == pytest.approx({"precision": 0.5, "recall": 1.0, "f1": 2 / 3, "support": 1})
    assert rep["macro_f1"] == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)
    assert rep["confusion_matrix"] == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    assert confusion_matrix(preds, targets, 3).tolist() == rep["confusion_matrix"]


def test_classification_report_bad_inputs():
    with pytest.raises(ValueError, match="predictions"):
        classification_report([0, 1], [0], ["a", "b"])
    with pytest.raises(ValueError, match=r"\[0, 2\)"):
        classification_report([0, 2], [0, 1], ["a", "b"])


# ---------------------------------------------------------------------------- linear probe


def _blobs(n_per_class=20, classes=3, d=8, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(classes, d)) * 10
    x = np.concatenate([c + rng.normal(size=(n_per_class, d)) * 0.1 for c in centers])
    y = np.repeat(np.arange(classes), n_per_class)
    return x.astype(np.float32), y


def test_linear_probe_separable():
    xtr, ytr = _blobs(seed=0)
    xte, yte = _blobs(n_per_class=5, seed=0)
    m = linear_probe(torch.from_numpy(xtr), torch.from_numpy(ytr), xte, yte)
    assert m == {"linear_probe/accuracy": 1.0, "linear_probe/macro_f1": 1.0}


def test_linear_probe_bad_inputs():
    x, y = _blobs()
    with pytest.raises(ValueError, match="2 classes"):
        linear_probe(x, np.zeros(len(x)), x, y)
    with pytest.raises(ValueError, match="train_y has"):
        linear_probe(x, y[:-1], x, y)
    with pytest.raises(ValueError, match="test_y has"):
        linear_probe(x, y, x[:5], y)
    with pytest.raises(ValueError, match="features"):
        linear_probe(x, y, x[:, :4], y)


def test_identical_captions_count_as_correct_for_each_other():
    from omnifuse.data import Sample
    from omnifuse.eval.evaluator import same_text_targets

    samples = [Sample({"text": t}) for t in (["a red circle", "x"], "a blue square", "a red circle")]
    assert same_text_targets(samples, [0, 1, 2]) == [[0, 2], [1], [0, 2]]
    assert same_text_targets(samples, [1, 2]) == [[0], [1]]
