"""Downstream tasks over a generated shapes world, as manifests for fusion classifiers.

- VQA as classification: one row per (image, question); the label is the answer word and
  `qtype` (color, shape, count, exist, relation) groups the metrics.
- Caption-image match: relation captions ("a red circle left of a blue square") that are
  true of the image, and the same caption with the two objects swapped as negatives. Both
  use the same words, so a bag of words cannot tell them apart: the model has to bind each
  phrase to a place in the image.
- Word grounding (token labelling): captions with some attribute words swapped for wrong
  ones, tagged per word in IOB2 (see `omnifuse.data.synth.grounding`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from omnifuse.data.synth.grounding import grounding_rows
from omnifuse.data.synth.scene import SceneObject, relation_holds
from omnifuse.data.synth.vocab import RELATIONS

TASKS = ("vqa", "match", "grounding")


def _objects(row: dict[str, Any]) -> list[SceneObject]:
    return [SceneObject(**o) for o in row["objects"]]


def vqa_rows(row: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {
            "id": f"{row['id']}-q{k}",
            "image": row["image"],
            "question": q["question"],
            "answer": q["answer"],
            "qtype": q["type"],
        }
        for k, q in enumerate(row["questions"])
    ]


def match_rows(row: dict[str, Any], rng: np.random.Generator) -> list[dict[str, Any]]:
    """One true relation caption and its swapped (false) twin per scene with 2+ objects."""
    objs = _objects(row)
    if len(objs) < 2:
        return []
    i, j = (int(k) for k in rng.permutation(len(objs))[:2])
    a, b = objs[i], objs[j]
    relation = [r for r in RELATIONS if relation_holds(a, b, r)]
    relation = relation[int(rng.integers(len(relation)))]
    true = f"a {a.combo} {relation} a {b.combo}"
    false = f"a {b.combo} {relation} a {a.combo}"  # false: relations on distinct cells are strict
    return [
        {"id": f"{row['id']}-m{k}", "image": row["image"], "caption": c, "label": lab, "qtype": "relation"}
        for k, (c, lab) in enumerate(((true, "match"), (false, "mismatch")))
    ]


def write_task_manifests(shapes_dir: str | Path, seed: int = 0) -> dict[str, Path]:
    """Write `vqa_<split>.jsonl`, `match_<split>.jsonl` and `grounding_<split>.jsonl` beside a shapes world's manifests.

    Image paths are kept as written by the generator (relative to `shapes_dir`).
    Returns "<task>_<split>" -> path.
    """
    shapes_dir = Path(shapes_dir)
    splits = sorted(p.stem for p in shapes_dir.glob("*.jsonl") if p.stem in ("train", "val", "test"))
    if not splits:
        raise FileNotFoundError(f"{shapes_dir}: no train/val/test.jsonl; run `omnifuse data synth` first")
    written: dict[str, Path] = {}
    for split in splits:
        rows = [json.loads(line) for line in (shapes_dir / f"{split}.jsonl").read_text().splitlines() if line]
        rng = np.random.default_rng([seed, len(split)])
        tasks = {
            "vqa": [r for row in rows for r in vqa_rows(row)],
            "match": [r for row in rows for r in match_rows(row, rng)],
        }
        grounding_rng = np.random.default_rng([seed, len(split), 1])
        tasks["grounding"] = [r for row in rows for r in grounding_rows(row, grounding_rng)]
        for task, task_rows in tasks.items():
            path = shapes_dir / f"{task}_{split}.jsonl"
            path.write_text("".join(json.dumps(r) + "\n" for r in task_rows))
            written[f"{task}_{split}"] = path
    return written
