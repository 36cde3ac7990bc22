"""Tests of the synthetic shapes world (a few hundred samples, a few seconds)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from omnifuse.data.synth import (
    COLOR_RGB,
    COLORS,
    SHAPES,
    SIZES,
    Scene,
    SceneObject,
    SynthConfig,
    color_shape_classes,
    describe,
    generate,
    questions,
    relation_holds,
    render_image,
    sample_scene,
    vocabulary,
    words,
)
from omnifuse.data.synth.vocab import position_phrase

N = 300


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, list[dict]]]:
    out = tmp_path_factory.mktemp("synth")
    generate(SynthConfig(n=N, seed=3), out, progress=False)
    rows = {
        s: [json.loads(line) for line in (out / f"{s}.jsonl").read_text().splitlines()]
        for s in ("train", "val", "test")
    }
    return out, rows


def _all_rows(rows: dict[str, list[dict]]) -> list[dict]:
    return [r for split in rows.values() for r in split]


def test_vocabulary_constants() -> None:
    assert len(SHAPES) >= 6 and len(COLORS) == 8 and SIZES == ("small", "large")
    classes = color_shape_classes()
    assert len(classes) == 48 == len(set(classes)) and classes[0] == "red circle"
    rgb = np.array([COLOR_RGB[c] for c in COLORS], dtype=float)
    distances = np.linalg.norm(rgb[:, None] - rgb[None], axis=-1) + np.eye(len(COLORS)) * 1e9
    assert distances.min() > 60  # distinguishable colors


def test_layout_counts_and_metadata(dataset) -> None:
    out, rows = dataset
    assert {s: len(r) for s, r in rows.items()} == {"train": 240, "val": 30, "test": 30}
    meta = json.loads((out / "synth.json").read_text())
    assert meta["counts"] == {"train": 240, "val": 30, "test": 30}
    assert meta["config"]["n"] == N and meta["vocabulary"]["color_shape_classes"] == color_shape_classes()
    ids = [r["id"] for r in _all_rows(rows)]
    assert ids == [f"{i:06d}" for i in range(N)]
    for r in _all_rows(rows):
        assert (out / r["image"]).is_file()
        assert set(r) >= {
            "id",
            "split",
            "image",
            "text",
            "captions",
            "questions",
            "objects",
            "labels",
            "heldout",
        }
        assert r["n_objects"] == len(r["objects"]) == r["labels"]["count"]
        assert 1 <= r["n_objects"] <= 3
        first = r["objects"][0]
        assert r["labels"]["color_shape"] == f"{first['color']} {first['shape']}"
        assert [(o["row"], o["col"]) for o in r["objects"]] == sorted(
            {(o["row"], o["col"]) for o in r["objects"]}
        )


def test_deterministic_and_independent_of_workers(tmp_path: Path) -> None:
    config = SynthConfig(n=520, seed=7)
    generate(config, tmp_path / "a", progress=False, workers=1)
    generate(config, tmp_path / "b", progress=False, workers=2)
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    assert len(files) == 520 + 4
    for rel in files:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel
    generate(SynthConfig(n=520, seed=8), tmp_path / "c", progress=False)
    assert (tmp_path / "c" / "train.jsonl").read_text() != (tmp_path / "a" / "train.jsonl").read_text()


def test_holdout_never_in_train_and_present_in_test(dataset) -> None:
    _, rows = dataset
    held = set(SynthConfig().holdout)
    for r in rows["train"]:
        combos = {f"{o['color']} {o['shape']}" for o in r["objects"]}
        assert not combos & held and not r["heldout"]
        text = " ".join(r["captions"] + [q["question"] + " " + q["answer"] for q in r["questions"]])
        assert not any(h in text for h in held), text
    for split in ("val", "test"):
        for r in rows[split]:
            combos = {f"{o['color']} {o['shape']}" for o in r["objects"]}
            assert r["heldout"] == bool(combos & held)
    assert sum(r["heldout"] for r in rows["test"]) >= 5  # 30 test samples, ~40% held out


def test_captions(dataset) -> None:
    _, rows = dataset
    vocab = set(vocabulary())
    for r in _all_rows(rows):
        caps = r["captions"]
        assert len(caps) >= 5 and caps[0] == r["text"] and len(set(caps)) == len(caps)
        for o in r["objects"]:
            phrase = f"a {o['size']} {o['color']} {o['shape']} {position_phrase(o['row'], o['col'])}"
            assert phrase in caps[0]
        for text in caps + [q["question"] for q in r["questions"]] + [q["answer"] for q in r["questions"]]:
            assert set(words(text)) <= vocab, text


_RELATION = re.compile(r"^a (\w+) (\w+) (?:is )?(?:to the )?(left of|right of|above|below) a (\w+) (\w+)$")


def test_relation_captions_hold(dataset) -> None:
    _, rows = dataset
    checked = 0
    for r in _all_rows(rows):
        objects = {f"{o['color']} {o['shape']}": o for o in r["objects"]}
        for caption in r["captions"][1:]:
            match = _RELATION.match(caption)
            if not match:
                continue
            a, rel, b = (
                objects[" ".join(match.group(1, 2))],
                match.group(3),
                objects[" ".join(match.group(4, 5))],
            )
            expected = {
                "left of": a["col"] < b["col"],
                "right of": a["col"] > b["col"],
                "above": a["row"] < b["row"],
                "below": a["row"] > b["row"],
            }[rel]
            assert expected, (caption, r["objects"])
            checked += 1
    assert checked > 100


def _answer(question: str, objects: list[dict]) -> str | None:
    """An independent solver for the question templates."""
    combos = {f"{o['color']} {o['shape']}": o for o in objects}
    rel = {
        "left of": lambda a, b: a["col"] < b["col"],
        "right of": lambda a, b: a["col"] > b["col"],
        "above": lambda a, b: a["row"] < b["row"],
        "below": lambda a, b: a["row"] > b["row"],
    }
    if m := re.fullmatch(r"what color is the (\w+)\?", question):
        (o,) = [o for o in objects if o["shape"] == m[1]]
        return o["color"]
    if m := re.fullmatch(r"what shape is the (\w+) object\?", question):
        (o,) = [o for o in objects if o["color"] == m[1]]
        return o["shape"]
    if question == "how many objects are there?":
        return str(len(objects))
    if m := re.fullmatch(r"how many (\w+) objects are there\?", question):
        return str(sum(o["color"] == m[1] for o in objects))
    if m := re.fullmatch(r"how many (\w+)s are there\?", question):
        return str(sum(o["shape"] == m[1] for o in objects))
    if m := re.fullmatch(r"is there a (\w+ \w+)\?", question):
        return "yes" if m[1] in combos else "no"
    if m := re.fullmatch(r"is the (\w+ \w+) (left of|right of|above|below) the (\w+ \w+)\?", question):
        return "yes" if rel[m[2]](combos[m[1]], combos[m[3]]) else "no"
    if m := re.fullmatch(r"what is (left of|right of|above|below) the (\w+ \w+)\?", question):
        (o,) = [o for c, o in combos.items() if c != m[2] and rel[m[1]](o, combos[m[2]])]
        return f"{o['color']} {o['shape']}"
    return None


def test_questions_consistent(dataset) -> None:
    _, rows = dataset
    types: dict[str, list[str]] = {}
    for r in _all_rows(rows):
        for q in r["questions"]:
            assert _answer(q["question"], r["objects"]) == q["answer"], (q, r["objects"])
            types.setdefault(q["type"], []).append(q["answer"])
    assert set(types) == {"color", "shape", "count", "exist", "relation"}
    assert types["exist"].count("yes") == types["exist"].count("no")
    yes_no = [a for a in types["relation"] if a in ("yes", "no")]
    assert 0.3 < yes_no.count("yes") / len(yes_no) < 0.7


@pytest.mark.parametrize("image_size", [48, 64, 96])
def test_image_size_and_centre_color(tmp_path: Path, image_size: int) -> None:
    generate(SynthConfig(n=30, image_size=image_size, seed=1), tmp_path, progress=False)
    for line in (tmp_path / "train.jsonl").read_text().splitlines():
        row = json.loads(line)
        image = Image.open(tmp_path / row["image"])
        assert image.size == (image_size, image_size) and image.mode == "RGB"
        for o in row["objects"]:
            assert image.getpixel((o["x"], o["y"])) == COLOR_RGB[o["color"]], (o, row["id"])


def test_scene_functions_compose() -> None:
    config = SynthConfig(min_objects=3, max_objects=3)
    rng = np.random.default_rng(0)
    scene = sample_scene(rng, config, require=["red circle"])
    assert isinstance(scene, Scene) and "red circle" in scene.combos and len(scene.objects) == 3
    assert len(describe(scene, rng)) >= 5 and questions(scene, rng)
    assert render_image(scene, 128).size == (128, 128)
    a = SceneObject("circle", "red", "small", 0, 0, 10, 10)
    b = SceneObject("square", "blue", "large", 2, 1, 32, 54)
    assert relation_holds(a, b, "left of") and relation_holds(a, b, "above") and relation_holds(b, a, "below")
    assert not relation_holds(a, b, "right of")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n": 0}, "n must be a positive"),
        ({"image_size": 8}, "image_size"),
        ({"min_objects": 3, "max_objects": 2}, "min_objects"),
        ({"max_objects": 10}, "max_objects"),
        ({"holdout": ["pink circle"]}, "unknown color 'pink'.*allowed colors: red"),
        ({"holdout": ["red blob"]}, "unknown shape 'blob'.*allowed shapes: circle"),
        ({"holdout": ["red"]}, "two words"),
        ({"holdout": ["red circle", "red circle"]}, "duplicate"),
        ({"holdout": [f"red {s}" for s in SHAPES]}, "color 'red' is held out with every shape"),
        ({"holdout": [f"{c} star" for c in COLORS]}, "shape 'star' is held out with every color"),
        ({"splits": {"train": 0.5, "val": 0.1, "test": 0.1}}, "sum to 1"),
        ({"splits": {"train": 0.9, "dev": 0.1}}, "unknown split"),
        ({"splits": {"train": 1.5, "test": -0.5}}, r"\[0, 1\]"),
        ({"heldout_test_fraction": 2.0}, "heldout_test_fraction"),
        ({"modalities": ["smell"]}, "smell"),
    ],
)
def test_bad_config(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SynthConfig(**kwargs)


def test_minimal_pairs_swap_one_shape_in_train_only(tmp_path):
    from omnifuse.data.synth import SynthConfig, generate

    generate(SynthConfig(n=60, seed=4, minimal_pairs=True), tmp_path, progress=False, workers=1)
    rows = [json.loads(line) for line in (tmp_path / "train.jsonl").read_text().splitlines()]
    held = set(SynthConfig().holdout)
    for a, b in zip(rows[0::2], rows[1::2]):
        changed = [(x, y) for x, y in zip(a["objects"], b["objects"]) if x != y]
        assert len(a["objects"]) == len(b["objects"]) and len(changed) == 1
        x, y = changed[0]
        assert x["shape"] != y["shape"] and {k: v for k, v in x.items() if k != "shape"} == {
            k: v for k, v in y.items() if k != "shape"
        }
        assert f"{y['color']} {y['shape']}" not in held
