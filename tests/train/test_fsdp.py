"""FSDP2 helpers without processes: which blocks become their own unit, when to shard, and the
plain copy the main process keeps (its captioner hooks must point at the copy, not the original)."""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import pytest
import torch

from omnifuse.train.fsdp import fsdp_requested, shardable_blocks

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "models" / "captioner"))
from conftest import image, tiny_captioner  # noqa: E402


def test_blocks_are_found_generically():
    torch.manual_seed(0)
    model = tiny_captioner("xattn")
    names = sorted({type(m).__name__ for m in shardable_blocks(model)})
    # the image tower's layers, the LM's blocks and the gated cross-attention blocks
    assert "GatedCrossAttentionBlock" in names and "GPT2Block" in names
    assert any(n.endswith("Layer") for n in names), names
    blocks = shardable_blocks(model)
    assert len(blocks) == len({id(b) for b in blocks})
    position = {id(m): i for i, m in enumerate(reversed(list(model.modules())))}
    assert [position[id(b)] for b in blocks] == sorted(position[id(b)] for b in blocks)  # innermost first


def test_when_to_shard(monkeypatch):
    monkeypatch.delenv("ACCELERATE_USE_FSDP", raising=False)
    assert not fsdp_requested("fsdp", "MULTI_CPU", 1)  # one process: nothing to shard
    assert fsdp_requested("fsdp", "MULTI_CPU", 2)
    assert not fsdp_requested("auto", "MULTI_CPU", 2)
    assert fsdp_requested("auto", "FSDP", 2)
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")  # `accelerate launch` with an FSDP config
    assert fsdp_requested("auto", "MULTI_CPU", 2)
    assert not fsdp_requested("ddp", "MULTI_CPU", 2)


@pytest.mark.parametrize("connector", ["xattn", "prefix"])
def test_plain_copy_is_conditioned_by_its_own_weights(connector):
    torch.manual_seed(0)
    model = tiny_captioner(connector).eval()
    plain = copy.deepcopy(model)
    batch = model.processor({"image": [image(0)], "text": ["<image> a red circle"]})
    with torch.no_grad():
        assert torch.equal(model(batch).logits, plain(batch).logits)
        for name, p in plain.named_parameters():  # the copy's connector conditions the copy
            if not name.startswith(("lm.", "vision.")):
                p.add_(0.5)
        assert not torch.equal(model(batch).logits, plain(batch).logits)
