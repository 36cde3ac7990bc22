"""The shapes-world grounding task: one IOB2 tag per word, swapped words really are wrong."""

from __future__ import annotations

from collections import Counter

import numpy as np

from omnifuse.data.synth.config import SynthConfig
from omnifuse.data.synth.generate import generate
from omnifuse.data.synth.grounding import grounding_rows
from omnifuse.data.synth.tasks import write_task_manifests
from omnifuse.data.synth.vocab import COLORS, SHAPES, SIZES, position_phrase


def _row():
    objs = [
        {"shape": "circle", "color": "red", "size": "large", "row": 0, "col": 0, "x": 8, "y": 8},
        {"shape": "star", "color": "blue", "size": "small", "row": 2, "col": 2, "x": 40, "y": 40},
    ]
    return {"id": "s0", "image": "images/s0.png", "objects": objs}


def test_tags_align_and_wrong_words_are_wrong():
    row = _row()
    seen = Counter()
    for seed in range(200):
        (g,) = grounding_rows(row, np.random.default_rng(seed))
        words, tags = g["caption"].split(), g["tags"].split()
        assert len(words) == len(tags) and words[:2] == ["there", "is"]
        for obj in row["objects"]:  # find the mention by its (never swapped) position phrase
            place = position_phrase(obj["row"], obj["col"]).split()
            end = next(i for i in range(len(words)) if words[i : i + len(place)] == place)
            size, color, shape = words[end - 3 : end]
            want = [size == obj["size"], color == obj["color"], shape == obj["shape"]]
            got = [t == "O" for t in tags[end - 3 : end]]
            assert want == got, (g, obj)
            assert size in SIZES and color in COLORS and shape in SHAPES
        seen.update(t for t in tags if t != "O")
        seen[g["qtype"]] += 1
    assert seen["I-wrong"] > 10 and seen["B-wrong"] > 100  # color+shape spans occur
    assert 40 < seen["clean"] < 100  # about a quarter of 2-object captions have no swap


def test_manifests_written(tmp_path):
    generate(SynthConfig(n=12, seed=0, image_size=32), tmp_path, progress=False)
    written = write_task_manifests(tmp_path)
    assert "grounding_train" in written
    lines = written["grounding_train"].read_text().splitlines()
    assert len(lines) > 0 and '"tags"' in lines[0]
