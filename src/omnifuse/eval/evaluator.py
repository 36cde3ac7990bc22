"""Evaluate a DualEncoder on samples: retrieval both ways, zero-shot accuracy, linear probe."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch

from omnifuse.data.loader import eval_loader
from omnifuse.data.processors import first_text
from omnifuse.data.sample import CorruptSamplePolicy, Sample
from omnifuse.eval.base import Evaluator
from omnifuse.eval.linear_probe import linear_probe
from omnifuse.eval.metrics import bidirectional_retrieval, topk_accuracy
from omnifuse.eval.registry import register_evaluator
from omnifuse.losses import no_gather
from omnifuse.models.dual_encoder import DualEncoder
from omnifuse.models.zero_shot import ZeroShotClassifier


def eval_batches(
    model: torch.nn.Module,
    samples: Sequence[Sample],
    modalities: Sequence[str],
    batch_size: int = 256,
    policy: CorruptSamplePolicy | None = None,
    allow_missing: bool = False,
) -> Iterator[tuple[dict[str, torch.Tensor], list[int]]]:
    """Processed batches of the readable samples and their indices, with the model in eval mode
    (restored afterwards). Callers run under `torch.no_grad()`."""
    was_training = model.training
    model.eval()
    try:
        for batch in eval_loader(
            samples, model.processor, modalities, batch_size, policy, allow_missing=allow_missing
        ):
            index = batch.pop("index")
            if len(index):
                yield batch, index.tolist()
    finally:
        model.train(was_training)


@torch.no_grad()
def embed_samples(
    model: DualEncoder,
    samples: Sequence[Sample],
    modalities: Sequence[str],
    batch_size: int = 256,
    policy: CorruptSamplePolicy | None = None,
) -> tuple[dict[str, torch.Tensor], list[int]]:
    """Embeddings (N, E) per modality for the readable samples, and their indices."""
    chunks: dict[str, list[torch.Tensor]] = {m: [] for m in modalities}
    kept: list[int] = []
    for batch, index in eval_batches(model, samples, modalities, batch_size, policy):
        kept.extend(index)
        for m in modalities:
            chunks[m].append(model.encode(m, batch))
    return {m: torch.cat(c) for m, c in chunks.items()}, kept


def same_text_targets(
    samples: Sequence[Sample], kept: Sequence[int], modality: str = "text"
) -> list[list[int]]:
    """For each kept item, every kept item whose (first) text is identical: all are correct.

    Two scenes can share a caption ("a small red circle on the left" twice, differing only by a
    few pixels of jitter); both images are then right answers for it, and the reverse too.
    """
    rows: dict[str, list[int]] = {}
    texts = [first_text(samples[i].inputs[modality]) for i in kept]
    for row, text in enumerate(texts):
        rows.setdefault(text, []).append(row)
    return [rows[text] for text in texts]


@register_evaluator("retrieval")
@dataclass
class DualEncoderEvaluator(Evaluator):
    """Metrics on a fixed evaluation set; called by the trainer every `eval_every` steps.

    Retrieval pairs each item's first text (the canonical caption) with its other modality;
    items with identical texts count as correct for each other (see `same_text_targets`).
    Zero-shot accuracy uses `labels[label_key]` as the class, optionally only on samples whose
    `meta["n_objects"] == 1`, and reports the `meta["heldout"]` subset separately.
    """

    samples: Sequence[Sample]
    pair: tuple[str, str] = ("text", "image")
    batch_size: int = 256
    max_items: int = 1000
    label_key: str | None = None
    class_names: list[str] | None = None
    templates: list[str] | None = None
    """Zero-shot prompt templates; None: the model's own (`zero_shot_templates` in its config)."""
    only_single_object: bool = False
    prefix: str = "val/"

    @classmethod
    def from_config(cls, config, samples, model, prefix: str = "val/") -> DualEncoderEvaluator:
        """Retrieval between the text tower (first, if any) and the next modality; zero-shot on
        `config.label_key` when set."""
        return cls(
            samples,
            pair=tuple(sorted(model.modalities, key=lambda m: m != "text")[:2]),
            batch_size=config.batch_size,
            max_items=config.max_items,
            label_key=config.label_key,
            class_names=config.class_names,
            templates=config.templates,
            only_single_object=config.only_single_object,
            prefix=prefix,
        )

    def retrieval(self, model: DualEncoder) -> dict[str, float]:
        subset = list(self.samples[: self.max_items])
        emb, kept = embed_samples(model, subset, self.pair, self.batch_size)
        a, b = self.pair
        metrics = bidirectional_retrieval(
            emb[a], emb[b], a, b, a_to_b_targets=same_text_targets(subset, kept, a)
        )
        with torch.no_grad(), no_gather():  # this runs on the main process only
            metrics["loss"] = float(model.loss_fn(emb[a], emb[b], model.scale(), model.logit_bias))
        metrics["n_pairs"] = float(len(emb[a]))
        return metrics

    def zero_shot_samples(self) -> list[Sample]:
        chosen = [s for s in self.samples if self.label_key in s.labels]
        if self.only_single_object:
            chosen = [s for s in chosen if s.meta.get("n_objects") == 1]
        return chosen

    def zero_shot(self, model: DualEncoder) -> dict[str, float]:
        samples = self.zero_shot_samples()
        if not samples:
            return {}
        classes = self.class_names or sorted({str(s.labels[self.label_key]) for s in samples})
        index = {c: i for i, c in enumerate(classes)}
        samples = [s for s in samples if str(s.labels[self.label_key]) in index]
        image_modality = self.pair[1]
        emb, kept = embed_samples(model, samples, [image_modality], self.batch_size)
        logits = ZeroShotClassifier(model, classes, self.templates, self.pair[0]).logits(emb[image_modality])
        targets = torch.tensor([index[str(samples[i].labels[self.label_key])] for i in kept])
        metrics = {f"zero_shot/{k}": v for k, v in topk_accuracy(logits, targets).items()}
        metrics["zero_shot/n"] = float(len(kept))
        heldout = torch.tensor([bool(samples[i].meta.get("heldout")) for i in kept])
        if heldout.any():  # combinations never seen in training, and the others, apart
            for name, rows in (("heldout", heldout), ("seen", ~heldout)):
                if rows.any():
                    acc = topk_accuracy(logits[rows], targets[rows])
                    metrics.update({f"zero_shot/{name}_{k}": v for k, v in acc.items()})
                    metrics[f"zero_shot/{name}_n"] = float(rows.sum())
        return metrics

    def evaluate(self, model: DualEncoder) -> tuple[dict[str, float], dict]:
        metrics = self.retrieval(model)
        if self.label_key:
            metrics.update(self.zero_shot(model))
        return metrics, {}


def linear_probe_eval(
    model: DualEncoder,
    train: Sequence[Sample],
    test: Sequence[Sample],
    label_key: str,
    modality: str = "image",
    batch_size: int = 256,
) -> dict[str, float]:
    """Logistic regression on frozen `modality` embeddings, predicting `labels[label_key]`."""
    train = [s for s in train if label_key in s.labels]
    test = [s for s in test if label_key in s.labels]
    tr, tr_idx = embed_samples(model, train, [modality], batch_size)
    te, te_idx = embed_samples(model, test, [modality], batch_size)
    ytr = [str(train[i].labels[label_key]) for i in tr_idx]
    yte = [str(test[i].labels[label_key]) for i in te_idx]
    classes = {c: i for i, c in enumerate(sorted(set(ytr) | set(yte)))}
    return linear_probe(
        tr[modality].numpy(), [classes[y] for y in ytr], te[modality].numpy(), [classes[y] for y in yte]
    )
