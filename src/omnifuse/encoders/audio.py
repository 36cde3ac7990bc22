"""Audio towers: the from-scratch AST preset and pretrained HF audio encoders, as `HFEncoder`s.

- From scratch: the Audio Spectrogram Transformer (Gong et al. 2021, "AST: Audio Spectrogram
  Transformer", arXiv:2104.01778), a ViT over 16x16 log-mel patches with CLS and distillation
  tokens: transformers' `ASTModel` built from a preset config (`arch: ast`, tiny/small/base).
- Pretrained, by hub name or local directory: Whisper's encoder (Radford et al. 2022,
  arXiv:2212.04356; log-mel input of exactly `2 * max_source_positions` frames), wav2vec 2.0
  (Baevski et al. 2020, arXiv:2006.11477) and HuBERT (Hsu et al. 2021, arXiv:2106.07447) on raw
  waveforms, and CLAP's audio tower (Wu et al. 2023, arXiv:2211.06687; HTS-AT Swin on log-mels).

The batch layout each family takes is in `omnifuse.encoders.hf.AUDIO_ADAPTERS`;
`audio_settings_for` gives the processor settings a tower needs, so a recipe cannot pair a
tower with features of the wrong shape.
"""

from __future__ import annotations

from typing import Any

from omnifuse.data.audio import AudioSettings
from omnifuse.encoders.hf import HFEncoder, load_hf_encoder
from omnifuse.encoders.presets import build_scratch_encoder

#: HF audio classes that take raw waveforms, not spectrograms.
WAVEFORM_MODELS = ("Wav2Vec2Model", "HubertModel", "WavLMModel", "Data2VecAudioModel")


def build_ast(
    preset: str = "tiny", n_mels: int = 64, max_frames: int = 400, pooling: str = "mean", **overrides: Any
) -> HFEncoder:
    """A randomly initialised AST over (B, n_mels, max_frames) log-mels; `overrides` set config fields."""
    return build_scratch_encoder(
        "ast", preset, pooling, num_mel_bins=n_mels, max_length=max_frames, **overrides
    )


def load_audio_encoder(name_or_path: str, pooling: str = "mean") -> HFEncoder:
    """A pretrained audio encoder by hub name or local directory (Whisper / CLAP keep their audio tower)."""
    return load_hf_encoder(name_or_path, "audio", pooling)


def audio_settings_for(encoder: HFEncoder, **kwargs: Any) -> AudioSettings:
    """Processor settings matching an audio tower's input (features, mel bins, frame count).

    `kwargs` set other fields (e.g. `sample_rate`, `mean`, `std`); fields the tower fixes win.
    """
    if encoder.modality != "audio":
        raise ValueError(f"audio_settings_for needs an audio tower, got a {encoder.modality} tower")
    name = type(encoder.model).__name__
    cfg = encoder.model.config
    settings = dict(kwargs)
    if name in WAVEFORM_MODELS:
        settings["features"] = "waveform"
    elif name == "ASTModel":
        hop = settings.get("hop_length", 160)
        rate = settings.get("sample_rate", 16_000)
        settings.update(n_mels=cfg.num_mel_bins, max_seconds=cfg.max_length * hop / rate)
    elif name == "WhisperEncoder":
        # Whisper takes exactly 2 * max_source_positions frames (30 s for the released models).
        hop = settings.get("hop_length", 160)
        rate = settings.get("sample_rate", 16_000)
        settings.update(
            n_mels=cfg.num_mel_bins, max_seconds=2 * cfg.max_source_positions * hop / rate, pad_to_max=True
        )
    elif name == "ClapAudioModel":
        settings["n_mels"] = cfg.num_mel_bins
    return AudioSettings(**settings)
