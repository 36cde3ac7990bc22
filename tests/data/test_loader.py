"""The batch sampler and collator: deterministic, resumable, shardable; corrupt samples skipped."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from omnifuse.data import Collator, CorruptSampleError, CorruptSamplePolicy, EpochBatchSampler, Sample
from omnifuse.data.processors import ImageProcessor, Processor, TextProcessor, build_word_tokenizer


def test_epochs_differ_and_repeat():
    s = EpochBatchSampler(20, 5, seed=1)
    s.set_epoch(0)
    e0 = list(s)
    s.set_epoch(1)
    e1 = list(s)
    s.set_epoch(0)
    assert list(s) == e0 and e0 != e1
    assert sorted(i for b in e0 for i in b) == list(range(20))


def test_resume_position_skips_batches():
    s = EpochBatchSampler(20, 4, seed=3)
    s.set_epoch(2)
    full = list(s)
    s.set_epoch(2, start_batch=3)
    assert list(s) == full[3:] and len(s) == 2


def test_ranks_split_each_global_batch():
    single = EpochBatchSampler(16, 8, seed=0)
    ranks = [EpochBatchSampler(16, 8, seed=0, rank=r, world_size=2) for r in range(2)]
    for s in (single, *ranks):
        s.set_epoch(0)
    for whole, a, b in zip(single, *ranks):
        assert a + b == whole


def test_groups_stay_together():
    s = EpochBatchSampler(20, 4, seed=5, group_size=2)
    s.set_epoch(0)
    for batch in s:
        for i in range(0, 4, 2):
            assert batch[i] % 2 == 0 and batch[i + 1] == batch[i] + 1
    with pytest.raises(ValueError, match="multiple of group_size"):
        EpochBatchSampler(20, 5, group_size=2)
    with pytest.raises(ValueError, match="not divisible by the 3 processes"):
        EpochBatchSampler(20, 4, world_size=3)
    with pytest.raises(ValueError, match="fewer than one batch"):
        EpochBatchSampler(3, 4)


def make_collator(strict=False):
    tok = build_word_tokenizer(["a red circle", "a blue square"])
    proc = Processor({"text": TextProcessor(tok, 8), "image": ImageProcessor(size=8)})
    return Collator(proc, ["image", "text"], train=True, seed=0, policy=CorruptSamplePolicy(strict=strict))


def sample(i, image, text=("a red circle", "a blue square")):
    return Sample({"image": image, "text": list(text)}, meta={"source": f"m.jsonl:{i + 1}"})


def test_collator_skips_and_counts_corrupt_samples():
    good = np.zeros((8, 8, 3), dtype=np.uint8)
    collate = make_collator()
    batch = collate([(0, sample(0, good)), (1, sample(1, b"garbage")), (2, sample(2, good, text=("  ", "")))])
    assert batch["index"].tolist() == [0] and batch["image"].shape == (1, 3, 8, 8)
    assert collate.policy.skipped == 2
    assert "m.jsonl:2" in collate.policy.summary() and "m.jsonl:3" in collate.policy.summary()
    strict = make_collator(strict=True)
    with pytest.raises(CorruptSampleError, match="m.jsonl:2"):
        strict([(0, sample(0, good)), (1, sample(1, b"garbage"))])


def test_caption_choice_depends_on_epoch_and_index_only():
    good = np.zeros((8, 8, 3), dtype=np.uint8)
    items = [(i, sample(i, good)) for i in range(16)]
    a, b = make_collator(), make_collator()
    assert torch.equal(a(items)["text"], b(items)["text"])
    b.epoch = 1
    assert not torch.equal(a(items)["text"], b(items)["text"])
