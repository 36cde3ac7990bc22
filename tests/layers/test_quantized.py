"""The one int8 stack: every kernel is exact or falls back, on whatever CPU oneDNN is told it has.

Run plainly and under ONEDNN_MAX_CPU_ISA=AVX2 (oneDNN's AVX2 path: no VNNI, int16 saturation)."""

import logging

import pytest
import torch

from omnifuse.layers import quantized
from omnifuse.layers.quantized import QuantizedLinear, calibrate, default_weight_range, quantize_linears
from omnifuse.utils import cpu
from omnifuse.utils.cpu import cpu_info


def _cos(a, b):
    return torch.nn.functional.cosine_similarity(a.flatten(), b.flatten(), dim=0)


@pytest.mark.parametrize("activations", ["dynamic", "static"])
@pytest.mark.parametrize("onednn", [False, True])
def test_default_weights_are_exact_on_this_cpu(activations, onednn):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(256, 128), torch.nn.GELU(), torch.nn.Linear(128, 64))
    x = torch.randn(64, 256) * 3
    want = model(x).detach()
    quantize_linears(model, "dynamic", onednn=onednn)
    if activations == "static":
        calibrate(model, lambda: model(x))
    with torch.inference_mode():
        got = model(x)
    kernels = {m.kernel for m in model.modules() if isinstance(m, QuantizedLinear)}
    assert "exact-float" not in kernels or not quantized._INT_MM, kernels
    assert _cos(got, want) > 0.999, (kernels, cpu_info().describe())


def test_full_range_without_vnni_falls_back_and_says_why(monkeypatch, caplog):
    """A full-range artifact made on a VNNI machine, loaded where oneDNN has no VNNI."""
    monkeypatch.setattr(cpu, "_hardware", lambda: ("AMD EPYC 7B13", frozenset({"avx2"})))
    monkeypatch.setattr(quantized, "_WARNED", set())
    torch.manual_seed(0)
    linear = torch.nn.Linear(512, 256)
    x = torch.rand(64, 512) * 4  # large non-negative activations: the saturating case
    layer = QuantizedLinear.from_linear(linear, "static", float(x.abs().max()) / 127, weight_range="full")
    with caplog.at_level(logging.WARNING, logger="omnifuse.layers.quantized"):
        got = layer(x)
    assert layer.kernel == "exact-float"
    assert "AVX512-VNNI" in caplog.text and "reduced" in caplog.text
    assert _cos(got, linear(x).detach()) > 0.999
    assert default_weight_range() == "reduced"
    reduced = QuantizedLinear.from_linear(linear, "static", float(x.abs().max()) / 127, "reduced")
    assert reduced.kernel in ("int_mm", "exact-float") and reduced.spec()["weight_range"] == "reduced"
    assert _cos(reduced(x), linear(x).detach()) > 0.999


def test_bad_weight_range_is_refused():
    with pytest.raises(ValueError, match="weight_range must be one of"):
        QuantizedLinear(4, 4, weight_range="6-bit")
