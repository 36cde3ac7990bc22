"""Bad configurations and bad inputs raise ValueError saying what is wrong and how to fix it."""

from __future__ import annotations

import pytest
import torch

from omnifuse.encoders.base import EncoderOutput
from omnifuse.fusion import FUSIONS, CrossAttentionFusion, build_fusion, check_inputs

DIMS = {"text": 24, "image": 16}
DIMS3 = {"text": 24, "image": 16, "audio": 8}


def _feats(dims):
    return {
        m: EncoderOutput(torch.randn(2, 3, d), torch.ones(2, 3), torch.randn(2, d)) for m, d in dims.items()
    }


def test_unknown_strategy_lists_known():
    with pytest.raises(ValueError, match=r"unknown fusion 'nope'; known: \['attention'"):
        build_fusion("nope", DIMS)
    with pytest.raises(ValueError, match="unknown fusion 'nope'"):
        check_inputs("nope", DIMS, tokens_available=True)


def test_unknown_kwarg_lists_accepted():
    with pytest.raises(
        ValueError, match=r"got unknown argument\(s\) \['hiden_dim'\]; it accepts \['hidden_dim'"
    ):
        build_fusion("gated", DIMS, hiden_dim=8)


def test_late_needs_num_outputs():
    with pytest.raises(ValueError, match="needs num_outputs"):
        build_fusion("late", DIMS)


def test_num_outputs_ignored_by_feature_level_fusion():
    assert build_fusion("concat", DIMS, num_outputs=5).output_dim == 40


def test_co_attention_needs_exactly_two():
    with pytest.raises(ValueError, match="co_attention fuses exactly 2 modalities.*got 3"):
        build_fusion("co_attention", DIMS3)
    with pytest.raises(ValueError, match="exactly 2"):
        check_inputs("co_attention", {"text": 8}, tokens_available=True)


@pytest.mark.parametrize("name", ["gated", "bilinear", "cross_attention"])
def test_two_or_more_needed(name):
    with pytest.raises(ValueError, match="at least 2 modalities"):
        build_fusion(name, {"text": 24})


def test_needs_tokens_when_only_pooled():
    with pytest.raises(ValueError, match="needs token sequences.*pooled strategy: \\['attention'"):
        check_inputs("single_stream", DIMS, tokens_available=False)
    assert check_inputs("gated", DIMS, tokens_available=False) is FUSIONS["gated"]
    assert check_inputs(CrossAttentionFusion, DIMS, tokens_available=True) is CrossAttentionFusion


def test_pooling_unequal_dims_without_projection():
    msg = "set project: true \\(or hidden_dim\\) to fuse modalities of different sizes"
    with pytest.raises(ValueError, match=msg):
        build_fusion("pooling", DIMS, project=False)
    with pytest.raises(ValueError, match="'image': 16, 'text': 24"):
        check_inputs("pooling", DIMS, tokens_available=False)
    check_inputs("pooling", DIMS, tokens_available=False, hidden_dim=8)  # fine with a projection
    with pytest.raises(ValueError, match="unknown mode 'median'"):
        build_fusion("pooling", DIMS, mode="median", hidden_dim=8)


def test_cross_attention_query_must_be_a_modality():
    with pytest.raises(
        ValueError, match="query modality 'text' is not among the modalities \\['audio', 'image'\\]"
    ):
        build_fusion("cross_attention", {"image": 16, "audio": 8})
    with pytest.raises(ValueError, match="divisible by heads"):
        build_fusion("cross_attention", DIMS, hidden_dim=10, heads=4)


def test_bad_dims():
    with pytest.raises(ValueError, match="non-empty dict"):
        build_fusion("concat", {})
    with pytest.raises(ValueError, match="positive ints"):
        build_fusion("concat", {"text": 0})


def test_bad_late_options():
    with pytest.raises(ValueError, match="unknown combine 'max'"):
        build_fusion("late", DIMS, num_outputs=2, combine="max")
    with pytest.raises(ValueError, match="unknown head"):
        build_fusion("late", DIMS, num_outputs=2, head="conv")


def test_forward_errors():
    fusion = build_fusion("concat", DIMS)
    with pytest.raises(ValueError, match="got no features"):
        fusion({})
    with pytest.raises(ValueError, match=r"unknown modalities \['audio'\]"):
        fusion(_feats(DIMS3))
    with pytest.raises(ValueError, match="present flags for unknown modalities"):
        fusion(_feats(DIMS), {"video": torch.ones(2, dtype=torch.bool)})
    with pytest.raises(ValueError, match=r"text pooled features have shape \(2, 8\), expected \(B, 24\)"):
        fusion(_feats({"text": 8, "image": 16}))
    tokens = build_fusion("single_stream", DIMS, hidden_dim=8, heads=2, layers=1)
    bad = _feats(DIMS)
    bad["image"] = EncoderOutput(torch.randn(2, 3, 5), torch.ones(2, 3), torch.randn(2, 16))
    with pytest.raises(ValueError, match=r"image tokens have shape \(2, 3, 5\), expected \(B, T, 16\)"):
        tokens(bad)
