"""`omnifuse bench generalist` end to end at a toy budget (one control task, no specialist)."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("gymnasium")
pytest.importorskip("minigrid")
pytest.importorskip("pycocoevalcap")

from omnifuse.cli.main import main  # noqa: E402


@pytest.mark.slow
def test_bench_generalist_cli(tmp_path, capsys):
    out = tmp_path / "result.json"
    code = main(
        [
            "bench", "generalist", "--work-dir", str(tmp_path / "work"), "--tasks", "CartPole-v1",
            "--steps", "3", "--demo-episodes", "2", "--eval-episodes", "2", "--scenes", "30",
            "--hidden-size", "32", "--layers", "1", "--context", "64", "--batch-size", "4",
            "--no-specialist", "--threads", "1", "--out", str(out),
        ]
    )  # fmt: skip
    assert code == 0
    result = json.loads(out.read_text())
    (row,) = result["rows"]
    assert row["task"] == "CartPole-v1" and row["expert"] == 500.0 and row["random"] < 100
    assert row["normalised"] == pytest.approx(
        (row["generalist"] - row["random"]) / (row["expert"] - row["random"]), abs=1e-3
    )
    assert result["summary"]["tasks"] == 1 and result["summary"]["tasks_above_0.5"] in (0, 1)
    text = result["text"]["generalist"]
    assert {"caption/cider", "shuffled/cider", "vqa/accuracy", "shuffled/vqa_accuracy"} <= set(text)
    assert result["gifs"] and (tmp_path / "work/CartPole-v1.gif").exists()
    assert "normalised" in capsys.readouterr().out
