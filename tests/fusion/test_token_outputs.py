"""Token-level strategies also return fused per-token states aligned with their input tokens."""

from __future__ import annotations

import pytest
import torch

from omnifuse.encoders.base import EncoderOutput
from omnifuse.fusion import FUSIONS, build_fusion

DIMS = {"text": 12, "image": 10}
KW = {"hidden_dim": 8, "heads": 2, "dropout": 0.0}
TOKEN_LEVEL = {
    "cross_attention": {"text"},
    "co_attention": {"image", "text"},
    "single_stream": {"image", "text"},
}


def _feats(t_text: int = 5) -> dict[str, EncoderOutput]:
    g = torch.Generator().manual_seed(0)
    tm = torch.ones(3, t_text, dtype=torch.long)
    tm[0, 3:] = 0
    return {
        "text": EncoderOutput(torch.randn(3, t_text, 12, generator=g), tm, torch.randn(3, 12, generator=g)),
        "image": EncoderOutput(
            torch.randn(3, 4, 10, generator=g), torch.ones(3, 4), torch.randn(3, 10, generator=g)
        ),
    }


def test_which_strategies_give_tokens():
    torch.manual_seed(0)
    have = {n for n in FUSIONS if build_fusion(n, {"text": 8, "image": 8}, num_outputs=3).token_outputs}
    assert have == set(TOKEN_LEVEL)


@pytest.mark.parametrize("name", sorted(TOKEN_LEVEL))
def test_token_outputs_align_and_ignore_padding(name):
    torch.manual_seed(0)
    fusion = build_fusion(name, DIMS, **KW).eval()
    assert set(fusion.token_outputs) == TOKEN_LEVEL[name]
    feats = _feats()
    out = fusion(feats)
    for m, width in fusion.token_outputs.items():
        assert out.tokens[m].shape == (*feats[m].tokens.shape[:2], width)
    longer = _feats(t_text=7)  # two more (padded) text tokens, same real ones
    longer["text"] = EncoderOutput(
        torch.cat([feats["text"].tokens, torch.randn(3, 2, 12)], dim=1),
        torch.cat([feats["text"].mask, torch.zeros(3, 2, dtype=torch.long)], dim=1),
        feats["text"].pooled,
    )
    longer["image"] = feats["image"]
    out2 = fusion(longer)
    real = feats["text"].mask.bool()
    torch.testing.assert_close(
        out2.tokens["text"][:, :5][real], out.tokens["text"][real], atol=1e-5, rtol=1e-5
    )
