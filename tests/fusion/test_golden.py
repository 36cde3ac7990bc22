"""Fixed-init golden values.

A failure here means the initialisation or the math of a strategy changed (or torch changed its
default init/RNG): if that is intended, recompute the numbers with the same code and paste them in.
"""

from __future__ import annotations

import pytest
import torch

from omnifuse.encoders.base import EncoderOutput
from omnifuse.fusion import build_fusion

DIMS = {"text": 24, "image": 16}


def _features() -> dict[str, EncoderOutput]:
    g = torch.Generator().manual_seed(7)
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]])
    ones = torch.ones(2, 3, dtype=torch.long)
    return {
        "text": EncoderOutput(torch.randn(2, 4, 24, generator=g), mask, torch.randn(2, 24, generator=g)),
        "image": EncoderOutput(torch.randn(2, 3, 16, generator=g), ones, torch.randn(2, 16, generator=g)),
    }


# strategy -> (kwargs, output_dim, fused[0, :4], fused[1, :4], fused[1, -4:]); sample 1 lacks the image
GOLDEN = {
    "concat": (
        {},
        40,
        [0.314628, -1.019215, 0.323167, -0.017005],
        [-0.022517, -0.023047, -0.005012, -0.008678],
        [-0.418704, 0.341562, -0.241734, 1.289574],
    ),
    "gated": (
        {"hidden_dim": 8},
        8,
        [-0.001656, 0.13405, -0.403349, 0.41258],
        [0.47503, -0.046752, -0.102212, 0.20564],
        [-0.294261, 0.40272, 0.017811, 0.197276],
    ),
    "cross_attention": (
        {"hidden_dim": 8, "heads": 2, "layers": 1, "dropout": 0.0},
        16,
        [-0.467905, 0.999719, -0.372557, -0.215433],
        [0.381154, -0.208537, -0.314028, -0.747596],
        [-0.303225, 0.426891, 0.017813, 0.199896],
    ),
    "relation": (
        {"hidden_dim": 8, "graph_layers": 1, "graph": "knn", "k": 2},
        8,
        [-0.140876, -0.139009, -0.147555, 0.264404],
        [-0.217686, -0.033222, -0.077334, 0.2843],
        [0.270216, -0.246923, 0.12255, -0.04665],
    ),
    "memory": (
        {"hidden_dim": 8, "steps": 2},
        8,
        [0.180608, 0.105095, 0.211191, 0.135969],
        [0.196124, 0.132234, 0.205285, 0.139212],
        [0.115454, -0.031949, 0.049548, 0.129036],
    ),
}


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_golden_values(name):
    kwargs, dim, row0, row1_head, row1_tail = GOLDEN[name]
    torch.manual_seed(0)
    fusion = build_fusion(name, DIMS, **kwargs).eval()
    with torch.no_grad():
        out = fusion(_features(), {"image": torch.tensor([True, False])}).fused
    assert out.shape == (2, dim)
    msg = f"{name}: fixed-init output changed, so its init or math changed (recompute GOLDEN if intended)"
    torch.testing.assert_close(out[0, :4], torch.tensor(row0), atol=1e-4, rtol=0, msg=msg)
    torch.testing.assert_close(out[1, :4], torch.tensor(row1_head), atol=1e-4, rtol=0, msg=msg)
    torch.testing.assert_close(out[1, -4:], torch.tensor(row1_tail), atol=1e-4, rtol=0, msg=msg)
