"""Every fusion strategy: shapes, padding and missing-modality invariance, gradients, config round trip."""

from __future__ import annotations

import json

import pytest
import torch

from omnifuse.encoders.base import EncoderOutput
from omnifuse.fusion import FUSIONS, build_fusion

H = 16
DIMS = {"text": 24, "image": 16}
DIMS3 = {"text": 24, "image": 16, "audio": 8}
LENGTHS = {"text": [6, 4, 2, 5], "image": [5, 5, 3, 1], "audio": [3, 1, 2, 3]}

# case id -> (strategy, kwargs, dims override or None)
CASES: dict[str, tuple[str, dict, dict | None]] = {
    "concat": ("concat", {}, None),
    "concat_mlp": ("concat_mlp", {"hidden_dim": H, "dropout": 0.0}, None),
    "late_mean": ("late", {"num_outputs": 3}, None),
    "late_learned": ("late", {"num_outputs": 3, "combine": "learned"}, None),
    "late_stack_mlp": ("late", {"num_outputs": 3, "combine": "stack", "head": "mlp", "hidden_dim": 8}, None),
    "gated": ("gated", {"hidden_dim": H}, None),
    "attention": ("attention", {"hidden_dim": H, "attn_dim": 8}, None),
    "cross_attention": ("cross_attention", {"hidden_dim": H, "heads": 2, "layers": 2, "dropout": 0.0}, None),
    "cross_attention_cls_sum": (
        "cross_attention",
        {"hidden_dim": H, "heads": 2, "dropout": 0.0, "pool": "cls", "combine": "sum", "ffn_dim": 8},
        None,
    ),
    "co_attention": ("co_attention", {"hidden_dim": H, "heads": 2, "layers": 2, "dropout": 0.0}, None),
    "single_stream": (
        "single_stream",
        {"hidden_dim": H, "heads": 2, "layers": 2, "dropout": 0.0, "max_tokens": 12},
        None,
    ),
    "pooling_mean_proj": ("pooling", {"hidden_dim": H}, None),
    "pooling_max_proj": ("pooling", {"mode": "max", "project": True}, None),
    "pooling_mean_noproj": ("pooling", {}, {"text": 16, "image": 16}),
    "pooling_max_noproj": ("pooling", {"mode": "max"}, {"text": 16, "image": 16}),
    "bilinear": ("bilinear", {"rank": 8, "k": 3, "dropout": 0.0}, None),
    "relation": ("relation", {"hidden_dim": H, "max_tokens": 12}, None),
    "relation_sum_no_query": ("relation", {"hidden_dim": H, "query": None, "aggregate": "sum"}, None),
    "relation_graph_full": ("relation", {"hidden_dim": H, "graph_layers": 2}, None),
    "relation_graph_knn": ("relation", {"hidden_dim": H, "graph_layers": 1, "graph": "knn", "k": 2}, None),
    "memory": ("memory", {"hidden_dim": H, "steps": 3, "max_tokens": 12}, None),
}


def test_every_strategy_has_a_case():
    assert {name for name, _, _ in CASES.values()} == set(FUSIONS)


def make_features(dims: dict[str, int], seed: int = 1, batch: int = 4) -> dict[str, EncoderOutput]:
    """Random tokens/pooled per modality with right padding (lengths from LENGTHS)."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for m, d in sorted(dims.items()):
        lengths = torch.tensor(LENGTHS[m][:batch])
        t = int(max(LENGTHS[m]))
        mask = (torch.arange(t)[None, :] < lengths[:, None]).long()  # (B, T)
        tokens = torch.randn(batch, t, d, generator=g)
        out[m] = EncoderOutput(tokens=tokens, mask=mask, pooled=torch.randn(batch, d, generator=g))
    return out


def build(case: str, dims: dict[str, int] | None = None, seed: int = 0):
    name, kwargs, override = CASES[case]
    torch.manual_seed(seed)
    return build_fusion(name, dims or override or DIMS, **kwargs)


def dims_of(case: str) -> dict[str, int]:
    return CASES[case][2] or DIMS


def garbage_like(x: torch.Tensor, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    y = torch.randn(x.shape, generator=g) * 1e3
    y.view(-1)[0] = float("nan")
    return y


@pytest.mark.parametrize("case", sorted(CASES))
def test_output_shapes(case):
    fusion = build(case).eval()
    out = fusion(make_features(dims_of(case)))
    assert out.fused.shape == (4, fusion.output_dim)
    assert torch.isfinite(out.fused).all()
    if fusion.decision_level:
        assert out.logits is not None and out.logits.shape == (4, 3)
        assert {f"logits.{m}" for m in dims_of(case)} <= set(out.aux)
    else:
        assert out.logits is None


@pytest.mark.parametrize(
    "case", sorted(c for c in CASES if CASES[c][0] != "co_attention" and CASES[c][2] is None)
)
def test_three_modalities(case):
    fusion = build(case, dims=DIMS3).eval()
    out = fusion(make_features(DIMS3))
    assert out.fused.shape == (4, fusion.output_dim)
    assert torch.isfinite(out.fused).all()


@pytest.mark.parametrize("case", sorted(CASES))
def test_padding_tokens_do_not_change_output(case):
    fusion = build(case).eval()
    feats = make_features(dims_of(case))
    ref = fusion(feats).fused
    noisy = {}
    for i, (m, f) in enumerate(feats.items()):
        pad = (f.mask == 0)[:, :, None]
        noisy[m] = EncoderOutput(torch.where(pad, garbage_like(f.tokens, i), f.tokens), f.mask, f.pooled)
    torch.testing.assert_close(fusion(noisy).fused, ref, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("case", sorted(CASES))
def test_extra_padding_does_not_change_output(case):
    """Right-padding every sequence with 3 more masked tokens leaves the output unchanged."""
    fusion = build(case).eval()
    feats = make_features(dims_of(case))
    ref = fusion(feats).fused
    longer = {}
    for i, (m, f) in enumerate(feats.items()):
        extra = garbage_like(f.tokens[:, :3], 30 + i)
        mask = torch.cat([f.mask, torch.zeros_like(f.mask[:, :3])], dim=1)
        longer[m] = EncoderOutput(torch.cat([f.tokens, extra], dim=1), mask, f.pooled)
    torch.testing.assert_close(fusion(longer).fused, ref, atol=1e-5, rtol=1e-5)


def _missing_pattern(dims: dict[str, int]) -> dict[str, torch.Tensor]:
    """Sample 1 lacks the first modality, sample 2 lacks the second; samples 0 and 3 have all."""
    mods = sorted(dims)
    present = {m: torch.ones(4, dtype=torch.bool) for m in mods}
    present[mods[0]][1] = False
    present[mods[1]][2] = False
    return present


@pytest.mark.parametrize("case", sorted(CASES))
def test_missing_sample_ignores_its_features(case):
    fusion = build(case).eval()
    dims = dims_of(case)
    feats, present = make_features(dims), _missing_pattern(dims)
    ref = fusion(feats, present).fused
    assert torch.isfinite(ref).all()
    swapped = {}
    for i, (m, f) in enumerate(feats.items()):
        gone = ~present[m]
        swapped[m] = EncoderOutput(
            torch.where(gone[:, None, None], garbage_like(f.tokens, 10 + i), f.tokens),
            f.mask,
            torch.where(gone[:, None], garbage_like(f.pooled, 20 + i), f.pooled),
        )
    torch.testing.assert_close(fusion(swapped, present).fused, ref, atol=1e-5, rtol=1e-5)
    # samples with all modalities are unaffected by the others missing something
    full = fusion(feats).fused
    torch.testing.assert_close(ref[[0, 3]], full[[0, 3]], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("drop", ["image", "text"])
def test_absent_modality_equals_missing_everywhere(case, drop):
    fusion = build(case).eval()
    feats = make_features(dims_of(case))
    absent = fusion({m: f for m, f in feats.items() if m != drop}).fused
    assert absent.shape == (4, fusion.output_dim) and torch.isfinite(absent).all()
    f = feats[drop]
    feats[drop] = EncoderOutput(garbage_like(f.tokens, 3), f.mask, garbage_like(f.pooled, 4))
    present = {drop: torch.zeros(4, dtype=torch.bool)}
    torch.testing.assert_close(fusion(feats, present).fused, absent, atol=1e-5, rtol=1e-5)


def _grads(fusion, feats, present=None) -> dict[str, torch.Tensor | None]:
    if not any(p.requires_grad for p in fusion.parameters()):
        return {}  # parameter-free (pooling without projection)
    fusion.zero_grad(set_to_none=True)
    fusion(feats, present).fused.pow(2).sum().backward()
    return {n: p.grad for n, p in fusion.named_parameters() if p.requires_grad}


def _learns(g: torch.Tensor | None) -> bool:
    return g is not None and bool(torch.isfinite(g).all()) and float(g.abs().sum()) > 0


@pytest.mark.parametrize("case", sorted(CASES))
def test_gradients_reach_every_parameter(case):
    fusion = build(case).train()
    dims = dims_of(case)
    missing_only = fusion.missing_only_params
    grads = _grads(fusion, make_features(dims))
    stuck = [n for n, g in grads.items() if not n.startswith(missing_only) and not _learns(g)]
    assert not stuck, f"no gradient with all modalities present: {stuck}"
    # documented exceptions learn from batches where modalities are missing
    grads = _grads(fusion, make_features(dims), _missing_pattern(dims))
    stuck = [n for n, g in grads.items() if n.startswith(missing_only) and not _learns(g)]
    assert not stuck, f"no gradient from a batch with missing modalities: {stuck}"
    # any missing-only parameter that cross_attention has learns when the query is missing
    assert all(torch.isfinite(g).all() for g in grads.values() if g is not None)


def test_cross_attention_fallback_learns_when_query_missing():
    fusion = build("cross_attention").train()
    present = {"text": torch.tensor([True, False, True, False])}
    grads = _grads(fusion, make_features(DIMS), present)
    assert _learns(grads["fallback.weight"]) and _learns(grads["fallback.bias"])


@pytest.mark.parametrize("case", sorted(CASES))
def test_config_round_trip(case):
    fusion = build(case).eval()
    cfg = fusion.to_config()
    assert cfg["name"] == CASES[case][0] and cfg["dims"] == dims_of(case)
    cfg = json.loads(json.dumps(cfg))
    torch.manual_seed(123)  # a different init, overwritten by the state dict
    rebuilt = build_fusion(**cfg).eval()
    rebuilt.load_state_dict(fusion.state_dict())
    feats, present = make_features(dims_of(case)), _missing_pattern(dims_of(case))
    torch.testing.assert_close(rebuilt(feats, present).fused, fusion(feats, present).fused)
    assert rebuilt.to_config() == cfg


def test_parameter_order_is_sorted_by_modality():
    a = build_fusion("gated", {"text": 24, "image": 16}, hidden_dim=H)
    b = build_fusion("gated", {"image": 16, "text": 24}, hidden_dim=H)
    assert [n for n, _ in a.named_parameters()] == [n for n, _ in b.named_parameters()]
    assert list(a.dims) == ["image", "text"]
