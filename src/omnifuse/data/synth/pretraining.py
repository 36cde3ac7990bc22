"""Shapes-world data for pre-training: documents for masked language modelling and minimal pairs.

- :func:`scene_documents`: one document per scene, each sentence a different description of the
  same scene (`omnifuse.data.synth.text.describe`), so the sentences of a document share their
  objects: the next sentence is predictable from the previous one, a sentence about another
  scene is not, and a masked color or shape can be read from the rest of the document.
- Minimal pairs (Thrush et al. 2022, Winoground, https://arxiv.org/abs/2204.03162): a true
  relation caption of a scene and a false twin made of the same words, either with the two
  objects' colors swapped (:func:`attribute_swapped`) or with the relation's arguments swapped
  (:func:`relation_swapped`). A bag of words cannot tell them apart; they are the hard
  negatives of image-text matching and the probes of caption-image match accuracy.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from omnifuse.data.synth.config import SynthConfig
from omnifuse.data.synth.scene import Scene, SceneObject, relation_holds, sample_scene
from omnifuse.data.synth.text import RELATION_PHRASES, describe
from omnifuse.data.synth.vocab import RELATIONS

MINIMAL_PAIR_KINDS = ("relation", "attribute")


def _sentence(text: str) -> str:
    return text[0].upper() + text[1:] + "."


def scene_document(scene: Scene, rng: np.random.Generator) -> list[str]:
    """The captions of one scene, in random order, as sentences."""
    captions = describe(scene, rng)
    return [_sentence(captions[i]) for i in rng.permutation(len(captions))]


def scene_documents(n: int, seed: int = 0, config: SynthConfig | None = None) -> list[list[str]]:
    """`n` documents, one per scene drawn from `config` (default: the shapes world's)."""
    config = config or SynthConfig(n=max(n, 1), holdout=[])
    rng = np.random.default_rng([seed, 7])
    return [scene_document(sample_scene(rng, config), rng) for _ in range(n)]


def _caption(a: SceneObject, relation: str, b: SceneObject, phrase: str, colors=None) -> str:
    ca, cb = colors or (a.color, b.color)
    return f"a {ca} {a.shape} {phrase} a {cb} {b.shape}"


def _holds(scene: Scene, color_a: str, shape_a: str, relation: str, color_b: str, shape_b: str) -> bool:
    a, b = scene.find(f"{color_a} {shape_a}"), scene.find(f"{color_b} {shape_b}")
    return a is not None and b is not None and relation_holds(a, b, relation)


def minimal_pair(scene: Scene, kind: str, rng: np.random.Generator) -> tuple[str, str] | None:
    """(true caption, false twin) of `kind` for a scene with 2+ objects; None when impossible.

    relation: "a red circle left of a blue square" / "a blue square left of a red circle".
    attribute: "a red circle left of a blue square" / "a blue circle left of a red square"
    (only pairs of objects with different colors; the twin is checked false on the scene).
    """
    if kind not in MINIMAL_PAIR_KINDS:
        raise ValueError(f"unknown minimal-pair kind {kind!r}; known: {MINIMAL_PAIR_KINDS}")
    objs = scene.objects
    if len(objs) < 2:
        return None
    order = [
        (int(i), int(j)) for i in rng.permutation(len(objs)) for j in rng.permutation(len(objs)) if i != j
    ]
    for i, j in order:
        a, b = objs[i], objs[j]
        if kind == "attribute" and (a.color == b.color or a.shape == b.shape):
            continue
        relations = [r for r in RELATIONS if relation_holds(a, b, r)]
        relation = relations[int(rng.integers(len(relations)))]
        phrases = RELATION_PHRASES[relation]
        phrase = phrases[int(rng.integers(len(phrases)))]
        true = _caption(a, relation, b, phrase)
        if kind == "relation":
            false = _caption(b, relation, a, phrase)
            return true, false  # relations between distinct cells are strict
        if _holds(scene, b.color, a.shape, relation, a.color, b.shape):
            continue  # the swapped caption happens to be true of this scene
        return true, _caption(a, relation, b, phrase, colors=(b.color, a.color))
    return None


def _scene_of(row: dict[str, Any]) -> Scene:
    return Scene(tuple(SceneObject(**o) for o in row["objects"]), int(row.get("image_size", 0)))


def pretrain_rows(row: dict[str, Any], rng: np.random.Generator) -> list[dict[str, Any]]:
    """Pre-training rows of one scene: per minimal-pair kind, the true caption and its false twin."""
    scene = _scene_of(row)
    out = []
    for kind in MINIMAL_PAIR_KINDS:
        pair = minimal_pair(scene, kind, rng)
        if pair is not None:
            out.append({"image": row["image"], "caption": pair[0], "negative": pair[1], "qtype": kind})
    return out


def match_probe_rows(row: dict[str, Any], rng: np.random.Generator) -> list[dict[str, Any]]:
    """Caption-image match rows: true caption (match) and false twin (mismatch) per kind."""
    return [
        {"image": r["image"], "caption": c, "label": lab, "qtype": r["qtype"]}
        for r in pretrain_rows(row, rng)
        for c, lab in ((r["caption"], "match"), (r["negative"], "mismatch"))
    ]


def row_document(row: dict[str, Any], rng: np.random.Generator) -> list[str]:
    """A manifest row's captions, shuffled, as the sentences of one document."""
    captions = row["captions"]
    return [_sentence(captions[i]) for i in rng.permutation(len(captions))]


def write_pretrain_manifests(shapes_dir: str | Path, seed: int = 0) -> dict[str, Path]:
    """Write, beside a shapes world's manifests, per split: `pretrain_<split>.jsonl` (image, true
    caption, its minimal-pair `negative`, `qtype`), `minimal_<split>.jsonl` (caption-image match
    probes: label match / mismatch) and `documents_<split>.txt` (one document per scene, blank
    lines between); returns "<name>_<split>" -> path."""
    shapes_dir = Path(shapes_dir)
    splits = sorted(p.stem for p in shapes_dir.glob("*.jsonl") if p.stem in ("train", "val", "test"))
    if not splits:
        raise FileNotFoundError(f"{shapes_dir}: no train/val/test.jsonl; run `omnifuse data synth` first")
    written: dict[str, Path] = {}
    for split in splits:
        rows = [json.loads(line) for line in (shapes_dir / f"{split}.jsonl").read_text().splitlines() if line]
        for name, make in (("pretrain", pretrain_rows), ("minimal", match_probe_rows)):
            rng = np.random.default_rng([seed, len(split), len(name)])
            out = [r for row in rows for r in make(row, rng)]
            path = shapes_dir / f"{name}_{split}.jsonl"
            path.write_text("".join(json.dumps(r) + "\n" for r in out))
            written[f"{name}_{split}"] = path
        rng = np.random.default_rng([seed, len(split), 99])
        docs = "\n\n".join("\n".join(row_document(row, rng)) for row in rows)
        path = shapes_dir / f"documents_{split}.txt"
        path.write_text(docs + "\n", encoding="utf-8")
        written[f"documents_{split}"] = path
    return written
