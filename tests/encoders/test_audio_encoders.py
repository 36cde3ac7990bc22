"""Audio towers: the AST preset and HF audio adapters (Whisper, wav2vec2, HuBERT, CLAP) on tiny configs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import transformers

from omnifuse.data.audio import AudioProcessor
from omnifuse.encoders import build_encoder
from omnifuse.encoders.audio import audio_settings_for, build_ast, load_audio_encoder
from omnifuse.encoders.config import TowerConfig
from omnifuse.encoders.hf import HFEncoder
from omnifuse.encoders.registry import encoder_from_config

SR = 16_000


def clips(n: int = 2, seconds: float = 0.5) -> list[tuple[np.ndarray, int]]:
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * SR)) / SR
    return [
        (
            (np.sin(2 * np.pi * (300 + 200 * i) * t) + 0.01 * rng.standard_normal(len(t))).astype(np.float32),
            SR,
        )
        for i in range(n)
    ]


def check_output(encoder: HFEncoder, batch: dict[str, torch.Tensor], n: int = 2) -> None:
    out = encoder(batch)
    assert out.pooled.shape == (n, encoder.hidden_size)
    assert out.tokens.dim() == 3 and out.tokens.shape[0] == n and out.tokens.shape[2] == encoder.hidden_size
    assert out.mask.shape == out.tokens.shape[:2]
    assert torch.isfinite(out.pooled).all()


def roundtrip(encoder: HFEncoder, batch: dict[str, torch.Tensor]) -> None:
    """Rebuild from to_config (no hub), load the weights, get identical outputs."""
    rebuilt = encoder_from_config(encoder.to_config())
    rebuilt.load_state_dict(encoder.state_dict())
    encoder.eval(), rebuilt.eval()
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(batch).pooled, encoder(batch).pooled)


def test_ast_preset_from_tower_config_with_processor_sizes():
    proc = AudioProcessor(n_mels=32, max_seconds=0.64)  # 64 frames
    cfg = TowerConfig(arch="ast", pooling="mean", overrides={"hidden_size": 32, "intermediate_size": 64})
    encoder = build_encoder(cfg, "audio", {"num_mel_bins": 32, "max_length": proc.settings.max_frames})
    assert type(encoder.model).__name__ == "ASTModel"
    batch = proc(clips())
    assert batch["audio"].shape == (2, 32, 64) and batch["audio_mask"].shape == (2, 64)
    check_output(encoder, batch)
    assert encoder(batch).tokens.shape[1] == 2 + 2 * 4  # CLS + distillation + (32/16) x (64/16) patches
    roundtrip(encoder, batch)
    with pytest.raises(ValueError, match="encodes audio, not text"):
        build_encoder(cfg, "text")


def test_ast_settings_match_the_tower():
    encoder = build_ast("tiny", n_mels=32, max_frames=48, hidden_size=32, intermediate_size=64)
    settings = audio_settings_for(encoder)
    assert settings.n_mels == 32 and settings.max_frames == 48


def test_whisper_encoder_from_a_local_checkpoint(tmp_path):
    config = transformers.WhisperConfig(
        d_model=32, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2, decoder_attention_heads=2,
        encoder_ffn_dim=64, decoder_ffn_dim=64, num_mel_bins=16, max_source_positions=25, max_target_positions=8,
        vocab_size=64, pad_token_id=0, bos_token_id=1, eos_token_id=2, decoder_start_token_id=1,
    )  # fmt: skip
    transformers.WhisperModel(config).save_pretrained(tmp_path / "whisper")
    encoder = load_audio_encoder(str(tmp_path / "whisper"))
    assert type(encoder.model).__name__ == "WhisperEncoder"
    settings = audio_settings_for(encoder)
    assert settings.n_mels == 16 and settings.max_frames == 50  # exactly 2 x max_source_positions
    batch = AudioProcessor(settings)(clips())
    check_output(encoder, batch)
    roundtrip(encoder, batch)


@pytest.mark.parametrize("family", ["wav2vec2", "hubert"])
def test_waveform_models_from_local_checkpoints(tmp_path, family):
    sizes = dict(
        hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
        conv_dim=(16, 16), conv_stride=(5, 2), conv_kernel=(10, 3), num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2, vocab_size=8,
    )  # fmt: skip
    if family == "wav2vec2":
        model = transformers.Wav2Vec2Model(transformers.Wav2Vec2Config(**sizes))
    else:
        model = transformers.HubertModel(transformers.HubertConfig(**sizes))
    model.save_pretrained(tmp_path / family)
    encoder = load_audio_encoder(str(tmp_path / family))
    settings = audio_settings_for(encoder, max_seconds=0.5)
    assert settings.features == "waveform"
    batch = AudioProcessor(settings)(clips())
    assert batch["audio"].shape == (2, SR // 2)
    check_output(encoder, batch)
    roundtrip(encoder, batch)
    with pytest.raises(ValueError, match="features: waveform"):
        encoder(AudioProcessor(n_mels=16, max_seconds=0.5)(clips()))


def test_clap_audio_tower_from_a_joint_checkpoint(tmp_path):
    audio = dict(
        spec_size=64, num_mel_bins=32, patch_embeds_hidden_size=16, depths=[1, 1], num_attention_heads=[2, 2],
        hidden_size=32, window_size=4, projection_dim=16,
    )  # fmt: skip
    text = dict(
        vocab_size=64, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32
    )
    config = transformers.ClapConfig(text_config=text, audio_config=audio, projection_dim=16)
    transformers.ClapModel(config).save_pretrained(tmp_path / "clap")
    encoder = load_audio_encoder(str(tmp_path / "clap"))
    assert type(encoder.model).__name__ == "ClapAudioModel"
    settings = audio_settings_for(encoder, max_seconds=1.0)
    assert settings.n_mels == 32
    batch = AudioProcessor(settings)(clips())
    check_output(encoder, batch)
    roundtrip(encoder, batch)
