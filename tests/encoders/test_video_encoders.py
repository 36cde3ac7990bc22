"""Video encoders: per-frame ViT + temporal pooling / transformer, HF VideoMAE and per-frame HF towers."""

from __future__ import annotations

import pytest
import torch
import transformers

from omnifuse.encoders.factory import TowerConfig, build_encoder
from omnifuse.encoders.hf import HFEncoder
from omnifuse.encoders.registry import encoder_from_config
from omnifuse.encoders.video import VideoEncoder, build_frame_vit, load_hf_video_encoder

TINY_VIT = {"hidden_size": 32, "intermediate_size": 64, "patch_size": 8, "num_hidden_layers": 1}
DATA = {"image_size": 16, "num_frames": 4}


def clip_batch(b: int = 2, f: int = 4, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    mask = torch.ones(b, f, dtype=torch.long)
    mask[1, 2:] = 0  # the second clip has 2 real frames
    video = torch.randn(b, f, 3, 16, 16, generator=g) * mask.view(b, f, 1, 1, 1)
    return {"video": video, "video_mask": mask}


def tiny_video_encoder(temporal: str) -> VideoEncoder:
    torch.manual_seed(0)
    return build_frame_vit(temporal=temporal, image_size=16, num_frames=4, **TINY_VIT).eval()


@pytest.mark.parametrize("temporal", ["mean", "transformer"])
def test_frame_encoder_shapes_and_masking(temporal):
    enc = tiny_video_encoder(temporal)
    batch = clip_batch()
    out = enc(batch)
    assert out.tokens.shape == (2, 4, 32) and out.mask.shape == (2, 4) and out.pooled.shape == (2, 32)
    assert out.mask.tolist() == batch["video_mask"].tolist()
    noisy = {**batch, "video": batch["video"].clone()}
    noisy["video"][1, 2:] = 7.0  # garbage in padded frames changes nothing
    torch.testing.assert_close(enc(noisy).pooled, out.pooled)
    alone = enc({"video": batch["video"][1:, :2], "video_mask": batch["video_mask"][1:, :2]})
    torch.testing.assert_close(alone.pooled, out.pooled[1:], atol=1e-5, rtol=1e-5)


def test_mean_pooling_is_order_blind_and_the_transformer_is_not():
    batch = clip_batch()
    reverse = {"video": batch["video"][:1].flip(1), "video_mask": batch["video_mask"][:1]}
    first = {"video": batch["video"][:1], "video_mask": batch["video_mask"][:1]}
    mean, trans = tiny_video_encoder("mean"), tiny_video_encoder("transformer")
    torch.testing.assert_close(mean(reverse).pooled, mean(first).pooled, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(trans(reverse).pooled, trans(first).pooled, atol=1e-4)


def test_gradients_reach_frame_and_temporal_parameters():
    enc = tiny_video_encoder("transformer").train()
    enc(clip_batch()).pooled.sum().backward()
    assert enc.temporal_position.grad is not None and enc.temporal_position.grad.abs().sum() > 0
    assert all(p.grad is not None for p in enc.frame_encoder.parameters() if p.requires_grad)


@pytest.mark.parametrize("temporal", ["mean", "transformer"])
def test_config_round_trip_rebuilds_the_same_encoder(temporal):
    enc = tiny_video_encoder(temporal)
    cfg = enc.to_config()
    assert cfg["type"] == "video" and cfg["frame_encoder"]["type"] == "hf"
    again = encoder_from_config(cfg).eval()
    again.load_state_dict(enc.state_dict())
    torch.testing.assert_close(again(clip_batch()).pooled, enc(clip_batch()).pooled)


def test_build_encoder_from_tower_config():
    cfg = TowerConfig(arch="frame_vit", temporal="mean", overrides=TINY_VIT)
    enc = build_encoder(cfg, "video", DATA)
    assert isinstance(enc, VideoEncoder) and enc.temporal == "mean" and enc.max_frames == 4
    assert enc.frame_encoder.model.config.image_size == 16
    with pytest.raises(ValueError, match="encodes image, not video"):
        build_encoder(TowerConfig(arch="vit"), "video", DATA)
    with pytest.raises(ValueError, match="at most 4"):
        enc({"video": torch.zeros(1, 5, 3, 16, 16)})
    frozen = build_encoder(
        TowerConfig(arch="frame_vit", trainable_layers=0, overrides=TINY_VIT), "video", DATA
    )
    assert not any(p.requires_grad for p in frozen.parameters())


def tiny_videomae_config() -> transformers.VideoMAEConfig:
    return transformers.VideoMAEConfig(
        image_size=16,
        patch_size=8,
        num_frames=4,
        tubelet_size=2,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
    )


def test_videomae_adapter_from_local_dir(tmp_path):
    torch.manual_seed(0)
    hf = transformers.VideoMAEModel(tiny_videomae_config()).eval()
    hf.save_pretrained(tmp_path / "videomae")
    enc = load_hf_video_encoder(str(tmp_path / "videomae"), pooling="mean").eval()
    assert isinstance(enc, HFEncoder) and enc.modality == "video"
    batch = clip_batch()
    out = enc(batch)
    assert out.tokens.shape == (2, 2 * 2 * 2, 32) and out.pooled.shape == (2, 32)  # (F/2) x 2 x 2 tubelets
    with torch.no_grad():
        ref = hf(pixel_values=batch["video"]).last_hidden_state.mean(1)
    torch.testing.assert_close(out.pooled, ref)
    tower = build_encoder(
        TowerConfig(source="hf", name_or_path=str(tmp_path / "videomae"), pooling="mean"), "video"
    )
    assert isinstance(tower, HFEncoder)
    with pytest.raises(ValueError, match="no CLS token"):
        load_hf_video_encoder(str(tmp_path / "videomae"), pooling="cls")


def test_videomae_from_scratch_preset():
    cfg = TowerConfig(arch="videomae", pooling="mean", overrides={k: v for k, v in TINY_VIT.items()})
    enc = build_encoder(cfg, "video", DATA)
    assert enc.model.config.num_frames == 4 and enc.model.config.image_size == 16
    assert enc(clip_batch()).pooled.shape == (2, 32)
    assert isinstance(encoder_from_config(enc.to_config()), HFEncoder)


def test_hf_image_tower_applied_per_frame(tmp_path):
    vit = transformers.ViTModel(transformers.ViTConfig(image_size=16, **TINY_VIT, num_attention_heads=2))
    vit.save_pretrained(tmp_path / "vit")
    enc = load_hf_video_encoder(str(tmp_path / "vit"), pooling="cls", temporal="mean", max_frames=4)
    assert isinstance(enc, VideoEncoder) and enc.frame_encoder.modality == "image"
    assert enc.eval()(clip_batch()).tokens.shape == (2, 4, 32)
