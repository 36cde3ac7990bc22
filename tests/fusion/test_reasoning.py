"""The reasoning fusions (relation, memory) against their papers' formulas written naively, and their errors."""

from __future__ import annotations

import pytest
import torch

from omnifuse.encoders.base import EncoderOutput
from omnifuse.fusion import build_fusion, check_inputs
from omnifuse.fusion.relation import knn_edges

DIMS = {"text": 12, "image": 10}


def _feats(batch: int = 3, t_text: int = 5, t_image: int = 4, seed: int = 0) -> dict[str, EncoderOutput]:
    g = torch.Generator().manual_seed(seed)
    tm = torch.ones(batch, t_text, dtype=torch.long)
    tm[0, 3:] = 0
    im = torch.ones(batch, t_image, dtype=torch.long)
    im[1, 2:] = 0
    return {
        "text": EncoderOutput(
            torch.randn(batch, t_text, 12, generator=g), tm, torch.randn(batch, 12, generator=g)
        ),
        "image": EncoderOutput(
            torch.randn(batch, t_image, 10, generator=g), im, torch.randn(batch, 10, generator=g)
        ),
    }


@pytest.mark.parametrize("aggregate", ["mean", "sum"])
def test_relation_equals_naive_pair_loop(aggregate):
    """RN = f([agg over valid pairs (i, j) of g(o_i, o_j, q), q]) with g applied to the concatenation."""
    torch.manual_seed(0)
    fusion = build_fusion("relation", DIMS, hidden_dim=8, aggregate=aggregate).eval()
    feats = _feats()
    with torch.no_grad():
        got = fusion(feats).fused
        x = fusion.question_and_nodes(feats, None)
        g = fusion.g
        w_first = torch.cat(
            [g.left.weight, g.right.weight, g.cond.weight], dim=1
        )  # g's first layer on [o_i, o_j, q]
        for b in range(3):
            idx = x.nodes_mask[b].nonzero().flatten().tolist()
            terms = []
            for i in idx:
                for j in idx:
                    z = torch.relu(
                        torch.cat([x.nodes[b, i], x.nodes[b, j], x.q[b]]) @ w_first.T + g.left.bias
                    )
                    terms.append(g.rest(z))
            rel = torch.stack(terms).sum(0)
            if aggregate == "mean":
                rel = rel / len(terms)
            want = fusion.f(torch.cat([rel, x.q[b]]))
            torch.testing.assert_close(got[b], want, atol=1e-5, rtol=1e-5)


def test_relation_pairs_are_ordered_and_question_conditioned():
    torch.manual_seed(0)
    fusion = build_fusion("relation", DIMS, hidden_dim=8).eval()
    feats = _feats()
    other = dict(feats)
    t = feats["text"]
    other["text"] = EncoderOutput(t.tokens.flip(0), t.mask, t.pooled.flip(0))
    with torch.no_grad():
        assert not torch.allclose(fusion(feats).fused, fusion(other).fused)
        assert fusion(feats).aux["pairs"].tolist() == [16.0, 4.0, 16.0]


def test_knn_edges_picks_nearest_valid_nodes():
    h = torch.tensor([[[0.0], [1.0], [5.0], [1.2], [100.0]]])  # node 4 is padding
    valid = torch.tensor([[True, True, True, True, False]])
    edges = knn_edges(h, valid, k=2)
    assert edges[0, 0].tolist() == [True, True, False, False, False]
    assert edges[0, 2].tolist() == [False, False, True, True, False]
    assert edges[0, :, 4].sum() == 0  # never a neighbour
    assert knn_edges(h, valid, k=10)[0, 0].tolist() == [True, True, True, True, False]  # k > nodes


def test_memory_attention_reads_only_real_nodes_and_words():
    torch.manual_seed(0)
    fusion = build_fusion("memory", DIMS, hidden_dim=8, steps=3).eval()
    with torch.no_grad():
        reads = fusion(_feats()).aux["read_weights"]  # (B, steps, N)
    assert reads.shape == (3, 3, 4)
    torch.testing.assert_close(reads.sum(-1), torch.ones(3, 3))
    assert reads[1, :, 2:].abs().max() == 0  # sample 1's padded patches


def test_memory_steps_change_the_answer():
    torch.manual_seed(0)
    one = build_fusion("memory", DIMS, hidden_dim=8, steps=1).eval()
    torch.manual_seed(0)
    three = build_fusion("memory", DIMS, hidden_dim=8, steps=3).eval()
    three.load_state_dict(one.state_dict(), strict=False)
    with torch.no_grad():
        assert not torch.allclose(one(_feats()).fused, three(_feats()).fused)


def test_pooled_inputs_are_an_error():
    for name in ("relation", "memory"):
        fusion = build_fusion(name, DIMS, hidden_dim=8)
        feats = _feats()
        feats["image"] = EncoderOutput(None, None, feats["image"].pooled)  # type: ignore[arg-type]
        with pytest.raises(
            ValueError, match=rf"fusion '{name}' reasons over token sequences.*\['image'\] gave only pooled"
        ):
            fusion(feats)
        with pytest.raises(ValueError, match=f"fusion '{name}' needs token sequences"):
            check_inputs(name, DIMS, tokens_available=False)


def test_bad_configs_name_the_field():
    with pytest.raises(
        ValueError, match=r"query='audio' is not one of the fused modalities \['image', 'text'\]"
    ):
        build_fusion("relation", DIMS, query="audio")
    with pytest.raises(ValueError, match="needs at least one other modality"):
        build_fusion("relation", {"text": 8})
    with pytest.raises(ValueError, match=r"aggregate must be one of \['mean', 'sum'\]; got 'max'"):
        build_fusion("relation", DIMS, aggregate="max")
    with pytest.raises(ValueError, match=r"graph must be one of \['full', 'knn'\]"):
        build_fusion("relation", DIMS, graph="star")
    with pytest.raises(ValueError, match="graph_layers must be an int >= 0"):
        build_fusion("relation", DIMS, graph_layers=-1)
    with pytest.raises(ValueError, match="steps must be an int >= 1; got 0"):
        build_fusion("memory", DIMS, steps=0)
    with pytest.raises(ValueError, match="memory: query must name the question modality"):
        build_fusion("memory", DIMS, query=None)
    with pytest.raises(ValueError, match="image has 4 tokens but max_tokens=2"):
        build_fusion("relation", DIMS, hidden_dim=8, max_tokens=2)(_feats())
    assert build_fusion("relation", {"image": 10}, query=None).output_dim == 256
