"""`omnifuse bench text2image` end to end at a toy budget; the judge's scoring rules."""

from __future__ import annotations

import json

import numpy as np
import pytest

from omnifuse.bench.text2image import frechet_distance, judge_prompt, parse_relation

pytest.importorskip("vector_quantize_pytorch")

RED_CIRCLE = {"color": "red", "shape": "circle", "row": 0, "col": 0}
BLUE_SQUARE = {"color": "blue", "shape": "square", "row": 0, "col": 2}


def test_one_object_prompt_scores_each_attribute():
    item = {"prompt": "a large red circle at the top left", "objects": [RED_CIRCLE]}
    assert judge_prompt([("red", "circle", 0, 0)], item) == {
        "color": 1.0, "shape": 1.0, "position": 1.0, "color_shape": 1.0, "all": 1.0
    }  # fmt: skip
    wrong = judge_prompt([("red", "square", 1, 1), ("green", "circle", 2, 2)], item)
    assert wrong == {"color": 1.0, "shape": 1.0, "position": 0.0, "color_shape": 0.0, "all": 0.0}


def test_two_object_prompt_checks_the_relation():
    item = {"prompt": "a red circle to the left of a blue square", "objects": [RED_CIRCLE, BLUE_SQUARE]}
    a, relation, b = parse_relation(item["prompt"], item["objects"])
    assert (a["shape"], relation, b["shape"]) == ("circle", "left of", "square")
    assert judge_prompt([("red", "circle", 1, 0), ("blue", "square", 2, 1)], item) == {
        "both_objects": 1.0,
        "relation": 1.0,
    }
    swapped = judge_prompt([("red", "circle", 1, 2), ("blue", "square", 1, 0)], item)
    assert swapped == {"both_objects": 1.0, "relation": 0.0}
    assert judge_prompt([("red", "circle", 1, 0)], item) == {"both_objects": 0.0, "relation": 0.0}


def test_frechet_distance_is_zero_for_the_same_gaussian_and_grows_with_the_shift():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(400, 4))
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    assert frechet_distance(a, a + 1.0) == pytest.approx(4.0, rel=1e-3)


@pytest.mark.slow
def test_bench_text2image_toy_run(tmp_path, capsys):
    from omnifuse.cli.main import main

    args = ["bench", "text2image", "--out", str(tmp_path), "--scenes", "60", "--tokenizer-steps", "3"]
    args += [
        "--prior-steps",
        "3",
        "--clip-steps",
        "2",
        "--judge-steps",
        "2",
        "--judge-scenes",
        "32",
        "--prompts",
        "2",
        "--n",
        "2",
    ]
    args += ["--batch-size", "16"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "shuffled prompts (chance)" in printed and "not Inception" in printed
    result = json.loads((tmp_path / "result.json").read_text())
    rows = {(r["group"], r["row"]) for r in result["rows"]}
    assert {"real renders", "N = 1", "reranked top-1 of 2", "shuffled prompts (chance)"} == {
        r for _, r in rows
    }
    assert (tmp_path / "grid.png").exists()
