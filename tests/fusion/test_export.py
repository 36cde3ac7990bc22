"""Every strategy exports to ONNX (TorchScript exporter, as omnifuse.deploy uses) with dynamic
batch and sequence axes, and ONNX Runtime matches PyTorch at other sizes, missing samples included."""

from __future__ import annotations

import io
import warnings

import pytest
import torch
from torch import nn

from omnifuse.encoders.base import EncoderOutput
from omnifuse.fusion import FUSIONS, build_fusion

ort = pytest.importorskip("onnxruntime")

CASES = {
    "concat": {},
    "concat_mlp": {"hidden_dim": 16},
    "late": {"num_outputs": 3, "combine": "stack"},
    "gated": {"hidden_dim": 16},
    "attention": {"hidden_dim": 16},
    "cross_attention": {"hidden_dim": 16, "heads": 2},
    "co_attention": {"hidden_dim": 16, "heads": 2},
    "single_stream": {"hidden_dim": 16, "heads": 2, "layers": 1, "max_tokens": 8},
    "pooling": {"hidden_dim": 16, "mode": "max"},
    "bilinear": {"rank": 8, "k": 3},
    "relation": {"hidden_dim": 16, "graph_layers": 1, "graph": "knn", "k": 2},
    "memory": {"hidden_dim": 16, "steps": 2},
}
NAMES = [
    "text_tokens",
    "text_mask",
    "text_pooled",
    "text_present",
    "image_tokens",
    "image_mask",
    "image_pooled",
]


class _Wrapper(nn.Module):
    """Flat tensor inputs -> fused, as an export wrapper would do."""

    def __init__(self, fusion: nn.Module) -> None:
        super().__init__()
        self.fusion = fusion

    def forward(self, tt, tm, tp, tpr, it, im, ip):
        feats = {"text": EncoderOutput(tt, tm, tp), "image": EncoderOutput(it, im, ip)}
        return self.fusion(feats, {"text": tpr}).fused


def _inputs(batch: int, t: int) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(batch * 100 + t)
    text_mask = torch.ones(batch, t, dtype=torch.long)
    text_mask[:, t // 2 + 1 :] = 0
    present = torch.ones(batch, dtype=torch.bool)
    present[1] = False
    return (
        torch.randn(batch, t, 24, generator=g),
        text_mask,
        torch.randn(batch, 24, generator=g),
        present,
        torch.randn(batch, 4, 16, generator=g),
        torch.ones(batch, 4, dtype=torch.long),
        torch.randn(batch, 16, generator=g),
    )


def test_every_strategy_is_covered():
    assert set(CASES) == set(FUSIONS)


@pytest.mark.parametrize("name", sorted(CASES))
def test_onnx_export_dynamic_batch_and_length(name):
    torch.manual_seed(0)
    model = _Wrapper(build_fusion(name, {"text": 24, "image": 16}, **CASES[name])).eval()
    axes = {n: {0: "batch"} for n in NAMES} | {
        "text_tokens": {0: "batch", 1: "t"},
        "text_mask": {0: "batch", 1: "t"},
    }
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            _inputs(3, 5),
            buf,
            input_names=NAMES,
            output_names=["fused"],
            dynamic_axes=axes | {"fused": {0: "batch"}},
            dynamo=False,
        )
    sess = ort.InferenceSession(buf.getvalue(), providers=["CPUExecutionProvider"])
    needed = {i.name for i in sess.get_inputs()}  # unused inputs are pruned from the graph
    x = _inputs(6, 7)
    got = sess.run(None, {n: v.numpy() for n, v in zip(NAMES, x) if n in needed})[0]
    with torch.no_grad():
        ref = model(*x).numpy()
    assert got.shape == ref.shape
    assert abs(got - ref).max() < 1e-4
