"""`omnifuse bench infer` smoke test: every configuration runs on a tiny tower (no timing asserts)."""

import json

import pytest
import torch

from omnifuse.bench.infer import CONFIGS, build_arch
from omnifuse.cli.main import main
from omnifuse.deploy.export.torch_cpu import best_cpu_runner
from omnifuse.layers.quantized import QuantizedLinear, calibrate, default_weight_range, onednn_int8_available

pytest.importorskip("onnxruntime")


def test_bench_infer_smoke(tmp_path, capsys):
    out = tmp_path / "bench.json"
    argv = [
        "bench",
        "infer",
        "--arch",
        "clip-vit-tiny",
        "--batch-sizes",
        "1,4",
        "--iters",
        "2",
        "--warmup",
        "1",
    ]
    argv += ["--latency-iters", "3", "--budget", "1", "--no-compile", "--out", str(out)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "Intel" in printed or "cores" in printed
    result = json.loads(out.read_text())
    assert [r["name"] for r in result["rows"]] == list(CONFIGS)
    assert result["machine"]["threads"] >= 1 and result["machine"]["cores"] >= 1
    for row in result["rows"]:
        if row["name"] == "omnifuse-best" and not onednn_int8_available():
            continue
        assert row["error"] is None, row
        assert set(row["items_per_s"]) == {"1", "4"} and row["p50_ms"] > 0 and row["p99_ms"] >= row["p50_ms"]
        assert row["mean_cosine"] > 0.98
    assert "best_vs_ort_int8" in result


@pytest.mark.skipif(not onednn_int8_available(), reason="no oneDNN int8 kernels in this torch build")
def test_int8_linear_static_and_dynamic_match_fp32():
    torch.manual_seed(0)
    linear = torch.nn.Linear(32, 24)
    x = torch.randn(5, 7, 32)
    want = linear(x).detach()
    layer = QuantizedLinear.from_linear(linear, weight_range=default_weight_range())
    layer.use_onednn = True  # oneDNN's qlinear_pointwise, as in omnifuse-best
    got = layer(x)  # dynamic activation scale
    assert got.shape == (5, 7, 24)
    assert torch.nn.functional.cosine_similarity(got.flatten(), want.flatten(), dim=0) > 0.999
    calibrate(layer, lambda: layer(x))
    static = layer(x)
    assert torch.nn.functional.cosine_similarity(static.flatten(), want.flatten(), dim=0) > 0.999


@pytest.mark.skipif(not onednn_int8_available(), reason="no oneDNN int8 kernels in this torch build")
def test_best_cpu_runner_agrees_with_fp32():
    model = build_arch("clip-vit-tiny")
    pixels = {"image": torch.randn(3, 3, 32, 32)}
    run, description = best_cpu_runner(
        model, "image", pixels, compile=False, calibration={"image": torch.randn(4, 3, 32, 32)}
    )
    with torch.no_grad():
        want = model.encode("image", pixels).numpy()
    got = run(pixels)
    assert got.shape == want.shape and "static" in description
    assert (got * want).sum(-1).min() > 0.98


def test_bench_infer_bad_input(capsys):
    assert main(["bench", "infer", "--arch", "resnet-9000"]) == 2
    assert "unknown bench architecture 'resnet-9000'" in capsys.readouterr().err
    assert main(["bench", "infer", "--arch", "clip-vit-tiny", "--configs", "tensorrt"]) == 2
    assert "unknown inference configuration" in capsys.readouterr().err
    assert main(["bench", "infer", "--batch-sizes", "1,x"]) == 2
    assert "comma-separated integers" in capsys.readouterr().err
