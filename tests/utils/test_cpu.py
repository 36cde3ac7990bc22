"""CPU capability detection: the two views (hardware, oneDNN under ONEDNN_MAX_CPU_ISA) and the
int8 choices made from them, with a mocked CPU so every machine tests every branch."""

import json

import numpy as np
import pytest

from omnifuse.utils import cpu
from omnifuse.utils.cpu import CpuInfo, cpu_info, unmet_requirements

ZEN3 = ("AMD EPYC 7B13", frozenset({"avx2"}))
SPR = ("Intel(R) Xeon(R) Platinum 8480+", frozenset(cpu.ISA_FLAGS))


def mock_cpu(monkeypatch, hardware, onednn_limit=None):
    monkeypatch.setattr(cpu, "_hardware", lambda: hardware)
    monkeypatch.delenv("DNNL_MAX_CPU_ISA", raising=False)
    if onednn_limit is None:
        monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    else:
        monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", onednn_limit)


def test_this_cpu_is_described():
    info = cpu_info()
    assert info.model and set(info.isa) <= set(cpu.ISA_FLAGS)
    assert info.model in info.describe() and json.dumps(info.to_dict())


def test_onednn_limit_narrows_what_onednn_uses(monkeypatch):
    mock_cpu(monkeypatch, SPR)
    info = cpu_info()
    assert info.vnni and info.onednn_vnni and info.onednn_bf16 and info.isa == list(cpu.ISA_FLAGS)
    mock_cpu(monkeypatch, SPR, "avx2")
    info = cpu_info()
    assert info.vnni  # the hardware (ONNX Runtime's, fbgemm's view) is unchanged
    assert not info.onednn_vnni and not info.onednn_bf16 and not info.onednn_bf16_usable
    assert "ONEDNN_MAX_CPU_ISA=AVX2" in info.describe()
    mock_cpu(monkeypatch, SPR, "AVX512_CORE_VNNI")
    assert cpu_info().onednn_vnni and not cpu_info().onednn_bf16 and cpu_info().onednn_bf16_usable
    mock_cpu(monkeypatch, ZEN3, "AVX512_CORE_AMX")  # a limit above the hardware adds nothing
    assert cpu_info().onednn_flags == {"avx2"}


def test_unmet_requirements_name_the_feature():
    zen3 = CpuInfo(*ZEN3)
    assert unmet_requirements([], zen3, onednn=False) is None
    why = unmet_requirements(["vnni"], zen3, onednn=False)
    assert "AVX512-VNNI" in why and "AMD EPYC 7B13" in why
    assert unmet_requirements(["vnni"], CpuInfo(*SPR), onednn=True) is None
    assert unmet_requirements(["vnni"], CpuInfo(*SPR, onednn_max_isa="AVX2"), onednn=True) is not None


def test_int8_weight_range_follows_the_cpu(monkeypatch):
    from omnifuse.deploy.export.onnx import int8_weight_range
    from omnifuse.layers.quantized import default_weight_range

    mock_cpu(monkeypatch, ZEN3)
    assert int8_weight_range(None) == "reduced" and default_weight_range() == "reduced"
    assert int8_weight_range("full") == "full"
    mock_cpu(monkeypatch, SPR)
    assert int8_weight_range(None) == "full" and default_weight_range() == "full"
    mock_cpu(monkeypatch, SPR, "AVX2")  # ONNX Runtime ignores oneDNN's limit; PyTorch's oneDNN does not
    assert int8_weight_range(None) == "full" and default_weight_range() == "reduced"


def test_onnx_int8_on_an_avx2_cpu(monkeypatch, tiny_model, tmp_path):
    """Exported on an AVX2-only CPU: 7-bit weights, recorded, loadable anywhere. A full-range
    export (as on a VNNI machine) is refused there, naming the missing feature."""
    pytest.importorskip("onnxruntime")
    from omnifuse import runtime
    from omnifuse.deploy.export import ExportOptions, export_onnx

    model = tiny_model()
    model.save_pretrained(tmp_path / "m")
    mock_cpu(monkeypatch, ZEN3)
    export_onnx(tmp_path / "m", tmp_path / "x", ExportOptions(quantize="int8"))
    config = json.loads((tmp_path / "x" / "config.json").read_text())
    assert config["export"]["int8"] == {"weight_range": "reduced", "requires": []}
    report = json.loads((tmp_path / "x" / "onnx" / "export_report.json").read_text())
    assert all(p["mean_cosine"] >= 0.99 for p in report["parity"])
    assert "7-bit" in report["graphs"]["image"]["quantized_with"]
    images = [np.full((20, 24, 3), 50 * i, dtype=np.uint8) for i in range(3)]
    assert runtime.load(tmp_path / "x", variant="int8").embed("image", images).shape[0] == 3

    export_onnx(tmp_path / "m", tmp_path / "full", ExportOptions(quantize="int8", int8_weights="full"))
    config = json.loads((tmp_path / "full" / "config.json").read_text())
    assert config["export"]["int8"] == {"weight_range": "full", "requires": ["vnni"]}
    with pytest.raises(ValueError, match="AVX512-VNNI.*--int8-weights reduced"):
        runtime.load(tmp_path / "full", variant="int8")
    assert runtime.load(tmp_path / "full", variant="fp32").variant_used == "fp32"
    mock_cpu(monkeypatch, SPR)
    assert runtime.load(tmp_path / "full", variant="int8").variant_used == "int8"
