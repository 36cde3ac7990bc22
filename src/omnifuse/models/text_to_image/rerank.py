"""CLIP reranking (DALL-E's last stage): score each candidate image against its prompt with a
DualEncoder and keep each prompt's candidates best first."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import torch
from PIL import Image
from torch import nn


@torch.no_grad()
def clip_scores(
    clip: nn.Module, prompts: Sequence[str], images: Sequence[Image.Image], batch_size: int = 64
) -> torch.Tensor:
    """CLIP score per (prompt, image) pair: the cosine similarity of their normalised embeddings,
    from the model's own preprocessing and `encode` (its text and image towers). Shape (N,)."""
    if len(prompts) != len(images):
        raise ValueError(f"{len(prompts)} prompts for {len(images)} images; give one prompt per image")
    was = clip.training
    clip.eval()
    device = next(clip.parameters()).device
    scores = []
    try:
        for start in range(0, len(images), batch_size):
            p = list(prompts[start : start + batch_size])
            im = list(images[start : start + batch_size])
            text = {k: v.to(device) for k, v in clip.processor({"text": p}).items()}
            image = {k: v.to(device) for k, v in clip.processor({"image": im}).items()}
            t = clip.encode("text", text)  # (b, E) normalised
            v = clip.encode("image", image)  # (b, E) normalised
            scores.append((t * v).sum(-1).float().cpu())
    finally:
        clip.train(was)
    return torch.cat(scores)


def rerank_by_clip(result, clip: nn.Module):
    """An ImageGenerationOutput with each prompt's `n` images sorted by CLIP score, best first."""
    scores = clip_scores(clip, result.prompts, result.images)
    n = result.n
    order: list[int] = []
    for start in range(0, len(result.images), n):
        block = scores[start : start + n]
        order.extend((start + torch.argsort(block, descending=True, stable=True)).tolist())
    return dataclasses.replace(
        result,
        images=[result.images[i] for i in order],
        codes=result.codes[order],
        prompts=[result.prompts[i] for i in order],
        scores=[float(scores[i]) for i in order],
    )
