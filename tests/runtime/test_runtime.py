"""The runtime's torch backend: same outputs as the model, zero-shot, clear errors."""

import numpy as np
import pytest
import torch

from omnifuse import runtime


def test_torch_predictor_matches_model(tiny_model, tiny_batch, tmp_path):
    model = tiny_model()
    model.save_pretrained(tmp_path / "m")
    predictor = runtime.load(tmp_path / "m")
    assert predictor.backend == "torch" and predictor.modalities == ["image", "text"]
    texts = ["a small red circle at the top left", "there is a cyan hexagon"]
    got = predictor.embed("text", texts)
    with torch.no_grad():
        want = model.encode("text", model.processor({"text": texts})).numpy()
    np.testing.assert_allclose(got, want, atol=1e-5)
    images = [np.full((16, 16, 3), 40 * i, dtype=np.uint8) for i in range(3)]
    result = predictor.classify({"image": images}, labels=["red circle", "blue square"], top_k=1)
    assert len(result) == 3 and len(result[0]) == 1 and 0 <= result[0][0].score <= 1


def test_runtime_errors_name_the_problem(tiny_model, tmp_path):
    tiny_model().save_pretrained(tmp_path / "m")
    predictor = runtime.load(tmp_path / "m", batch_size=2)
    with pytest.raises(ValueError, match="takes \\['image', 'text'\\]; got 'audio'"):
        predictor.embed("audio", [b"x"])
    with pytest.raises(ValueError, match="needs 'labels'"):
        predictor.classify({"text": ["a red circle"]})
    with pytest.raises(ValueError, match="unknown runtime backend"):
        runtime.load(tmp_path / "m", backend="tpu")


def test_full_range_int8_on_a_cpu_without_vnni_is_reported_at_load(tiny_model, monkeypatch, caplog):
    """The int8 kernel is chosen when the predictor is built, so the fallback warning comes then."""
    import logging

    from omnifuse.layers import quantized
    from omnifuse.layers.quantized import quantize_linears
    from omnifuse.runtime.torch_backend import TorchPredictor
    from omnifuse.utils import cpu

    monkeypatch.setattr(cpu, "_hardware", lambda: ("AMD EPYC 7B13", frozenset({"avx2"})))
    monkeypatch.setattr(quantized, "_WARNED", set())
    model = tiny_model()
    quantize_linears(model.towers["text"], "dynamic", weight_range="full", onednn=True)
    with caplog.at_level(logging.WARNING, logger="omnifuse.layers.quantized"):
        predictor = TorchPredictor(model)
    assert "AVX512-VNNI" in caplog.text
    assert sum(predictor.int8_kernels.values()) > 0
