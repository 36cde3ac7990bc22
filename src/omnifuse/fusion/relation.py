"""Relation-network (graph) fusion: a learned function over every pair of nodes, conditioned on the question."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from omnifuse.encoders.base import EncoderOutput
from omnifuse.fusion._blocks import mlp
from omnifuse.fusion._reasoning import ReasoningFusion
from omnifuse.fusion.base import FusionOutput, register_fusion

AGGREGATES = ("mean", "sum")
GRAPHS = ("full", "knn")


class _PairFunction(nn.Module):
    """g(o_i, o_j, q) for every pair at once: (B, N, H) x (B, H) -> (B, N, N, H).

    The first layer of g on the concatenation [o_i, o_j, q] is the sum of three linear maps,
    computed per node and broadcast over pairs (the same function, N^2 fewer multiplies).
    """

    def __init__(self, hidden_dim: int, layers: int, dropout: float, conditioned: bool) -> None:
        super().__init__()
        self.left, self.right = (
            nn.Linear(hidden_dim, hidden_dim),
            nn.Linear(hidden_dim, hidden_dim, bias=False),
        )
        self.cond = nn.Linear(hidden_dim, hidden_dim, bias=False) if conditioned else None
        self.rest = mlp([hidden_dim] * layers, dropout, last_act=True)
        self.drop = nn.Dropout(dropout)

    def forward(self, h: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        first = self.left(h)[:, :, None, :] + self.right(h)[:, None, :, :]  # (B, N, N, H)
        if self.cond is not None:
            first = first + self.cond(q)[:, None, None, :]
        return self.rest(self.drop(torch.relu(first)))  # (B, N, N, H)


def knn_edges(h: torch.Tensor, valid: torch.Tensor, k: int) -> torch.Tensor:
    """(B, N, H), (B, N) -> (B, N, N) bool: j is one of the k nearest valid nodes of i (self included).

    Ranks come from a double argsort rather than ``topk`` so the graph exports to ONNX with a
    dynamic node count (``k`` may exceed it).
    """
    d = torch.cdist(h, h)  # (B, N, N)
    d = d.masked_fill(~valid[:, None, :], torch.finfo(d.dtype).max)
    rank = d.argsort(dim=-1).argsort(dim=-1)  # (B, N, N): rank of j among i's neighbours
    return (rank < k) & valid[:, None, :]


@register_fusion
class RelationFusion(ReasoningFusion):
    """Relation Networks, Santoro et al. 2017, "A simple neural network module for relational
    reasoning" (https://arxiv.org/abs/1706.01427), with optional message passing over a graph of
    the nodes (Gilmer et al. 2017, "Neural Message Passing for Quantum Chemistry",
    https://arxiv.org/abs/1704.01212).

    Nodes are the tokens of every modality except ``query`` (image patches, objects, frames),
    projected to ``hidden_dim`` with type and position embeddings. First ``graph_layers`` rounds
    of message passing (``graph``: ``full`` or the ``k`` nearest nodes in feature space): each
    node sums question-conditioned messages ``phi(h_i, h_j, q)`` from its neighbours and updates
    itself (residual + LayerNorm). Then the relation step
    ``RN = f([agg_{i,j} g(o_i, o_j, q), q])`` over every pair of valid nodes, ``agg`` = mean
    (default) or sum as in the paper. ``f`` also sees ``q`` so a sample without nodes (its image
    missing) still answers from its question. Output: hidden_dim.

    ``query``: the question modality (null: no question, the relations alone). Masks: padding
    and missing nodes are left out of every pair and every neighbourhood; a sample whose
    question is missing uses a learned ``missing_query`` vector. The cost is O(N^2) in the
    number of nodes.
    """

    name = "relation"

    def __init__(
        self,
        dims: dict[str, int],
        hidden_dim: int = 256,
        query: str | None = "text",
        g_layers: int = 3,
        f_layers: int = 2,
        aggregate: str = "mean",
        graph_layers: int = 0,
        graph: str = "full",
        k: int = 4,
        max_tokens: int = 64,
        dropout: float = 0.0,
    ) -> None:
        super().__init__(
            dims,
            hidden_dim=hidden_dim,
            query=query,
            g_layers=g_layers,
            f_layers=f_layers,
            aggregate=aggregate,
            graph_layers=graph_layers,
            graph=graph,
            k=k,
            max_tokens=max_tokens,
        )
        self.hidden_dim, self.query, self.g_layers, self.f_layers = hidden_dim, query, g_layers, f_layers
        self.aggregate, self.graph_layers, self.graph, self.k = aggregate, graph_layers, graph, k
        self.max_tokens, self.dropout = max_tokens, dropout
        self._init_reasoning(hidden_dim, query, max_tokens)
        self.messages = nn.ModuleList(
            _PairFunction(hidden_dim, 2, dropout, query is not None) for _ in range(graph_layers)
        )
        self.updates = nn.ModuleList(nn.Linear(hidden_dim, hidden_dim) for _ in range(graph_layers))
        self.norms = nn.ModuleList(nn.LayerNorm(hidden_dim) for _ in range(graph_layers))
        self.g = _PairFunction(hidden_dim, g_layers, dropout, query is not None)
        self.f = mlp([(2 if query is not None else 1) * hidden_dim] + [hidden_dim] * f_layers, dropout)
        self.output_dim = hidden_dim

    @classmethod
    def check_dims(
        cls,
        dims: dict[str, int],
        hidden_dim: Any = 256,
        query: Any = "text",
        g_layers: Any = 3,
        f_layers: Any = 2,
        aggregate: Any = "mean",
        graph_layers: Any = 0,
        graph: Any = "full",
        k: Any = 4,
        max_tokens: Any = 64,
        **kwargs: Any,
    ) -> None:
        super().check_dims(dims)
        cls.check_reasoning(dims, query, hidden_dim, max_tokens)
        for field_name, value, low in (("g_layers", g_layers, 1), ("f_layers", f_layers, 1), ("k", k, 1)):
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ValueError(f"relation: {field_name} must be an int >= {low}; got {value!r}")
        if not isinstance(graph_layers, int) or isinstance(graph_layers, bool) or graph_layers < 0:
            raise ValueError(f"relation: graph_layers must be an int >= 0; got {graph_layers!r}")
        if aggregate not in AGGREGATES:
            raise ValueError(f"relation: aggregate must be one of {list(AGGREGATES)}; got {aggregate!r}")
        if graph not in GRAPHS:
            raise ValueError(f"relation: graph must be one of {list(GRAPHS)}; got {graph!r}")

    def forward(
        self, features: dict[str, EncoderOutput], present: dict[str, torch.Tensor] | None = None
    ) -> FusionOutput:
        x = self.question_and_nodes(features, present)
        h, valid, q = x.nodes, x.nodes_mask, x.q  # (B, N, H), (B, N), (B, H)
        for message, update, norm in zip(self.messages, self.updates, self.norms):
            edges = (
                knn_edges(h, valid, self.k) if self.graph == "knn" else valid[:, None, :] & valid[:, :, None]
            )
            w = edges.to(h.dtype)[..., None]  # (B, N, N, 1)
            incoming = (message(h, q) * w).sum(2) / w.sum(2).clamp_min(1.0)  # (B, N, H)
            h = norm(h + update(incoming)).masked_fill(~valid[:, :, None], 0.0)  # (B, N, H)
        pairs = (valid[:, :, None] & valid[:, None, :]).to(h.dtype)[..., None]  # (B, N, N, 1)
        rel = (self.g(h, q) * pairs).sum((1, 2))  # (B, H)
        if self.aggregate == "mean":
            rel = rel / pairs.sum((1, 2)).clamp_min(1.0)
        fused = self.f(torch.cat([rel, q], dim=-1) if self.query is not None else rel)  # (B, H)
        return FusionOutput(fused=fused, aux={"pairs": pairs.sum((1, 2, 3))})
