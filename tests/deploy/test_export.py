"""ONNX export: tower parity, the refusal path, a fusion classifier graph, bad input."""

import json

import numpy as np
import pytest
import torch

from omnifuse.cli.main import main
from omnifuse.deploy.export import ExportOptions, ExportParityError, export_onnx
from omnifuse.deploy.export import onnx as onnx_export

pytest.importorskip("onnxruntime")


def test_dual_encoder_towers_export_with_parity(tiny_model, tmp_path):
    import onnxruntime as ort

    model = tiny_model()
    report = export_onnx(model, tmp_path / "onnx-model", ExportOptions(quantize="int8"))
    out = tmp_path / "onnx-model"
    assert sorted(p.name for p in (out / "onnx").iterdir()) == [
        "export_report.json",
        "image.int8.onnx",
        "image.onnx",
        "text.int8.onnx",
        "text.onnx",
    ]
    assert (
        (out / "config.json").exists() and (out / "processor.json").exists() and (out / "tokenizer").is_dir()
    )
    saved = json.loads((out / "onnx" / "export_report.json").read_text())
    assert {(p["graph"], p["variant"]) for p in saved["parity"]} == {
        ("text", "fp32"),
        ("text", "int8"),
        ("image", "fp32"),
        ("image", "int8"),
    }
    for p in report.parity:
        assert p["passed"] and p["mean_cosine"] >= (0.99 if p["variant"] == "int8" else 0.9999)
        if p["variant"] == "fp32":
            assert p["max_abs_diff"] <= 1e-4
    # dynamic axes: a batch size and a sequence length the trace never saw
    session = ort.InferenceSession(str(out / "onnx" / "text.onnx"), providers=["CPUExecutionProvider"])
    ids = torch.randint(5, 20, (6, 13))
    mask = torch.ones_like(ids)
    mask[2, 7:] = 0
    got = session.run(None, {"text": ids.numpy(), "text_mask": mask.numpy()})[0]
    with torch.no_grad():
        want = model.encode("text", {"text": ids, "text_mask": mask}).numpy()
    np.testing.assert_allclose(got, want, atol=1e-5)
    session = ort.InferenceSession(str(out / "onnx" / "image.onnx"), providers=["CPUExecutionProvider"])
    pixels = torch.randn(5, 3, 16, 16)
    with torch.no_grad():
        want = model.encode("image", {"image": pixels}).numpy()
    np.testing.assert_allclose(session.run(None, {"image": pixels.numpy()})[0], want, atol=1e-5)


def test_parity_failure_refuses_and_leaves_nothing(tiny_model, tmp_path, monkeypatch):
    real = onnx_export.export_graph

    def corrupted(spec, example, path, opset):
        with torch.no_grad():  # a faulty exporter: the graph's weights differ from the model's
            for p in spec.module.parameters():
                p.add_(0.05)
        real(spec, example, path, opset)

    monkeypatch.setattr(onnx_export, "export_graph", corrupted)
    with pytest.raises(ExportParityError, match="does not match the PyTorch model.*no artifact was written"):
        export_onnx(tiny_model(), tmp_path / "bad")
    assert list(tmp_path.iterdir()) == []  # neither the artifact nor its temporary directory


def test_optimized_export_keeps_parity(tiny_model, tmp_path):
    report = export_onnx(tiny_model(), tmp_path / "opt", ExportOptions(optimize=True))
    assert all(p["passed"] for p in report.parity)
    assert (
        "optimizer" in report.graphs["text"]["optimized_with"]
        or "ORT" in report.graphs["text"]["optimized_with"]
    )


def test_fusion_classifier_exports_one_graph_with_present_flags(tiny_model, tmp_path):
    import onnxruntime as ort

    from omnifuse import runtime
    from omnifuse.fusion import build_fusion
    from omnifuse.models.fusion_classifier import FusionClassifier

    towers = dict(tiny_model().towers)
    torch.manual_seed(0)
    fusion = build_fusion("gated", {m: t.hidden_size for m, t in towers.items()}, num_outputs=3)
    model = FusionClassifier(
        towers, fusion, class_names=["a", "b", "c"], processor=tiny_model().processor
    ).eval()
    model.save_pretrained(tmp_path / "fc")
    assert (
        main(["export", str(tmp_path / "fc"), "--out", str(tmp_path / "fc-onnx"), "--quantize", "int8"]) == 0
    )
    session = ort.InferenceSession(str(tmp_path / "fc-onnx" / "onnx" / "classifier.onnx"))
    assert [i.name for i in session.get_inputs()] == [
        "image",
        "image_present",
        "text",
        "text_mask",
        "text_present",
    ]
    predictor = runtime.load(tmp_path / "fc-onnx")
    assert predictor.backend == "onnx" and predictor.class_names == ["a", "b", "c"]
    texts = ["a red circle", "there is a blue square at the top"]
    images = [np.full((16, 16, 3), 60 * i, dtype=np.uint8) for i in range(2)]
    for inputs in ({"text": texts}, {"image": images}, {"text": texts, "image": images}):
        # a missing modality: zeros + present=False in the graph == the modality absent in PyTorch
        with torch.no_grad():
            want = model.predict_proba(model.processor(inputs)).numpy()
        np.testing.assert_allclose(predictor._head_probs(inputs), want, atol=1e-5)
    top = predictor.classify({"image": images}, top_k=1)
    assert len(top) == 2 and top[0][0].label in {"a", "b", "c"}
    int8 = runtime.load(tmp_path / "fc-onnx", variant="int8")
    assert int8.variant_used == "int8"
    with torch.no_grad():
        want = model.predict_proba(model.processor({"text": texts})).numpy()
    np.testing.assert_allclose(int8._head_probs({"text": texts}), want, atol=0.05)


def test_bad_inputs_name_the_problem(tiny_model, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["export", str(tmp_path / "empty"), "--out", str(tmp_path / "x")]) == 2
    assert "not an omnifuse artifact" in capsys.readouterr().err
    tiny_model().save_pretrained(tmp_path / "m")
    assert main(["export", str(tmp_path / "m"), "--format", "tflite", "--out", str(tmp_path / "x")]) == 2
    assert "unknown export format 'tflite'" in capsys.readouterr().err
    with pytest.raises(ValueError, match="unknown quantization 'int4'"):
        ExportOptions(quantize="int4")
    (tmp_path / "taken").mkdir()
    with pytest.raises(ValueError, match="already exists"):
        export_onnx(tiny_model(), tmp_path / "taken")
    with pytest.raises(ValueError, match="cannot export a 'Linear'"):
        export_onnx(torch.nn.Linear(2, 2), tmp_path / "lin")


def test_half_precision_model_exports_in_fp32_and_is_left_as_is(tiny_model, tmp_path):
    model = tiny_model().half()  # e.g. an fp16-compressed artifact
    report = export_onnx(model, tmp_path / "h")
    assert all(p["passed"] for p in report.parity)
    assert next(model.parameters()).dtype == torch.float16 and not model.training


def test_int8_matmul_layers_are_refused_with_a_hint(tiny_model, tmp_path):
    class QuantizedLinear(torch.nn.Linear):  # stands in for int8 layers: aten::_int_mm has no ONNX export
        def forward(self, x):
            rows = x.reshape(-1, x.shape[-1])
            pad = (-rows.shape[0]) % 8 + (8 if rows.shape[0] <= 16 else 0)
            q = torch.nn.functional.pad(rows, (0, 0, 0, pad)).round().clamp(-127, 127).to(torch.int8)
            w = self.weight.round().clamp(-127, 127).to(torch.int8)
            out = torch._int_mm(q, w.T.contiguous())[: rows.shape[0]].float()
            return out.reshape(*x.shape[:-1], -1)

    model = tiny_model()
    old = model.projections["image"]
    model.projections["image"] = QuantizedLinear(old.in_features, old.out_features, bias=False)
    with pytest.raises(ValueError, match="QuantizedLinear.*cannot export.*--quantize int8"):
        export_onnx(model, tmp_path / "q")
    assert list(tmp_path.iterdir()) == []
