"""Word-level grounding over a shapes world: which words of a caption are false of the image.

A caption mentions every object with its size, color, shape and position ("there is a large
red circle at the top left and a small blue star on the right"). In about half the mentions
(``swap_prob``) a span of attribute words is swapped for wrong ones: the size, the color, the
shape, or color and shape together. The position still names the object, so which word is
wrong is never ambiguous. Each word is tagged in IOB2: ``B-wrong`` / ``I-wrong`` on swapped
words, ``O`` elsewhere. Every caption has the same shape whether or not words were swapped,
and the wrong values are drawn from the same vocabulary as the right ones, so a model that
reads only the text cannot do better than chance: it has to look at the object at the
named position.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from omnifuse.data.synth.scene import SceneObject
from omnifuse.data.synth.vocab import COLORS, SHAPES, SIZES, position_phrase

SPANS = (("size",), ("color",), ("shape",), ("color", "shape"))
"""Which attribute words a swap replaces (a two-word span tests I- tags)."""
VALUES = {"size": SIZES, "color": COLORS, "shape": SHAPES}
TAGS = ("O", "B-wrong", "I-wrong")


def _mention(obj: SceneObject, rng: np.random.Generator, swap_prob: float) -> tuple[list[str], list[str]]:
    values = {"size": obj.size, "color": obj.color, "shape": obj.shape}
    wrong: tuple[str, ...] = ()
    if rng.random() < swap_prob:
        wrong = SPANS[int(rng.integers(len(SPANS)))]
        for attr in wrong:
            others = [v for v in VALUES[attr] if v != values[attr]]
            values[attr] = others[int(rng.integers(len(others)))]
    words = ["a", values["size"], values["color"], values["shape"]]
    tags = ["O"] + [
        ("B-wrong" if attr == wrong[0] else "I-wrong") if attr in wrong else "O"
        for attr in ("size", "color", "shape")
    ]
    place = position_phrase(obj.row, obj.col).split()
    return words + place, tags + ["O"] * len(place)


def grounding_rows(
    row: dict[str, Any], rng: np.random.Generator, swap_prob: float = 0.5
) -> list[dict[str, Any]]:
    """One tagged caption per scene: ``caption`` (words separated by spaces) and ``tags`` (one per word)."""
    objs = [SceneObject(**o) for o in row["objects"]]
    if not objs:
        return []
    words, tags = ["there", "is"], ["O", "O"]
    for k in rng.permutation(len(objs)):
        if len(words) > 2:
            words.append("and")
            tags.append("O")
        w, t = _mention(objs[int(k)], rng, swap_prob)
        words += w
        tags += t
    n_wrong = sum(t == "B-wrong" for t in tags)
    return [
        {
            "id": f"{row['id']}-g",
            "image": row["image"],
            "caption": " ".join(words),
            "tags": " ".join(tags),
            "qtype": "swapped" if n_wrong else "clean",
        }
    ]
