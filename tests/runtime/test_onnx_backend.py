"""The ONNX Runtime backend: same API and (within tolerance) same results as the torch backend."""

import numpy as np
import pytest

from omnifuse import runtime
from omnifuse.deploy.export import ExportOptions, export_onnx

pytest.importorskip("onnxruntime")

TEXTS = ["a small red circle at the top left", "there is a cyan hexagon", "a blue square"]


def test_runtime_api_matches_across_backends(tiny_model, tmp_path):
    model = tiny_model()
    model.save_pretrained(tmp_path / "m")
    export_onnx(tmp_path / "m", tmp_path / "x", ExportOptions(quantize="int8"))
    images = [np.full((20, 24, 3), 50 * i, dtype=np.uint8) for i in range(3)]
    torch_p = runtime.load(tmp_path / "m", batch_size=2)
    fp32 = runtime.load(tmp_path / "x", batch_size=2, threads=1)  # auto-detected: onnx/
    int8 = runtime.load(tmp_path / "x", backend="onnx", batch_size=2, variant="int8")
    assert (fp32.backend, fp32.variant_used, int8.variant_used) == ("onnx", "fp32", "int8")
    for p in (fp32, int8):
        assert p.modalities == torch_p.modalities and p.fingerprint == torch_p.fingerprint
        assert p.class_names is None and p.model_type == "dual_encoder"
        assert abs(p._logit_scale() - torch_p._logit_scale()) < 1e-4
    for modality, items in (("text", TEXTS), ("image", images)):
        want = torch_p.embed(modality, items)
        np.testing.assert_allclose(fp32.embed(modality, items), want, atol=1e-5)
        got = int8.embed(modality, items)
        assert got.shape == want.shape and (got * want).sum(-1).min() > 0.98
    labels = ["red circle", "blue square", "cyan hexagon"]
    want = torch_p.classify({"image": images}, labels=labels)
    got = fp32.classify({"image": images}, labels=labels)
    assert [[s.label for s in row] for row in got] == [[s.label for s in row] for row in want]
    np.testing.assert_allclose(
        [[s.score for s in r] for r in got], [[s.score for s in r] for r in want], atol=1e-4
    )


def test_onnx_backend_errors_name_the_problem(tiny_model, tmp_path):
    export_onnx(tiny_model(), tmp_path / "x")
    with pytest.raises(ValueError, match="has no onnx/image.int8.onnx.*--quantize int8"):
        runtime.load(tmp_path / "x", variant="int8")
    with pytest.raises(ValueError, match="unknown ONNX variant 'fp8'"):
        runtime.load(tmp_path / "x", variant="fp8")
    tiny_model().save_pretrained(tmp_path / "m")
    with pytest.raises(ValueError, match="not an exported ONNX artifact"):
        runtime.load(tmp_path / "m", backend="onnx")
    predictor = runtime.load(tmp_path / "x")
    with pytest.raises(ValueError, match="no trained head"):
        predictor.classify({"text": ["a red circle"]})
    with pytest.raises(ValueError, match="got 'audio'"):
        predictor.embed("audio", [b"x"])
