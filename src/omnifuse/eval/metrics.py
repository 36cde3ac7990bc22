"""Retrieval and classification metrics on plain tensors and arrays.

Everything here is a pure function of scores and labels: no model, no training loop. Every
metric dict holds plain Python floats, so it can go straight into ``metrics.jsonl``.

Ranks are 1-based and *pessimistic* about ties: the rank of a query is

    1 + #{wrong targets whose score is >= the best correct target's score}

so a model that gives every target the same score ranks every query last (R@1 = 0 for more
than one target), never first. The same rule is used for top-k classification accuracy.
Recall@K as in "Learning Transferable Visual Models From Natural Language Supervision"
(CLIP, https://arxiv.org/abs/2103.00020) and VSE++ (https://arxiv.org/abs/1707.05612).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

ArrayLike = Any  # Tensor, numpy array or nested list


def _as_tensor(x: ArrayLike, name: str) -> Tensor:
    if isinstance(x, Tensor):
        return x.detach()
    try:
        return torch.as_tensor(np.asarray(x))
    except (TypeError, ValueError) as err:
        raise TypeError(f"{name}: expected a tensor or array, got {type(x).__name__}") from err


def _check_ks(ks: Sequence[int]) -> tuple[int, ...]:
    ks = tuple(int(k) for k in ks)
    if not ks or any(k < 1 for k in ks):
        raise ValueError(f"ks must be positive integers, got {ks}")
    return ks


def _targets_mask(
    query_to_targets: Sequence[Sequence[int]], rows: range, num_targets: int, device: torch.device
) -> Tensor:
    """Boolean (len(rows), N) mask of the correct targets of queries ``rows``."""
    mask = torch.zeros(len(rows), num_targets, dtype=torch.bool, device=device)
    for i, q in enumerate(rows):
        targets = list(query_to_targets[q])
        if not targets:
            raise ValueError(f"query_to_targets[{q}] is empty: every query needs at least one correct target")
        bad = [t for t in targets if not 0 <= int(t) < num_targets]
        if bad:
            raise ValueError(f"query_to_targets[{q}] has target(s) {bad} outside [0, {num_targets})")
        mask[i, targets] = True
    return mask


def _ranks_from_sim(sim: Tensor, correct: Tensor) -> Tensor:
    """1-based pessimistic ranks (Q,) from scores (Q, N) and a boolean mask of correct targets (Q, N)."""
    if torch.isnan(sim).any():
        raise ValueError("similarity matrix contains NaN")
    best_correct = sim.masked_fill(~correct, float("-inf")).amax(dim=1, keepdim=True)  # (Q, 1)
    beaten_by = (sim >= best_correct) & ~correct  # (Q, N) wrong targets scoring at least as high
    return beaten_by.sum(dim=1) + 1


def _summarise_ranks(ranks: Tensor, ks: Sequence[int], prefix: str) -> dict[str, float]:
    if ranks.numel() == 0:
        raise ValueError("no queries: cannot compute retrieval metrics on an empty matrix")
    r = ranks.cpu().numpy()
    out = {f"{prefix}R@{k}": float(np.mean(r <= k)) for k in ks}
    out[f"{prefix}median_rank"] = float(np.median(r))
    out[f"{prefix}mean_rank"] = float(np.mean(r))
    return out


def retrieval_ranks(sim: ArrayLike, query_to_targets: Sequence[Sequence[int]] | None = None) -> Tensor:
    """Rank (1-based, ties counted against the query) of each query's best correct target.

    sim: (Q, N) scores, rows are queries. Without ``query_to_targets`` query i matches target i
    and the matrix must be square; with it, ``query_to_targets[i]`` lists the correct targets of
    query i (at least one) and the best-ranked one counts.
    """
    sim = _as_tensor(sim, "sim")
    if sim.dim() != 2:
        raise ValueError(f"sim must be 2-D (queries, targets), got shape {tuple(sim.shape)}")
    num_q, num_t = sim.shape
    if query_to_targets is None:
        if num_q != num_t:
            raise ValueError(
                f"sim has shape {tuple(sim.shape)}: without query_to_targets query i matches target i, "
                "so the matrix must be square"
            )
        correct = torch.eye(num_q, dtype=torch.bool, device=sim.device)
    else:
        if len(query_to_targets) != num_q:
            raise ValueError(f"query_to_targets has {len(query_to_targets)} entries for {num_q} queries")
        correct = _targets_mask(query_to_targets, range(num_q), num_t, sim.device)
    return _ranks_from_sim(sim.float(), correct)


def retrieval_metrics(
    sim: ArrayLike,
    query_to_targets: Sequence[Sequence[int]] | None = None,
    ks: Sequence[int] = (1, 5, 10),
    prefix: str = "",
) -> dict[str, float]:
    """Recall@k, median and mean rank for a (Q, N) similarity matrix (rows are queries).

    Returns ``{prefix}R@{k}`` (fraction of queries with a correct target in the top k),
    ``{prefix}median_rank`` and ``{prefix}mean_rank`` (1-based). Ground truth and tie rule as in
    `retrieval_ranks`: the rank is 1 + the number of wrong targets scoring >= the best correct
    one, so a constant matrix gets rank N for every query.

    >>> retrieval_metrics(torch.eye(3), ks=(1,))
    {'R@1': 1.0, 'median_rank': 1.0, 'mean_rank': 1.0}
    """
    ks = _check_ks(ks)
    return _summarise_ranks(retrieval_ranks(sim, query_to_targets), ks, prefix)


def _chunked_ranks(
    queries: Tensor,
    keys: Tensor,
    query_to_targets: Sequence[Sequence[int]] | None,
    chunk_size: int,
) -> Tensor:
    """Ranks of ``queries @ keys.T`` computed ``chunk_size`` query rows at a time."""
    num_q, num_k = queries.shape[0], keys.shape[0]
    keys_t = keys.float().T  # (D, N)
    ranks = []
    for start in range(0, num_q, chunk_size):
        stop = min(start + chunk_size, num_q)
        sim = queries[start:stop].float() @ keys_t  # (chunk, N)
        if query_to_targets is None:
            correct = torch.zeros_like(sim, dtype=torch.bool)
            rows = torch.arange(stop - start, device=sim.device)
            correct[rows, rows + start] = True
        else:
            correct = _targets_mask(query_to_targets, range(start, stop), num_k, sim.device)
        ranks.append(_ranks_from_sim(sim, correct))
    return torch.cat(ranks) if ranks else torch.zeros(0, dtype=torch.long)


def _invert_targets(a_to_b: Sequence[Sequence[int]], num_b: int) -> list[list[int]]:
    b_to_a: list[list[int]] = [[] for _ in range(num_b)]
    for a, targets in enumerate(a_to_b):
        for b in targets:
            if not 0 <= int(b) < num_b:
                raise ValueError(f"a_to_b_targets[{a}] has target {b} outside [0, {num_b})")
            b_to_a[int(b)].append(a)
    return b_to_a


@torch.no_grad()
def bidirectional_retrieval(
    a_emb: ArrayLike,
    b_emb: ArrayLike,
    a_name: str = "text",
    b_name: str = "image",
    ks: Sequence[int] = (1, 5, 10),
    *,
    a_to_b_targets: Sequence[Sequence[int]] | None = None,
    chunk_size: int = 1024,
) -> dict[str, float]:
    """Retrieval metrics in both directions between two sets of embeddings.

    a_emb: (Na, D), b_emb: (Nb, D), expected L2-normalised so ``a @ b.T`` is cosine similarity
    (they are not renormalised here). By default rows are paired (Na == Nb, row i of a matches
    row i of b). ``a_to_b_targets[i]`` lists the b rows matching a row i instead (e.g. five
    captions per image); the b -> a ground truth is its inverse, and every b row must be matched
    by at least one a row.

    The similarity matrix is computed ``chunk_size`` query rows at a time, so memory is
    O(chunk_size * N), not O(N^2). Keys: ``"{a}_to_{b}/R@1"``, ``"{a}_to_{b}/median_rank"``,
    ``"{a}_to_{b}/mean_rank"``, and the same for ``"{b}_to_{a}/..."``.
    """
    ks = _check_ks(ks)
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    a = _as_tensor(a_emb, "a_emb")
    b = _as_tensor(b_emb, "b_emb")
    if a.dim() != 2 or b.dim() != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(
            f"embeddings must be 2-D with the same width, got {tuple(a.shape)} and {tuple(b.shape)}"
        )
    if a_to_b_targets is None:
        if a.shape[0] != b.shape[0]:
            raise ValueError(
                f"paired retrieval needs as many {a_name} rows as {b_name} rows, got {a.shape[0]} and "
                f"{b.shape[0]}; pass a_to_b_targets for other ground truth"
            )
        b_to_a_targets = None
    else:
        if len(a_to_b_targets) != a.shape[0]:
            raise ValueError(
                f"a_to_b_targets has {len(a_to_b_targets)} entries for {a.shape[0]} {a_name} rows"
            )
        b_to_a_targets = _invert_targets(a_to_b_targets, b.shape[0])
        orphans = [i for i, t in enumerate(b_to_a_targets) if not t]
        if orphans:
            raise ValueError(f"{b_name} rows {orphans[:10]} are matched by no {a_name} row")
    out = _summarise_ranks(_chunked_ranks(a, b, a_to_b_targets, chunk_size), ks, f"{a_name}_to_{b_name}/")
    out.update(
        _summarise_ranks(_chunked_ranks(b, a, b_to_a_targets, chunk_size), ks, f"{b_name}_to_{a_name}/")
    )
    return out


@torch.no_grad()
def topk_accuracy(logits: ArrayLike, targets: ArrayLike, ks: Sequence[int] = (1, 5)) -> dict[str, float]:
    """Fraction of rows whose target class is among the k highest logits, for each k.

    logits: (N, C); targets: (N,) class indices. Keys are ``"top{k}"`` for the k asked; a k
    larger than C is clipped to C (so it is 1.0). Ties count against the row, as for retrieval:
    the target's rank is 1 + the number of other classes with a logit >= its own.
    """
    ks = _check_ks(ks)
    logits = _as_tensor(logits, "logits").float()
    targets = _as_tensor(targets, "targets").long().reshape(-1)
    if logits.dim() != 2:
        raise ValueError(f"logits must be (N, C), got shape {tuple(logits.shape)}")
    n, c = logits.shape
    if n == 0:
        raise ValueError("no rows: cannot compute accuracy on empty logits")
    if targets.shape[0] != n:
        raise ValueError(f"{n} rows of logits but {targets.shape[0]} targets")
    if targets.min() < 0 or targets.max() >= c:
        raise ValueError(
            f"targets must be class indices in [0, {c}), got range [{targets.min()}, {targets.max()}]"
        )
    correct = torch.nn.functional.one_hot(targets, c).bool()  # (N, C)
    ranks = _ranks_from_sim(logits, correct)  # (N,)
    return {f"top{k}": float((ranks <= min(k, c)).float().mean()) for k in ks}


def _as_labels(x: ArrayLike, name: str) -> np.ndarray:
    arr = _as_tensor(x, name).reshape(-1).cpu().numpy()
    if arr.dtype.kind not in "iu":
        if arr.dtype.kind == "f" and np.all(arr == np.round(arr)):
            arr = arr.astype(np.int64)
        else:
            raise ValueError(f"{name} must be integer class indices, got dtype {arr.dtype}")
    return arr.astype(np.int64)


def _check_labels(preds: ArrayLike, targets: ArrayLike, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    p, t = _as_labels(preds, "preds"), _as_labels(targets, "targets")
    if p.shape != t.shape:
        raise ValueError(f"{p.shape[0]} predictions but {t.shape[0]} targets")
    if p.size == 0:
        raise ValueError("no predictions: cannot compute a classification report")
    for name, arr in (("preds", p), ("targets", t)):
        if arr.min() < 0 or arr.max() >= num_classes:
            raise ValueError(f"{name} must be in [0, {num_classes}), got range [{arr.min()}, {arr.max()}]")
    return p, t


def confusion_matrix(preds: ArrayLike, targets: ArrayLike, num_classes: int) -> np.ndarray:
    """(C, C) int64 counts: row = true class, column = predicted class."""
    p, t = _check_labels(preds, targets, num_classes)
    return np.bincount(t * num_classes + p, minlength=num_classes * num_classes).reshape(
        num_classes, num_classes
    )


def classification_report(preds: ArrayLike, targets: ArrayLike, class_names: Sequence[str]) -> dict[str, Any]:
    """Accuracy, macro-F1, per-class precision/recall/F1/support and the confusion matrix.

    preds, targets: (N,) class indices into ``class_names``. Returns
    ``{"accuracy", "macro_f1", "per_class": {name: {"precision", "recall", "f1", "support"}},
    "confusion_matrix": [[...]]}`` with plain floats/ints. Precision or recall with an empty
    denominator is 0. Macro-F1 averages over the classes that occur in targets or predictions
    (as scikit-learn does by default), so classes absent from a small eval set do not count as 0.
    """
    from sklearn.metrics import f1_score, precision_recall_fscore_support

    names = [str(n) for n in class_names]
    if not names:
        raise ValueError("class_names is empty")
    if len(set(names)) != len(names):
        raise ValueError(f"class_names has duplicates: {names}")
    p, t = _check_labels(preds, targets, len(names))
    labels = list(range(len(names)))
    precision, recall, f1, support = precision_recall_fscore_support(t, p, labels=labels, zero_division=0)
    present = sorted(set(t.tolist()) | set(p.tolist()))
    return {
        "accuracy": float(np.mean(p == t)),
        "macro_f1": float(f1_score(t, p, labels=present, average="macro", zero_division=0)),
        "per_class": {
            name: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, name in enumerate(names)
        },
        "confusion_matrix": confusion_matrix(p, t, len(names)).tolist(),
    }
