"""Memory-augmented fusion: a MAC recurrent reasoning cell (control, read, write) over node tokens."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from omnifuse.encoders.base import EncoderOutput
from omnifuse.fusion._blocks import mlp
from omnifuse.fusion._reasoning import ReasoningFusion
from omnifuse.fusion.base import FusionOutput, masked_softmax, register_fusion


class MACCell(nn.Module):
    """One Memory, Attention and Composition cell (control, read and write units), shared across steps.

    control: c_i = sum_s softmax_s(w_c . (W_c[c_{i-1}, q_i] * cw_s)) cw_s   (attention over question words;
             W_c[c_{i-1}, q_i] itself for a sample without question words)
    read:    I_j = W_I[(W_m m_{i-1}) * (W_k k_j), k_j];  r_i = sum_j softmax_j(w_r . (c_i * I_j)) k_j
    write:   m_i = W_w[r_i, m_{i-1}]
    """

    def __init__(self, hidden_dim: int, dropout: float) -> None:
        super().__init__()
        h = hidden_dim
        self.control_in = nn.Linear(2 * h, h)
        self.control_attn = nn.Linear(h, 1)
        self.mem_proj, self.know_proj = nn.Linear(h, h), nn.Linear(h, h)
        self.interact = nn.Linear(2 * h, h)
        self.read_attn = nn.Linear(h, 1)
        self.write = nn.Linear(2 * h, h)
        self.drop = nn.Dropout(dropout)

    def forward(
        self,
        control: torch.Tensor,
        memory: torch.Tensor,
        q_step: torch.Tensor,
        words: torch.Tensor,
        words_mask: torch.Tensor,
        know: torch.Tensor,
        know_mask: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(B, H) x2, (B, H), (B, L, H), (B, L), (B, N, H), (B, N) -> control, memory, word and node weights."""
        cq = self.control_in(torch.cat([control, q_step], dim=-1))  # (B, H)
        cw = masked_softmax(
            self.control_attn(cq[:, None, :] * words).squeeze(-1), words_mask, dim=-1
        )  # (B, L)
        has_words = words_mask.any(dim=-1, keepdim=True)  # (B, 1): False without question words
        control = torch.where(has_words, (cw[:, :, None] * words).sum(1), cq)  # (B, H)
        inter = self.mem_proj(self.drop(memory))[:, None, :] * self.know_proj(know)  # (B, N, H)
        inter = self.interact(torch.cat([inter, know], dim=-1))  # (B, N, H)
        rw = masked_softmax(
            self.read_attn(control[:, None, :] * inter).squeeze(-1), know_mask, dim=-1
        )  # (B, N)
        read = (rw[:, :, None] * know).sum(1)  # (B, H)
        memory = self.write(torch.cat([read, memory], dim=-1))  # (B, H)
        return control, memory, cw, rw


@register_fusion
class MemoryFusion(ReasoningFusion):
    """MAC network, Hudson & Manning 2018, "Compositional Attention Networks for Machine
    Reasoning" (https://arxiv.org/abs/1803.03067; github.com/stanfordnlp/mac-network).

    A recurrent memory-augmented reasoner: ``steps`` applications of one :class:`MACCell`.
    Each step the control unit attends over the question's words (``query`` modality) to pick
    the step's operation, the read unit attends over the knowledge base (the tokens of every
    other modality, with type and position embeddings) guided by that control and the current
    memory, and the write unit folds what was read into the memory. Output:
    ``f([q, m_steps])`` (hidden_dim), as the paper's classifier input.

    Why MAC rather than an external key-value memory: the shapes world's relation questions
    need several dependent look-ups ("the shape left of the red one"), which a recurrent
    control/read/write cell does step by step, while a single key-value read is one attention
    hop (what ``cross_attention`` already does).

    Masks: padding and missing nodes are never read, missing question words never attended
    (a sample without words takes the projected step question as its control); a sample whose question is missing uses the
    learned ``missing_query`` vector.
    """

    name = "memory"
    uses_words = True

    def __init__(
        self,
        dims: dict[str, int],
        hidden_dim: int = 256,
        query: str | None = "text",
        steps: int = 4,
        f_layers: int = 2,
        max_tokens: int = 64,
        dropout: float = 0.0,
    ) -> None:
        super().__init__(
            dims, hidden_dim=hidden_dim, query=query, steps=steps, f_layers=f_layers, max_tokens=max_tokens
        )
        self.hidden_dim, self.query, self.steps, self.f_layers = hidden_dim, query, steps, f_layers
        self.max_tokens, self.dropout = max_tokens, dropout
        self._init_reasoning(hidden_dim, query, max_tokens)
        self.step_query = nn.ModuleList(nn.Linear(hidden_dim, hidden_dim) for _ in range(steps))
        self.control0 = nn.Parameter(torch.randn(hidden_dim) * 0.02)
        self.memory0 = nn.Parameter(torch.randn(hidden_dim) * 0.02)
        self.cell = MACCell(hidden_dim, dropout)
        self.f = mlp([2 * hidden_dim] + [hidden_dim] * f_layers, dropout)
        self.output_dim = hidden_dim

    @classmethod
    def check_dims(
        cls,
        dims: dict[str, int],
        hidden_dim: Any = 256,
        query: Any = "text",
        steps: Any = 4,
        f_layers: Any = 2,
        max_tokens: Any = 64,
        **kwargs: Any,
    ) -> None:
        super().check_dims(dims)
        if query is None:
            raise ValueError(
                "memory: query must name the question modality (its words drive the control unit); "
                "for reasoning without a question use 'relation' with query null"
            )
        cls.check_reasoning(dims, query, hidden_dim, max_tokens)
        for field_name, value in (("steps", steps), ("f_layers", f_layers)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"memory: {field_name} must be an int >= 1; got {value!r}")

    def forward(
        self, features: dict[str, EncoderOutput], present: dict[str, torch.Tensor] | None = None
    ) -> FusionOutput:
        x = self.question_and_nodes(features, present)
        b = x.q.shape[0]
        control = self.control0.to(x.q.dtype)[None, :].expand(b, -1)  # (B, H)
        memory = self.memory0.to(x.q.dtype)[None, :].expand(b, -1)  # (B, H)
        reads = []
        for step_query in self.step_query:
            control, memory, _, rw = self.cell(
                control, memory, step_query(x.q), x.words, x.words_mask, x.nodes, x.nodes_mask
            )
            reads.append(rw)
        fused = self.f(torch.cat([x.q, memory], dim=-1))  # (B, H)
        return FusionOutput(fused=fused, aux={"read_weights": torch.stack(reads, dim=1)})  # (B, steps, N)
