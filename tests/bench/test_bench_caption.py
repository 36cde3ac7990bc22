"""`omnifuse bench caption` end to end at a toy budget: CLIP pre-training, then a captioner on
its frozen tower, evaluated beside blind baselines; bad arguments."""

from __future__ import annotations

import json

import pytest

from omnifuse.cli.main import main


@pytest.mark.slow
def test_bench_caption_toy_run(tmp_path, capsys):
    out = tmp_path / "bench"
    args = ["bench", "caption", "--out", str(out), "--n", "40", "--steps", "3", "--vision-steps", "3"]
    args += ["--connectors", "xattn", "--eval-items", "3", "--batch-size", "8", "--threads", "1"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "image tower: CLIP, 3 steps" in printed and "caption_cider_blank" in printed
    result = json.loads((out / "bench_caption.json").read_text())
    assert result["vision"]["steps"] == 3 and 0 <= result["vision"]["zero_shot_top1"] <= 1
    (row,) = result["rows"]
    assert row["connector"] == "xattn" and row["vision"] == "clip (frozen)"
    for key in ("caption_cider", "caption_cider_blank", "caption_cider_shuffled", "answer_accuracy_blank"):
        assert key in row
    # the captioner read its tower from the CLIP run, frozen
    config = json.loads((out / "runs" / "captioner-xattn" / "best" / "config.json").read_text())
    assert config["config"]["freeze_vision"] is True
    assert config["config"]["vision_from"].endswith("vision-clip/best")


@pytest.mark.parametrize(
    "flag, value, message",
    [
        ("--connectors", "xattn,gated", "unknown"),
        ("--steps", "0", "--steps"),
        ("--vision-steps", "-1", "--vision"),
    ],
)
def test_bench_caption_rejects_bad_arguments(tmp_path, capsys, flag, value, message):
    assert main(["bench", "caption", "--out", str(tmp_path / "bench"), flag, value]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "bench").exists()  # refused before any work


@pytest.mark.slow
def test_bench_caption_tower_from_scratch(tmp_path):
    """--vision-steps 0: no CLIP; the captioner trains a conv_bn tower from scratch."""
    out = tmp_path / "bench"
    args = ["bench", "caption", "--out", str(out), "--n", "40", "--steps", "2", "--vision-steps", "0"]
    assert main(args + ["--connectors", "prefix", "--eval-items", "2", "--batch-size", "8"]) == 0
    result = json.loads((out / "bench_caption.json").read_text())
    assert result["vision"] is None and result["rows"][0]["vision"] == "scratch"
    config = json.loads((out / "runs" / "captioner-prefix" / "best" / "config.json").read_text())
    assert config["config"]["freeze_vision"] is False and config["config"]["vision_from"] is None
