"""`omnifuse bench fusion` runs end to end on a tiny budget (no timing assertions)."""

from omnifuse.cli.main import main


def test_bench_fusion_smoke(tmp_path, capsys):
    out = tmp_path / "bench.json"
    code = main(
        ["bench", "fusion", "--work-dir", str(tmp_path / "work"), "--strategies", "concat_mlp", "cross_attention",
         "late", "--tasks", "vqa", "--steps", "2", "--pretrain-steps", "2", "--batch-size", "8", "--scenes", "60", "--out", str(out)]
    )  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    assert "cross_attention" in printed and "ensemble(concat_mlp+cross_attention)" in printed
    assert "cross_attention - concat" not in printed  # no concat row, so no gap is claimed
    import json

    rows = json.loads(out.read_text())["rows"]
    assert [r["fusion"] for r in rows][:3] == ["concat_mlp", "cross_attention", "late"]
    assert all(0 <= r["accuracy"] <= 1 and r["params"] > 0 for r in rows)
