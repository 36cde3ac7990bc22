"""What each strategy computes, checked against the formula on small inputs."""

from __future__ import annotations

import pytest
import torch

from omnifuse.encoders.base import EncoderOutput
from omnifuse.fusion import build_fusion, masked_softmax

DIMS = {"text": 24, "image": 16}


def _pooled(dims, batch=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    out = {}
    for m, d in sorted(dims.items()):
        pooled = torch.randn(batch, d, generator=g)
        out[m] = EncoderOutput(pooled[:, None, :], torch.ones(batch, 1, dtype=torch.long), pooled)
    return out


def test_concat_is_sorted_concatenation():
    feats = _pooled(DIMS)
    out = build_fusion("concat", DIMS)(feats).fused
    torch.testing.assert_close(out, torch.cat([feats["image"].pooled, feats["text"].pooled], dim=-1))


def test_late_mean_with_one_missing_is_that_modality():
    torch.manual_seed(0)
    late = build_fusion("late", DIMS, num_outputs=4).eval()
    feats = _pooled(DIMS)
    out = late(feats, {"image": torch.tensor([True, False, True])})
    text = late.heads["text"](feats["text"].pooled)
    image = late.heads["image"](feats["image"].pooled)
    torch.testing.assert_close(out.logits[1], text[1])
    torch.testing.assert_close(out.logits[0], (text[0] + image[0]) / 2)
    torch.testing.assert_close(out.aux["weights"][1], torch.tensor([0.0, 1.0]))


def test_late_learned_weights_are_softmax():
    late = build_fusion("late", DIMS, num_outputs=2, combine="learned")
    with torch.no_grad():
        late.weight_logits.copy_(torch.tensor([0.0, 1.0]))
    out = late(_pooled(DIMS))
    expected = torch.softmax(torch.tensor([0.0, 1.0]), dim=0)
    torch.testing.assert_close(out.aux["weights"], expected.expand(3, 2))


def test_gated_two_modalities_is_gmu():
    torch.manual_seed(0)
    gmu = build_fusion("gated", DIMS, hidden_dim=8).eval()
    feats = _pooled(DIMS)
    xi, xt = feats["image"].pooled, feats["text"].pooled
    z = torch.sigmoid(gmu.gate(torch.cat([xi, xt], dim=-1)))
    expected = z * torch.tanh(gmu.proj["image"](xi)) + (1 - z) * torch.tanh(gmu.proj["text"](xt))
    torch.testing.assert_close(gmu(feats).fused, expected)
    # one modality missing: h = h_present
    out = gmu(feats, {"image": torch.tensor([False, True, True])}).fused
    torch.testing.assert_close(out[0], torch.tanh(gmu.proj["text"](xt))[0])


def test_gated_three_modalities_gates_sum_to_one():
    dims = {**DIMS, "audio": 8}
    gmu = build_fusion("gated", dims, hidden_dim=8)
    out = gmu(_pooled(dims), {"audio": torch.tensor([True, False, True])})
    gates = out.aux["gates"].detach()  # (B, M, H)
    torch.testing.assert_close(gates.sum(1), torch.ones(3, 8))
    assert float(gates[1, 0].abs().max()) == 0.0  # audio (sorted first) excluded for sample 1


def test_attention_weights_exclude_missing():
    att = build_fusion("attention", DIMS, hidden_dim=8)
    out = att(_pooled(DIMS), {"text": torch.tensor([True, False, True])})
    torch.testing.assert_close(out.aux["weights"].sum(1), torch.ones(3))
    assert float(out.aux["weights"].detach()[1, 1]) == 0.0


@pytest.mark.parametrize("mode", ["mean", "max"])
def test_pooling_without_projection(mode):
    dims = {"text": 8, "image": 8}
    feats = _pooled(dims)
    out = build_fusion("pooling", dims, mode=mode)(feats, {"text": torch.tensor([True, False, True])}).fused
    stacked = torch.stack([feats["image"].pooled, feats["text"].pooled], dim=1)
    full = stacked.mean(1) if mode == "mean" else stacked.amax(1)
    torch.testing.assert_close(out[[0, 2]], full[[0, 2]])
    torch.testing.assert_close(out[1], feats["image"].pooled[1])


def test_bilinear_output_is_unit_norm_and_missing_uses_learned_factor():
    torch.manual_seed(0)
    mfb = build_fusion("bilinear", DIMS, rank=6, k=2, dropout=0.0).eval()
    feats = _pooled(DIMS)
    out = mfb(feats, {"image": torch.tensor([True, False, True])}).fused
    torch.testing.assert_close(out.norm(dim=-1), torch.ones(3))
    z = (mfb.proj["text"](feats["text"].pooled[1]) * mfb.missing["image"]).view(6, 2).sum(-1)
    z = torch.sign(z) * torch.sqrt(z.abs() + 1e-8)
    torch.testing.assert_close(out[1], z / z.norm())


def test_cross_attention_without_keys_keeps_query_path():
    """All key tokens masked for a sample: no NaN, and the attention contributes nothing."""
    torch.manual_seed(0)
    ca = build_fusion("cross_attention", DIMS, hidden_dim=8, heads=2, dropout=0.0).eval()
    feats = _pooled(DIMS)
    out = ca(feats, {"image": torch.tensor([False, True, True])})
    assert torch.isfinite(out.fused).all()
    assert float(out.aux["attn_weights"].detach()[0].abs().max()) == 0.0
    torch.testing.assert_close(out.aux["attn_weights"][1:].sum(-1), torch.ones(2, 1))


def test_co_attention_missing_stream_uses_learned_embedding():
    torch.manual_seed(0)
    co = build_fusion("co_attention", DIMS, hidden_dim=8, heads=2, dropout=0.0).eval()
    out = co(_pooled(DIMS), {"text": torch.tensor([True, False, True])}).fused
    torch.testing.assert_close(out[1, 8:], co.missing["text"].detach())


def test_single_stream_rejects_too_many_tokens():
    ss = build_fusion("single_stream", DIMS, hidden_dim=8, heads=2, layers=1, max_tokens=2)
    feats = _pooled(DIMS)
    feats["text"] = EncoderOutput(torch.randn(3, 5, 24), torch.ones(3, 5), torch.randn(3, 24))
    with pytest.raises(ValueError, match="text has 5 tokens but max_tokens=2"):
        ss(feats)


def test_masked_softmax_all_invalid_row_is_zero_not_nan():
    w = masked_softmax(torch.randn(2, 3), torch.tensor([[True, False, True], [False, False, False]]), dim=1)
    assert torch.isfinite(w).all() and float(w[1].abs().sum()) == 0.0
    torch.testing.assert_close(w[0].sum(), torch.tensor(1.0))


def test_cross_attention_block_without_keys_skips_attention():
    from omnifuse.fusion._blocks import CrossAttentionBlock

    torch.manual_seed(0)
    block = CrossAttentionBlock(8, 2, 16, 0.0).eval()
    x, kv = torch.randn(2, 3, 8), torch.randn(2, 4, 8)
    kv_mask = torch.tensor([[True, True, False, False], [False, False, False, False]])
    with torch.no_grad():
        out, w = block(x, kv, kv_mask)
    h = block.norm1(x[1])
    torch.testing.assert_close(out[1], block.norm2(h + block.ffn(h)))
    assert torch.isfinite(out).all() and float(w[1].abs().sum()) == 0.0
    torch.testing.assert_close(w[0].sum(-1), torch.ones(3), msg="weights over real keys sum to 1")
