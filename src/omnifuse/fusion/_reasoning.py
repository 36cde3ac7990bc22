"""What the reasoning fusions (``relation``, ``memory``) share: a question and a set of nodes.

One modality (``query``, default ``text``) is the question; the tokens of every other modality
are the nodes (objects, patches, frames) reasoned over. The question is both a vector
(``q``, from its pooled output and its masked-mean tokens) and its projected words (for
attention). A sample whose question is missing gets the learned ``missing_query`` vector;
missing or padded nodes are masked. Pooled-only node inputs (no token sequence) are an error:
there is nothing to relate.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from omnifuse.encoders.base import EncoderOutput
from omnifuse.fusion._blocks import NodeEmbedding
from omnifuse.fusion.base import Fusion, masked_mean


@dataclass
class QuestionAndNodes:
    """q (B, H) question vector; words (B, L, H) and words_mask (B, L) (L=1, masked, when
    there is no query modality or the strategy does not use words); nodes (B, N, H) and nodes_mask (B, N) bool."""

    q: torch.Tensor
    words: torch.Tensor
    words_mask: torch.Tensor
    nodes: torch.Tensor
    nodes_mask: torch.Tensor


class ReasoningFusion(Fusion):
    """Base of the fusions that reason over node tokens guided by a question modality."""

    needs_tokens = True
    missing_only_params = ("missing_query",)
    uses_words: bool = False
    """Whether the strategy attends over the question's words (else only the question vector ``q``)."""

    def _init_reasoning(self, hidden_dim: int, query: str | None, max_tokens: int) -> None:
        self.node_modalities = [m for m in self.modalities if m != query]
        node_dims = {m: self.dims[m] for m in self.node_modalities}
        self.nodes = NodeEmbedding(node_dims, hidden_dim, max_tokens)
        if query is not None:
            d = self.dims[query]
            if self.uses_words:
                self.query_words = nn.Linear(d, hidden_dim)
            self.query_vec = nn.Sequential(
                nn.Linear(2 * d, hidden_dim), nn.ReLU(), nn.Linear(hidden_dim, hidden_dim)
            )
            self.missing_query = nn.Parameter(torch.randn(hidden_dim) * 0.02)

    @classmethod
    def check_reasoning(cls, dims: dict[str, int], query: Any, hidden_dim: Any, max_tokens: Any) -> None:
        """Checks shared by the reasoning fusions (call after ``Fusion.check_dims``)."""
        if query is not None and query not in dims:
            raise ValueError(
                f"{cls.name}: query={query!r} is not one of the fused modalities {sorted(dims)}; "
                f"set query to one of them (the question) or to null (no question)"
            )
        if query is not None and len(dims) < 2:
            raise ValueError(
                f"{cls.name}: with query={query!r} it needs at least one other modality to reason over; "
                f"got only {sorted(dims)}"
            )
        for field_name, value in (("hidden_dim", hidden_dim), ("max_tokens", max_tokens)):
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"{cls.name}: {field_name} must be a positive int; got {value!r}")

    def question_and_nodes(
        self, features: dict[str, EncoderOutput], present: dict[str, torch.Tensor] | None
    ) -> QuestionAndNodes:
        pooled_only = [m for m in self.node_modalities if m in features and features[m].tokens is None]
        if pooled_only:
            raise ValueError(
                f"fusion '{self.name}' reasons over token sequences (B, T, D) but {pooled_only} gave only "
                f"pooled vectors; use encoders that return tokens, or a pooled strategy such as 'concat'"
            )
        inputs = self.gather_inputs(features, present)
        nodes, nodes_mask = self.nodes(
            {m: inputs[m].tokens for m in self.node_modalities},
            {m: inputs[m].mask for m in self.node_modalities},
            self.name,
        )  # (B, N, H), (B, N)
        query = self.query
        if query is None:
            b, h = nodes.shape[0], nodes.shape[-1]
            q = nodes.new_zeros(b, h)  # (B, H)
            return QuestionAndNodes(q, q[:, None, :], torch.zeros_like(nodes_mask[:, :1]), nodes, nodes_mask)
        x = inputs[query]
        q = self.query_vec(torch.cat([x.pooled, masked_mean(x.tokens, x.mask, dim=1)], dim=-1))  # (B, H)
        q = torch.where(x.present[:, None], q, self.missing_query.to(q.dtype)[None, :])
        if not self.uses_words:
            return QuestionAndNodes(q, q[:, None, :], torch.zeros_like(x.present[:, None]), nodes, nodes_mask)
        return QuestionAndNodes(q, self.query_words(x.tokens), x.mask, nodes, nodes_mask)  # words (B, L, H)
