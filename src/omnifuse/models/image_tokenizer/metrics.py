"""Reconstruction and codebook metrics of an image tokenizer."""

from __future__ import annotations

import torch


def code_usage(codes: torch.Tensor, codebook_size: int) -> dict[str, float]:
    """Perplexity of the code histogram (exp of its entropy) and the share of codes used."""
    counts = torch.bincount(codes.flatten(), minlength=codebook_size).double()
    p = counts / counts.sum().clamp_min(1)
    entropy = -(p[p > 0] * p[p > 0].log()).sum()
    return {"perplexity": float(entropy.exp()), "code_usage": float((counts > 0).double().mean())}


def psnr(recon: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """PSNR in dB per image, pixels in [0, 1]: 10 log10(1 / MSE)."""
    mse = (recon.clamp(0, 1) - target).pow(2).flatten(1).mean(1).clamp_min(1e-10)
    return 10 * torch.log10(1.0 / mse)
