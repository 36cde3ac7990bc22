"""Held-out metrics of a vision-language pre-trained model.

- `val/match_accuracy`: ITM decisions (p(match) > 0.5) on each sample's true caption and on its
  minimal-pair false twin (chance 0.5), also per value of `group_key` (e.g. relation / attribute);
  `val/match_pair_accuracy`: the true caption scores higher than its twin (chance 0.5), by the
  ITM head, or by contrastive similarity for a model trained without ITM (CLIP-only).
- `val/itc_top1`: in each batch, the text most similar to an image describes that image (one of
  its captions, or the same caption).
- `val/mlm_accuracy`: masked tokens predicted from the masked caption and the image.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Sequence

import torch

from omnifuse.data.decode import decode_value
from omnifuse.data.masked_text import IGNORE_INDEX
from omnifuse.data.processors import first_text
from omnifuse.data.sample import CorruptSampleError, Sample


class VLPretrainEvaluator:
    def __init__(
        self,
        samples: Sequence[Sample],
        batch_size: int = 64,
        max_items: int = 1000,
        group_key: str | None = None,
        seed: int = 4321,
    ):
        self.samples = list(samples)[:max_items]
        self.batch_size = batch_size
        self.group_key = group_key
        self.seed = seed

    def _batches(self, model):
        other = model.other
        for start in range(0, len(self.samples), self.batch_size):
            chunk, values = [], []
            for s in self.samples[start : start + self.batch_size]:
                try:
                    values.append(decode_value(other, s.inputs[other], s.source))
                    chunk.append(s)
                except (CorruptSampleError, KeyError):
                    continue
            if chunk:
                yield start, chunk, values

    @torch.no_grad()
    def __call__(self, model) -> dict[str, float]:
        was_training = model.training
        model.eval()
        device = next(model.parameters()).device
        proc, other, key = model.processor, model.other, model.negative_label
        decisions: dict[str, list[float]] = defaultdict(list)
        pairs: dict[str, list[float]] = defaultdict(list)
        itc_hits = itc_n = mlm_hits = mlm_n = 0
        for start, chunk, values in self._batches(model):
            texts = [first_text(s.inputs["text"]) for s in chunk]
            pix = proc[other](values)
            rngs = [random.Random(self.seed + start + i) for i in range(len(chunk))]
            batch = {**pix, **proc["text"](texts, train=True, rngs=rngs)}
            batch = {k: v.to(device) for k, v in batch.items()}
            out = model.forward({**batch, "mlm_labels": batch["mlm_labels"]})
            emb = out.embeddings
            sim = emb[other] @ emb["text"].T  # (B, B)
            keys = [
                (str(s.inputs[other]), t) for s, t in zip(chunk, texts)
            ]  # a text of the same image counts
            same = torch.tensor([[a[0] == b[0] or a[1] == b[1] for b in keys] for a in keys], device=device)
            itc_hits += int(same[torch.arange(len(chunk)), sim.argmax(1)].sum())
            itc_n += len(chunk)
            if out.mlm_logits is not None:
                where = batch["mlm_labels"] != IGNORE_INDEX
                mlm_hits += int((out.mlm_logits[where].argmax(-1) == batch["mlm_labels"][where]).sum())
                mlm_n += int(where.sum())
            neg_rows = [i for i, s in enumerate(chunk) if s.labels.get(key)]
            if neg_rows:
                neg = proc["text"]([chunk[i].labels[key] for i in neg_rows])
                nb = {k: v.to(device) for k, v in {**{k: v[neg_rows] for k, v in pix.items()}, **neg}.items()}
                if model.loss_weights["itm"]:
                    p_true = model.match_logits(batch).softmax(-1)[:, 1]  # (B,)
                    p_false = model.match_logits(nb).softmax(-1)[:, 1]  # (N,)
                else:  # contrastive only: the twin must be less similar to the image than the caption
                    neg_emb = model.embed({"text": model.encoders["text"](nb)})["text"]  # (N, E)
                    p_true = (emb[other] * emb["text"]).sum(-1)  # (B,)
                    p_false = (emb[other][neg_rows] * neg_emb).sum(-1)  # (N,)
                for j, i in enumerate(neg_rows):
                    group = str(chunk[i].labels.get(self.group_key, "")) if self.group_key else ""
                    if model.loss_weights["itm"]:
                        for g in {"", group}:
                            decisions[g] += [float(p_true[i] > 0.5), float(p_false[j] < 0.5)]
                    pairs[group].append(float(p_true[i] > p_false[j]))
        model.train(was_training)
        metrics = {"val/itc_top1": itc_hits / max(itc_n, 1)}
        if mlm_n:
            metrics["val/mlm_accuracy"] = mlm_hits / mlm_n
        if decisions:
            metrics["val/match_accuracy"] = sum(decisions[""]) / len(decisions[""])
            for g, d in sorted(decisions.items()):
                if g:
                    metrics[f"val/match_accuracy/{g}"] = sum(d) / len(d)
        if pairs:
            every = [x for d in pairs.values() for x in d]
            metrics["val/match_pair_accuracy"] = sum(every) / len(every)
            for g, d in sorted(pairs.items()):
                if g:
                    metrics[f"val/match_pair_accuracy/{g}"] = sum(d) / len(d)
        return metrics

    def score(self, metrics: dict[str, float]) -> float:
        return metrics.get(
            "val/match_accuracy", metrics.get("val/match_pair_accuracy", metrics["val/itc_top1"])
        )
