"""Text about a scene: captions (paraphrases) and question-answer pairs.

Only facts that hold on the grid are stated, and a question is asked only when its answer
is unambiguous. Objects are named by "color shape", which is unique within a scene.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection

import numpy as np

from omnifuse.data.synth.scene import Scene, SceneObject, relation_holds
from omnifuse.data.synth.vocab import (
    COLORS,
    NUMBER_WORDS,
    POSITIONS,
    RELATIONS,
    SHAPES,
    SIZES,
    color_shape_classes,
    position_phrase,
)

#: Ways to say each relation in captions; questions use the first.
RELATION_PHRASES: dict[str, tuple[str, ...]] = {
    "left of": ("left of", "to the left of"),
    "right of": ("right of", "to the right of"),
    "above": ("above",),
    "below": ("below",),
}

#: Words of the templates themselves (everything else comes from `vocab`).
TEMPLATE_WORDS: tuple[str, ...] = (
    "a", "the", "at", "on", "in", "of", "to", "is", "there", "and", "object", "objects",
    "image", "picture", "single", "what", "color", "shape", "how", "many", "are", "yes", "no",
)  # fmt: skip

_PUNCT = re.compile(r"[?:,.]")


def words(text: str) -> list[str]:
    """Lower-case words of a caption, question or answer, punctuation dropped."""
    return _PUNCT.sub(" ", text.lower()).split()


def vocabulary() -> list[str]:
    """Every word that captions, questions and answers can use, sorted (cheap, no sampling)."""
    vocab = set(TEMPLATE_WORDS) | set(COLORS) | set(SHAPES) | set(SIZES) | set(NUMBER_WORDS)
    vocab |= {plural(s) for s in SHAPES} | {str(i) for i in range(10)}
    vocab |= {w for row in POSITIONS for name in row for w in name.split()}
    vocab |= {w for phrases in RELATION_PHRASES.values() for p in phrases for w in p.split()}
    return sorted(vocab)


def plural(shape: str) -> str:
    """ "circle" -> "circles" (all shapes in the vocabulary take a plain -s)."""
    return shape + "s"


def _name(obj: SceneObject, size: bool = False, article: str = "a") -> str:
    return f"{article} {obj.size + ' ' if size else ''}{obj.color} {obj.shape}"


def _join(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def _shuffled(objects: tuple[SceneObject, ...], rng: np.random.Generator) -> list[SceneObject]:
    return [objects[i] for i in rng.permutation(len(objects))]


def _pick(items: list, rng: np.random.Generator):
    return items[int(rng.integers(len(items)))]


def _true_relation(
    objects: tuple[SceneObject, ...], rng: np.random.Generator
) -> tuple[SceneObject, str, SceneObject]:
    """A random ordered pair (a, b) of distinct objects and a relation that holds for it."""
    i, j = (int(k) for k in rng.permutation(len(objects))[:2])
    a, b = objects[i], objects[j]
    relation = _pick([r for r in RELATIONS if relation_holds(a, b, r)], rng)  # never empty: distinct cells
    return a, relation, b


def canonical_caption(scene: Scene) -> str:
    """Every object with size, color, shape and position, in reading order (no randomness).

    e.g. "a large red circle at the top left and a small blue square at the bottom".
    """
    return _join([f"{_name(o, size=True)} {position_phrase(o.row, o.col)}" for o in scene.objects])


def _caption_relation(scene: Scene, rng: np.random.Generator) -> str:
    # "a red circle left of a blue square"; one object: "a large red circle at the top left of the image"
    if len(scene.objects) == 1:
        o = scene.objects[0]
        return f"{_name(o, size=True)} {position_phrase(o.row, o.col)} of the image"
    a, relation, b = _true_relation(scene.objects, rng)
    return f"{_name(a)} {_pick(list(RELATION_PHRASES[relation]), rng)} {_name(b)}"


def _caption_there_is(scene: Scene, rng: np.random.Generator) -> str:
    # "there is a large red circle and a small blue square"
    return "there is " + _join([_name(o, size=True) for o in _shuffled(scene.objects, rng)])


def _caption_count(scene: Scene, rng: np.random.Generator) -> str:
    # "two objects: a red circle at the top left and a blue square at the bottom"
    n = len(scene.objects)
    listed = _join([f"{_name(o)} {position_phrase(o.row, o.col)}" for o in scene.objects])
    return f"{NUMBER_WORDS[n]} object{'s' if n > 1 else ''}: {listed}"


def _caption_short(scene: Scene, rng: np.random.Generator) -> str:
    # "a red circle and a blue square"
    return _join([_name(o) for o in _shuffled(scene.objects, rng)])


def _caption_relation_is(scene: Scene, rng: np.random.Generator) -> str:
    # "a blue square is below a red circle"; one object: "a picture of a single large red circle"
    if len(scene.objects) == 1:
        return f"a picture of a single {_name(scene.objects[0], size=True)[2:]}"
    a, relation, b = _true_relation(scene.objects, rng)
    return f"{_name(a)} is {_pick(list(RELATION_PHRASES[relation]), rng)} {_name(b)}"


#: Paraphrase templates after the canonical caption, in the order they appear in `describe`.
CAPTION_TEMPLATES: tuple[Callable[[Scene, np.random.Generator], str], ...] = (
    _caption_relation,
    _caption_there_is,
    _caption_count,
    _caption_short,
    _caption_relation_is,
)


def describe(scene: Scene, rng: np.random.Generator) -> list[str]:
    """Captions of a scene: ``[canonical, *paraphrases]`` (6 in all).

    captions[0] is `canonical_caption` (the most specific one, used as retrieval text);
    the others come from `CAPTION_TEMPLATES`: a spatial relation, "there is ...", a count
    ("two objects: ..."), a short list without size or position, and a relation with "is".
    """
    return [canonical_caption(scene)] + [template(scene, rng) for template in CAPTION_TEMPLATES]


def _qa(question: str, answer: str, kind: str) -> dict[str, str]:
    return {"question": question, "answer": answer, "type": kind}


def questions(scene: Scene, rng: np.random.Generator, avoid: Collection[str] = ()) -> list[dict[str, str]]:
    """Question-answer pairs with unambiguous answers, each ``{"question", "answer", "type"}``.

    Types: ``color`` ("what color is the circle?", asked only if one circle), ``shape``
    ("what shape is the red object?", only if one red object), ``count`` (all objects, and
    one color or shape), ``exist`` (one "yes" and one "no", so balanced; the "no" often
    shares a color or shape with a present object), ``relation`` (yes/no, balanced, and
    "what is left of the blue square?" when exactly one object is). Answers are words or
    digits. ``avoid``: "color shape" combinations never mentioned (held-out ones in train).
    """
    objs = scene.objects
    out: list[dict[str, str]] = []

    unique_shape = [o for o in objs if sum(p.shape == o.shape for p in objs) == 1]
    if unique_shape:
        o = _pick(unique_shape, rng)
        out.append(_qa(f"what color is the {o.shape}?", o.color, "color"))
    unique_color = [o for o in objs if sum(p.color == o.color for p in objs) == 1]
    if unique_color:
        o = _pick(unique_color, rng)
        out.append(_qa(f"what shape is the {o.color} object?", o.shape, "shape"))

    out.append(_qa("how many objects are there?", str(len(objs)), "count"))
    # Half the time about an attribute in the scene (non-zero), else any value (often zero).
    present = rng.random() < 0.5
    if rng.random() < 0.5:
        color = _pick(objs, rng).color if present else _pick(list(COLORS), rng)
        answer = sum(o.color == color for o in objs)
        out.append(_qa(f"how many {color} objects are there?", str(answer), "count"))
    else:
        shape = _pick(objs, rng).shape if present else _pick(list(SHAPES), rng)
        answer = sum(o.shape == shape for o in objs)
        out.append(_qa(f"how many {plural(shape)} are there?", str(answer), "count"))

    out.append(_qa(f"is there {_name(_pick(objs, rng))}?", "yes", "exist"))
    skip = set(scene.combos) | set(avoid)
    absent = [c for c in color_shape_classes() if c not in skip]
    seen = {o.color for o in objs} | {o.shape for o in objs}
    near = [c for c in absent if not seen.isdisjoint(c.split())]
    combo = _pick(near if near and rng.random() < 0.5 else absent, rng)
    out.append(_qa(f"is there a {combo}?", "no", "exist"))

    if len(objs) >= 2:
        i, j = (int(k) for k in rng.permutation(len(objs))[:2])
        a, b = objs[i], objs[j]
        holds = [r for r in RELATIONS if relation_holds(a, b, r)]
        fails = [r for r in RELATIONS if r not in holds]  # never empty: left/right exclude each other
        yes = rng.random() < 0.5
        relation = _pick(holds if yes else fails, rng)
        out.append(
            _qa(
                f"is {_name(a, article='the')} {relation} {_name(b, article='the')}?",
                "yes" if yes else "no",
                "relation",
            )
        )
        for b in _shuffled(objs, rng):
            relation = _pick(list(RELATIONS), rng)
            matches = [a for a in objs if a is not b and relation_holds(a, b, relation)]
            if len(matches) == 1:
                out.append(
                    _qa(f"what is {relation} {_name(b, article='the')}?", matches[0].combo, "relation")
                )
                break
    return out
