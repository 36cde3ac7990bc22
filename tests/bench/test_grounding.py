"""`omnifuse bench grounding` runs end to end on a tiny budget (no timing assertions)."""

import json

import pytest

from omnifuse.cli.main import main


@pytest.mark.slow
def test_bench_grounding_smoke(tmp_path, capsys):
    out = tmp_path / "bench.json"
    code = main(
        ["bench", "grounding", "--work-dir", str(tmp_path / "work"), "--rows", "text_only", "cross_attention",
         "--steps", "2", "--pretrain-steps", "2", "--batch-size", "8", "--scenes", "40", "--workers", "1",
         "--out", str(out)]
    )  # fmt: skip
    assert code == 0
    assert "cross_attention" in capsys.readouterr().out
    rows = json.loads(out.read_text())["rows"]
    assert [r["fusion"] for r in rows] == ["text_only", "cross_attention"]
    assert all(0 <= r["f1"] <= 1 and 0 <= r["token_accuracy"] <= 1 for r in rows)
    with pytest.raises(ValueError, match="unknown grounding rows"):
        from omnifuse.bench.grounding import GroundingBenchConfig, bench_grounding

        bench_grounding(tmp_path / "w2", GroundingBenchConfig(rows=("nope",)))
