"""Flamingo's blocks: Perceiver resampler, masked cross-attention, tanh-gated block; LLaVA's projector.

Flamingo: Alayrac et al. 2022, "Flamingo: a Visual Language Model for Few-Shot Learning",
arXiv:2204.14198 (section 2.1 and appendix A.1). The Perceiver resampler follows Jaegle et al.
2021 (arXiv:2103.03206). The prefix projector follows LLaVA-1.5 (Liu et al. 2023, arXiv:2310.03744).
"""

from __future__ import annotations

import torch
from torch import nn


def feed_forward(dim: int, mult: int) -> nn.Sequential:
    return nn.Sequential(
        nn.LayerNorm(dim),
        nn.Linear(dim, dim * mult, bias=False),
        nn.GELU(),
        nn.Linear(dim * mult, dim, bias=False),
    )


def split_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """(..., N, H*d) -> (..., H, N, d)."""
    *lead, n, hd = x.shape
    return x.view(*lead, n, heads, hd // heads).transpose(-3, -2)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """(..., H, N, d) -> (..., N, H*d)."""
    x = x.transpose(-3, -2)
    return x.reshape(*x.shape[:-2], -1)


class PerceiverAttention(nn.Module):
    """Latents attend to the concatenation [media tokens; latents] (keys and values from both)."""

    def __init__(self, dim: int, heads: int, head_dim: int):
        super().__init__()
        self.heads, self.scale = heads, head_dim**-0.5
        inner = heads * head_dim
        self.norm_media = nn.LayerNorm(dim)
        self.norm_latents = nn.LayerNorm(dim)
        self.to_q = nn.Linear(dim, inner, bias=False)
        self.to_kv = nn.Linear(dim, 2 * inner, bias=False)
        self.to_out = nn.Linear(inner, dim, bias=False)

    def forward(self, media: torch.Tensor, latents: torch.Tensor) -> torch.Tensor:
        media = self.norm_media(media)  # (B, P, D)
        latents = self.norm_latents(latents)  # (B, L, D)
        q = split_heads(self.to_q(latents), self.heads)  # (B, H, L, d)
        k, v = self.to_kv(torch.cat([media, latents], dim=1)).chunk(2, dim=-1)  # (B, P+L, H*d) x2
        k, v = split_heads(k, self.heads), split_heads(v, self.heads)  # (B, H, P+L, d)
        attn = (q @ k.transpose(-1, -2) * self.scale).softmax(dim=-1)  # (B, H, L, P+L)
        return self.to_out(merge_heads(attn @ v))  # (B, L, D)


class PerceiverResampler(nn.Module):
    """A variable number of image tokens -> `num_latents` tokens per image.

    Learned latents cross-attend to the image's tokens (plus a learned embedding of the image's
    position in the sequence, up to `max_images`), `depth` times, each followed by an MLP.
    """

    def __init__(
        self, dim: int, depth: int, heads: int, head_dim: int, num_latents: int, max_images: int, ff_mult: int
    ):
        super().__init__()
        self.latents = nn.Parameter(torch.randn(num_latents, dim) * dim**-0.5)
        self.media_pos = nn.Parameter(torch.zeros(max_images, 1, dim))
        self.layers = nn.ModuleList(
            nn.ModuleList([PerceiverAttention(dim, heads, head_dim), feed_forward(dim, ff_mult)])
            for _ in range(depth)
        )
        self.norm = nn.LayerNorm(dim)

    def resample(self, tokens: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """(V, P, D) tokens of V images at sequence positions (V,) -> (V, L, D) latents."""
        if positions.numel() and int(positions.max()) >= self.media_pos.shape[0]:
            raise ValueError(
                f"{int(positions.max()) + 1} images in one sequence; the model allows at most "
                f"{self.media_pos.shape[0]} (max_images)"
            )
        x = tokens + self.media_pos[positions]  # (V, P, D)
        latents = self.latents.expand(tokens.shape[0], -1, -1)  # (V, L, D)
        for attn, ff in self.layers:
            latents = latents + attn(x, latents)
            latents = latents + ff(latents)
        return self.norm(latents)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, N, P, D) tokens of N images per sequence -> (B, N, L, D) latents."""
        b, n, p, d = tokens.shape
        positions = torch.arange(n, device=tokens.device).repeat(b)
        return self.resample(tokens.reshape(b * n, p, d), positions).view(b, n, -1, d)


def text_to_media(text_time: torch.Tensor, n_images: int, only_immediate: bool) -> torch.Tensor:
    """Which image each text token may attend to: (B, T) image counts -> (B, T, N) boolean.

    `text_time[b, t]` is the number of `<image>` tokens at or before position t (1-based index of
    the most recent image; 0: no image yet).
    """
    media_time = torch.arange(1, n_images + 1, device=text_time.device)  # (N,)
    if only_immediate:
        return text_time.unsqueeze(-1) == media_time  # (B, T, N)
    return text_time.unsqueeze(-1) >= media_time


class MaskedCrossAttention(nn.Module):
    """Text tokens (queries) attend to the latents of the image(s) they may see (keys/values).

    A token with no image before it attends to nothing: its output is exactly zero.
    """

    def __init__(self, dim: int, dim_visual: int, heads: int, head_dim: int, only_immediate: bool = True):
        super().__init__()
        self.heads, self.scale, self.only_immediate = heads, head_dim**-0.5, only_immediate
        inner = heads * head_dim
        self.norm = nn.LayerNorm(dim)
        self.to_q = nn.Linear(dim, inner, bias=False)
        self.to_kv = nn.Linear(dim_visual, 2 * inner, bias=False)
        self.to_out = nn.Linear(inner, dim, bias=False)

    def attention(
        self, x: torch.Tensor, media: torch.Tensor, text_time: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(output (B, T, D), attention weights (B, H, T, N*L))."""
        b, n, latents, _ = media.shape
        q = split_heads(self.to_q(self.norm(x)), self.heads)  # (B, H, T, d)
        k, v = self.to_kv(media.reshape(b, n * latents, -1)).chunk(2, dim=-1)  # (B, N*L, H*d) x2
        k, v = split_heads(k, self.heads), split_heads(v, self.heads)  # (B, H, N*L, d)
        scores = q @ k.transpose(-1, -2) * self.scale  # (B, H, T, N*L)
        allowed = text_to_media(text_time, n, self.only_immediate)  # (B, T, N)
        allowed = allowed.repeat_interleave(latents, dim=-1).unsqueeze(1)  # (B, 1, T, N*L)
        scores = scores.masked_fill(~allowed, torch.finfo(scores.dtype).min)
        attn = scores.softmax(dim=-1)
        attn = attn.masked_fill(~allowed.any(-1, keepdim=True), 0.0)  # tokens before any image
        return self.to_out(merge_heads(attn @ v)), attn  # (B, T, D)

    def forward(self, x: torch.Tensor, media: torch.Tensor, text_time: torch.Tensor) -> torch.Tensor:
        return self.attention(x, media, text_time)[0]


class GatedCrossAttentionBlock(nn.Module):
    """x + tanh(s a) * xattn(x, media); then x + tanh(s b) * ffw(x). a = b = 0 at initialisation.

    `gate_scale` s multiplies the gates' effective learning rate (Adam moves a and b by about the
    learning rate per step) without changing the zero start.
    """

    def __init__(
        self,
        dim: int,
        dim_visual: int,
        heads: int,
        head_dim: int,
        ff_mult: int,
        only_immediate: bool = True,
        gate_scale: float = 1.0,
    ):
        super().__init__()
        self.gate_scale = gate_scale
        self.attn = MaskedCrossAttention(dim, dim_visual, heads, head_dim, only_immediate)
        self.attn_gate = nn.Parameter(torch.zeros(1))
        self.ff = feed_forward(dim, ff_mult)
        self.ff_gate = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor, media: torch.Tensor, text_time: torch.Tensor) -> torch.Tensor:
        x = x + (self.gate_scale * self.attn_gate).tanh() * self.attn(x, media, text_time)  # (B, T, D)
        return x + (self.gate_scale * self.ff_gate).tanh() * self.ff(x)


class PrefixProjector(nn.Module):
    """LLaVA-1.5's two-layer MLP from visual width to the LM's embedding width."""

    def __init__(self, dim_visual: int, dim: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim_visual, dim), nn.GELU(), nn.Linear(dim, dim))

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        return self.net(latents)  # (B, N, L, Dv) -> (B, N, L, D)
