"""`omnifuse bench generate` on a tiny workload: every cell timed, ratios against eager fp32."""

from __future__ import annotations

import pytest
from transformers import GPT2Config, GPT2LMHeadModel

from omnifuse.bench.generate import bench_generate, lm_workload
from omnifuse.cli.main import main


def test_bench_generate_rows_and_ratios():
    lm = GPT2LMHeadModel(GPT2Config(n_embd=32, n_layer=1, n_head=2, vocab_size=64, n_positions=64))
    w = lm_workload(lm, max_new_tokens=3)
    result = bench_generate([w], (1, 2), ("eager-fp32", "bf16-weights"), iters=1, budget_s=1, progress=None)
    rows = result["rows"]
    assert len(rows) == 2 * 2 * 2
    assert all(r["tokens_per_s"] > 0 for r in rows)
    assert all(r["vs_eager_fp32"] == 1 for r in rows if r["config"] == "eager-fp32")
    assert len(result["fastest"]) == 4
    with pytest.raises(ValueError, match="unknown decode configuration"):
        bench_generate([w], configs=("turbo",))


def test_generate_help_lists_subcommands(capsys):
    with pytest.raises(SystemExit):
        main(["generate", "--help"])
    out = capsys.readouterr().out
    assert "caption" in out and "answer" in out and "examples:" in out
    with pytest.raises(SystemExit):
        main(["bench", "generate", "--help"])
    assert "examples:" in capsys.readouterr().out
