"""Token-labelling metrics: token accuracy and entity-level precision / recall / F1 over BIO spans.

Entities are read from tag sequences exactly as CoNLL's ``conlleval`` script does (and as
``seqeval``'s default mode does, on whose results the tests check these): tags are ``O`` or
``<prefix>-<TYPE>`` with prefix ``B`` (begin), ``I`` (inside), or, tolerated, ``E``/``S``
(IOBES). A chunk ends when a ``B`` (or ``S``, ``O``) follows, or the type changes; an ``I``
after ``O`` or after another type starts a chunk (lenient, like conlleval). IOB2 / BIO tag
sets are the usual input. An entity is counted correct only when its type, start and end all
match. Sentences never merge: each is closed before the next.

Tjong Kim Sang & De Meulder 2003, "Introduction to the CoNLL-2003 Shared Task"
(https://aclanthology.org/W03-0419/); seqeval: https://github.com/chakki-works/seqeval.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

Entity = tuple[str, int, int]
"""(type, first token, last token) over the concatenated sentences."""


def _split(tag: str) -> tuple[str, str]:
    prefix = tag[0] if tag else "O"
    kind = tag[1:].split("-", maxsplit=1)[-1] or "_"
    return prefix, kind


def _ends(prev: str, tag: str, prev_kind: str, kind: str) -> bool:
    if prev in ("E", "S"):
        return True
    if prev in ("B", "I") and tag in ("B", "S", "O"):
        return True
    return prev not in ("O", ".") and prev_kind != kind


def _starts(prev: str, tag: str, prev_kind: str, kind: str) -> bool:
    if tag in ("B", "S"):
        return True
    if prev in ("E", "S", "O") and tag in ("E", "I"):
        return True
    return tag not in ("O", ".") and prev_kind != kind


def entities(sentences: Sequence[Sequence[str]]) -> list[Entity]:
    """The entities of tagged sentences, with offsets into their concatenation (``O`` between them)."""
    flat = [t for s in sentences for t in [*s, "O"]]
    out: list[Entity] = []
    prev, prev_kind, begin = "O", "", 0
    for i, tag in enumerate([*flat, "O"]):
        prefix, kind = _split(tag)
        if _ends(prev, prefix, prev_kind, kind):
            out.append((prev_kind, begin, i - 1))
        if _starts(prev, prefix, prev_kind, kind):
            begin = i
        prev, prev_kind = prefix, kind
    return out


def _check(y_true: Sequence[Sequence[str]], y_pred: Sequence[Sequence[str]]) -> None:
    if len(y_true) != len(y_pred):
        raise ValueError(f"{len(y_true)} true sentences but {len(y_pred)} predicted ones")
    for i, (t, p) in enumerate(zip(y_true, y_pred)):
        if len(t) != len(p):
            raise ValueError(f"sentence {i}: {len(t)} true tags but {len(p)} predicted tags")


def _prf(tp: int, n_pred: int, n_true: int) -> tuple[float, float, float]:
    p = tp / n_pred if n_pred else 0.0
    r = tp / n_true if n_true else 0.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def token_accuracy(y_true: Sequence[Sequence[str]], y_pred: Sequence[Sequence[str]]) -> float:
    """Fraction of tokens whose predicted tag equals the true tag."""
    _check(y_true, y_pred)
    n = sum(len(s) for s in y_true)
    return sum(a == b for t, p in zip(y_true, y_pred) for a, b in zip(t, p)) / n if n else 0.0


def entity_report(
    y_true: Sequence[Sequence[str]], y_pred: Sequence[Sequence[str]]
) -> dict[str, dict[str, float]]:
    """Per entity type and micro / macro / weighted averages: precision, recall, f1-score, support.

    The same keys and numbers as ``seqeval.metrics.classification_report(output_dict=True)``
    (types sorted; an undefined ratio counts as 0, also where seqeval's averages are NaN
    because there is no entity at all).
    """
    _check(y_true, y_pred)
    true, pred = set(entities(y_true)), set(entities(y_pred))
    types = sorted({e[0] for e in true | pred})
    n_true, n_pred = Counter(e[0] for e in true), Counter(e[0] for e in pred)
    n_hit = Counter(e[0] for e in true & pred)
    report: dict[str, dict[str, float]] = {}
    for kind in types:
        p, r, f = _prf(n_hit[kind], n_pred[kind], n_true[kind])
        report[kind] = {"precision": p, "recall": r, "f1-score": f, "support": n_true[kind]}
    p, r, f = _prf(len(true & pred), len(pred), len(true))
    report["micro avg"] = {"precision": p, "recall": r, "f1-score": f, "support": len(true)}
    rows = [report[k] for k in types]
    total = sum(row["support"] for row in rows)
    for name, weights in (
        ("macro avg", [1.0] * len(rows)),
        ("weighted avg", [row["support"] for row in rows]),
    ):
        norm = sum(weights)
        avg = {
            key: (sum(w * row[key] for w, row in zip(weights, rows)) / norm if norm else 0.0)
            for key in ("precision", "recall", "f1-score")
        }
        report[name] = {**avg, "support": total}
    return report


def token_metrics(
    y_true: Sequence[Sequence[str]], y_pred: Sequence[Sequence[str]], prefix: str = ""
) -> dict[str, float]:
    """Flat metrics: ``accuracy`` (tokens) and entity ``precision``, ``recall``, ``f1`` (micro), prefixed."""
    micro = entity_report(y_true, y_pred)["micro avg"]
    return {
        f"{prefix}accuracy": token_accuracy(y_true, y_pred),
        f"{prefix}precision": micro["precision"],
        f"{prefix}recall": micro["recall"],
        f"{prefix}f1": micro["f1-score"],
    }
