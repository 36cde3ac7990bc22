"""From samples to batches: a resumable, shardable batch sampler and a processing collator.

Every random choice during loading derives from (seed, epoch, sample index): the order of an
epoch, the caption picked for a sample, its augmentation. So the data seen after a resume,
with any number of workers or processes, is exactly the data an uninterrupted run sees.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from omnifuse.data.decode import decode_value
from omnifuse.data.processors import Processor
from omnifuse.data.sample import CorruptSampleError, CorruptSamplePolicy, Sample


class SampleDataset(Dataset):
    """A list of samples restricted to the modalities a model uses.

    With `allow_missing`, a sample needs only one of the modalities (fusion models that
    predict from whatever is present); otherwise it needs all of them.
    """

    def __init__(self, samples: Sequence[Sample], modalities: Sequence[str], allow_missing: bool = False):
        self.samples = list(samples)
        self.modalities = sorted(modalities)
        if not self.samples:
            raise ValueError("the dataset is empty")
        wanted = set(self.modalities)
        if allow_missing:
            lacking = [s.source for s in self.samples[:1000] if not wanted & set(s.inputs)]
        else:
            lacking = [s.source for s in self.samples[:1000] if not wanted <= set(s.inputs)]
        if lacking:
            raise ValueError(f"samples lack modalities {self.modalities}; first: {lacking[:3]}")

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[int, Sample]:
        return index, self.samples[index]


class EpochBatchSampler(Sampler[list[int]]):
    """Global batches from a seeded permutation per epoch; each process takes its contiguous slice.

    `group_size` > 1 shuffles blocks of that many consecutive samples and keeps each block
    together (e.g. minimal pairs that serve as each other's hard negatives).
    `set_epoch(epoch, start_batch)` positions the sampler; resuming at batch k of an epoch
    skips the first k batches without loading them.
    """

    def __init__(
        self,
        n: int,
        batch_size: int,
        seed: int = 0,
        shuffle: bool = True,
        drop_last: bool = True,
        rank: int = 0,
        world_size: int = 1,
        group_size: int = 1,
    ):
        if group_size < 1 or batch_size % group_size:
            raise ValueError(f"batch_size {batch_size} must be a multiple of group_size {group_size}")
        if batch_size % world_size:
            raise ValueError(f"batch_size {batch_size} is not divisible by the {world_size} processes")
        if drop_last and n < batch_size:
            raise ValueError(f"{n} samples are fewer than one batch of {batch_size}")
        self.n, self.batch_size, self.seed, self.shuffle = n, batch_size, seed, shuffle
        self.drop_last, self.rank, self.world_size = drop_last, rank, world_size
        self.group_size = group_size
        self.epoch, self.start_batch = 0, 0

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        self.epoch, self.start_batch = epoch, start_batch

    def batches_per_epoch(self) -> int:
        n = self.n - self.n % self.group_size if self.shuffle else self.n
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __len__(self) -> int:
        return self.batches_per_epoch() - self.start_batch

    def __iter__(self) -> Iterator[list[int]]:
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
            k = self.group_size
            groups = torch.randperm(self.n // k, generator=g).tolist()
            order = [gi * k + j for gi in groups for j in range(k)]  # a ragged tail group is dropped
        else:
            order = list(range(self.n))
        per_rank = self.batch_size // self.world_size
        for b in range(self.start_batch, self.batches_per_epoch()):
            batch = order[b * self.batch_size : (b + 1) * self.batch_size]
            yield batch[self.rank * per_rank : (self.rank + 1) * per_rank]


class Collator:
    """Decodes raw values (skipping corrupt samples under the policy) and runs the processor.

    `cache_decoded` keeps decoded values in memory (per worker process), for datasets that fit.
    `targets` turns the kept samples into label tensors (classifiers). With `allow_missing`,
    a sample may lack some modalities: each modality is processed for the samples that have
    it and scattered into a batch-sized tensor, and `<modality>_present` (B,) marks the rows
    that are real (the others are masked placeholders, see `scatter_rows`).
    """

    def __init__(
        self,
        processor: Processor,
        modalities: Sequence[str],
        train: bool = False,
        seed: int = 0,
        policy: CorruptSamplePolicy | None = None,
        cache_decoded: bool = False,
        targets: Callable[[Sequence[Sample]], dict[str, torch.Tensor]] | None = None,
        allow_missing: bool = False,
    ):
        self.processor = processor
        self.targets = targets
        self.allow_missing = allow_missing
        self.modalities = sorted(modalities)
        self.train = train
        self.seed = seed
        self.epoch = 0
        self.policy = policy or CorruptSamplePolicy()
        # index -> decoded values; a small dataset then decodes each file once, not every epoch.
        self.cache: dict[int, dict[str, Any] | None] | None = {} if cache_decoded else None

    def _decode(self, index: int, sample: Sample) -> dict[str, Any] | None:
        if self.cache is not None and index in self.cache:
            return self.cache[index]
        try:
            decoded = {
                m: decode_value(m, sample.inputs[m], sample.source)
                for m in self.modalities
                if m in sample.inputs or not self.allow_missing
            }
        except CorruptSampleError as err:
            self.policy.report(sample.source, str(err))
            decoded = None
        if self.cache is not None:
            self.cache[index] = decoded
        return decoded

    def __call__(self, items: Sequence[tuple[int, Sample]]) -> dict[str, torch.Tensor]:
        kept, samples, decoded_rows = [], [], []
        for index, sample in items:
            decoded = self._decode(index, sample)
            if decoded is not None:
                kept.append(index)
                samples.append(sample)
                decoded_rows.append(decoded)
        if not kept:
            return {"index": torch.empty(0, dtype=torch.long)}
        rngs = [random.Random(hash((self.seed, self.epoch, i))) for i in kept] if self.train else None
        if self.allow_missing:
            batch = self._process_with_missing(decoded_rows, rngs)
        else:
            values = {m: [d[m] for d in decoded_rows] for m in self.modalities}
            batch = self.processor(values, train=self.train, rngs=rngs)
        if self.targets is not None:
            batch.update(self.targets(samples))
        batch["index"] = torch.tensor(kept)  # (B,) positions in the dataset
        return batch

    def _process_with_missing(
        self, decoded_rows: list[dict[str, Any]], rngs: list[random.Random] | None
    ) -> dict[str, torch.Tensor]:
        batch: dict[str, torch.Tensor] = {}
        n = len(decoded_rows)
        for m in self.modalities:
            rows = [i for i, d in enumerate(decoded_rows) if m in d]
            if not rows:
                continue  # absent for the whole batch: the model skips this encoder
            sub_rngs = [rngs[i] for i in rows] if rngs else None
            processed = self.processor(
                {m: [decoded_rows[i][m] for i in rows]}, train=self.train, rngs=sub_rngs
            )
            present = torch.zeros(n, dtype=torch.bool)
            present[rows] = True
            batch.update(scatter_rows(processed, torch.tensor(rows), n))
            batch[f"{m}_present"] = present  # (B,)
        return batch


def scatter_rows(processed: dict[str, torch.Tensor], rows: torch.Tensor, n: int) -> dict[str, torch.Tensor]:
    """Place a sub-batch's tensors at `rows` of batch-sized zero tensors.

    Placeholder rows are zeros, except that a `*_mask` keeps its first position on, so an
    encoder never sees a fully masked sequence (all-masked attention gives NaN, and NaN times
    a zero weight is still NaN). Models must ignore these rows through `<modality>_present`.
    """
    out = {}
    for key, value in processed.items():
        full = value.new_zeros((n, *value.shape[1:]))
        if key.endswith("_mask"):
            full[:, 0] = 1
        full[rows] = value
        out[key] = full
    return out


def eval_loader(
    samples: Sequence[Sample],
    processor: Processor,
    modalities: Sequence[str],
    batch_size: int = 256,
    policy: CorruptSamplePolicy | None = None,
    num_workers: int = 0,
    allow_missing: bool = False,
) -> DataLoader:
    """Sequential batches for evaluation and embedding; corrupt samples are skipped and counted."""
    dataset = SampleDataset(samples, modalities, allow_missing)
    sampler = EpochBatchSampler(len(dataset), batch_size, shuffle=False, drop_last=False)
    return DataLoader(
        dataset,
        batch_sampler=sampler,
        collate_fn=Collator(processor, modalities, train=False, policy=policy, allow_missing=allow_missing),
        num_workers=num_workers,
    )
