"""Data splits and batches for compression: evaluation, calibration, fine-tuning."""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence

import torch
from torch import nn
from torch.utils.data import DataLoader

from omnifuse.data.loader import Collator, EpochBatchSampler, SampleDataset
from omnifuse.data.readers import read_samples
from omnifuse.data.sample import CorruptSamplePolicy, DataError, Sample
from omnifuse.models.registry import spec_of

CACHE_LIMIT = 20_000


def read_split(
    spec: str | None, model: nn.Module, what: str, text_column: str = "captions", allow_empty: bool = False
) -> list[Sample] | None:
    """Samples of a manifest / shard dir / image folder, reading the modalities `model` uses.

    An empty split raises a ValueError naming it (`allow_empty` returns [] instead).
    """
    if spec is None:
        return None
    modalities = model.processor.modalities
    columns = {m: (text_column if m == "text" else m) for m in modalities}
    try:
        samples = read_samples(spec, columns=columns, policy=CorruptSamplePolicy(name=f"{what} data"))
    except DataError as err:
        if "has no rows" in str(err) and allow_empty:
            return []
        raise ValueError(f"{what} data {spec}: {err}") from err
    return samples


def _targets(model: nn.Module):
    """Label tensors for kinds whose loss needs them: the spec's `targets(model)`, else None."""
    spec = spec_of(model)
    return spec.targets(model) if spec.targets is not None else None


def _allow_missing(model: nn.Module) -> bool:
    """Kinds that align modalities (`embed`) need every modality of a pair; the others fuse
    what a sample has."""
    return not spec_of(model).can("embed")


def iterate_batches(
    model: nn.Module,
    samples: Sequence[Sample],
    batch_size: int,
    train: bool = False,
    seed: int = 0,
    repeat: bool = False,
) -> Iterator[dict[str, torch.Tensor]]:
    """Processed batches (shuffled and augmented when `train`); `repeat` cycles epochs forever.

    Repeated passes over a split of at most `CACHE_LIMIT` samples keep the decoded files in memory.
    """
    modalities = model.processor.modalities
    dataset = SampleDataset(samples, modalities, _allow_missing(model))
    collator = Collator(
        model.processor, modalities, train=train, seed=seed, targets=_targets(model),
        allow_missing=_allow_missing(model), cache_decoded=repeat and len(samples) <= CACHE_LIMIT,
    )  # fmt: skip
    size = min(batch_size, len(samples))
    sampler = EpochBatchSampler(len(samples), size, seed=seed, shuffle=train, drop_last=train)
    epochs = itertools.count() if repeat else range(1)
    for epoch in epochs:
        sampler.set_epoch(epoch)
        collator.epoch = epoch
        loader = DataLoader(dataset, batch_sampler=sampler, collate_fn=collator, num_workers=0)
        for batch in loader:
            if len(batch["index"]):
                yield {k: v for k, v in batch.items() if k != "index"}


def fixed_batch(model: nn.Module, samples: Sequence[Sample], size: int) -> dict[str, torch.Tensor]:
    """The first `size` samples as one evaluation batch (the speed benchmark's input)."""
    return next(iterate_batches(model, list(samples[:size]), size))
