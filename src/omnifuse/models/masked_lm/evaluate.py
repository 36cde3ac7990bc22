"""Held-out metrics of a masked language model, each beside its baseline.

- `mlm_accuracy`: share of masked positions whose top prediction is the original token;
  baseline `mlm_accuracy_unigram`: always predicting the most frequent training token.
- `perplexity`: exp of the mean masked-token cross-entropy; baseline `perplexity_unigram`:
  the same for the training unigram distribution (add-one smoothed).
- `nsp_accuracy` (with NSP); baseline `nsp_accuracy_chance`: 0.5.

Masks are drawn with a fixed seed, so every evaluation of a run sees the same masked positions.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from omnifuse.data.masked_text import IGNORE_INDEX
from omnifuse.data.sample import Sample


class MaskedLMEvaluator:
    def __init__(
        self, samples: Sequence[Sample], batch_size: int = 64, max_items: int = 1000, seed: int = 1234
    ):
        self.samples = list(samples)[:max_items]
        self.batch_size = batch_size
        self.seed = seed

    @torch.no_grad()
    def __call__(self, model) -> dict[str, float]:
        was_training = model.training
        model.eval()
        proc = model.processor["text"]
        device = next(model.parameters()).device
        counts = model.token_counts
        vocab = len(proc.tokenizer)
        if counts is None or len(counts) != vocab:  # a loaded artifact: no training counts
            counts = torch.zeros(vocab)
        log_unigram = torch.log((counts + 1.0) / (counts.sum() + vocab))  # (V,)
        top_unigram = int(counts.argmax())
        n = correct = correct_unigram = 0
        nll = nll_unigram = 0.0
        nsp_n = nsp_correct = 0
        for start in range(0, len(self.samples), self.batch_size):
            chunk = self.samples[start : start + self.batch_size]
            rngs = [random.Random(self.seed + start + i) for i in range(len(chunk))]
            batch = proc([s.inputs["text"] for s in chunk], train=True, rngs=rngs)
            batch = {k: v.to(device) for k, v in batch.items()}
            out = model(batch)
            labels = batch["mlm_labels"]  # (B, T)
            where = labels != IGNORE_INDEX
            targets = labels[where]  # (N,)
            logits = out.mlm_logits[where].float()  # (N, V)
            n += int(targets.numel())
            correct += int((logits.argmax(-1) == targets).sum())
            correct_unigram += int((targets == top_unigram).sum())
            nll += float(F.cross_entropy(logits, targets, reduction="sum"))
            nll_unigram += float(-log_unigram.to(device)[targets].sum())
            if out.nsp_logits is not None and all("nsp" in s.labels for s in chunk):
                truth = torch.tensor([int(s.labels["nsp"]) for s in chunk], device=device)
                nsp_n += len(chunk)
                nsp_correct += int((out.nsp_logits.argmax(-1) == truth).sum())
        model.train(was_training)
        metrics = {
            "val/mlm_accuracy": correct / max(n, 1),
            "val/mlm_accuracy_unigram": correct_unigram / max(n, 1),
            "val/perplexity": math.exp(min(nll / max(n, 1), 50.0)),
            "val/perplexity_unigram": math.exp(min(nll_unigram / max(n, 1), 50.0)),
            "val/masked_tokens": float(n),
        }
        if nsp_n:
            metrics["val/nsp_accuracy"] = nsp_correct / nsp_n
            metrics["val/nsp_accuracy_chance"] = 0.5
        return metrics

    def score(self, metrics: dict[str, float]) -> float:
        return metrics["val/mlm_accuracy"]
