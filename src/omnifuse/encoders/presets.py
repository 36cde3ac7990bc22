"""From-scratch encoder presets: small HF configs with random initialisation.

Architecture only; sizes that depend on the data (vocabulary, sequence length, image size)
come from the processor at build time.
"""

from __future__ import annotations

from typing import Any

import transformers

from omnifuse.encoders.hf import HFEncoder, instantiate

# name -> (hidden, layers, heads, mlp)
_SIZES = {
    "tiny": (64, 2, 2, 128),
    "small": (256, 4, 4, 1024),
    "base": (768, 12, 12, 3072),
}

# arch -> (modality, HF config class, HF model class, architecture defaults)
_ARCH_TABLE: dict[str, tuple[str, str, str, dict[str, Any]]] = {
    "bert": (
        "text",
        "BertConfig",
        "BertModel",
        {
            "vocab_size": 30522,
            "max_position_embeddings": 64,
            "type_vocab_size": 1,
            "hidden_dropout_prob": 0.0,
            "attention_probs_dropout_prob": 0.0,
        },
    ),
    "vit": (
        "image",
        "ViTConfig",
        "ViTModel",
        {
            "image_size": 224,
            "patch_size": 16,
            "num_channels": 3,
            "qkv_bias": True,
            "hidden_dropout_prob": 0.0,
            "attention_probs_dropout_prob": 0.0,
        },
    ),
    # CLIP's own towers (pre-LN, causal text): what HF's CLIPModel is made of.
    "clip_text": (
        "text",
        "CLIPTextConfig",
        "CLIPTextModel",
        {"vocab_size": 49408, "max_position_embeddings": 77},
    ),
    "clip_vision": ("image", "CLIPVisionConfig", "CLIPVisionModel", {"image_size": 224, "patch_size": 32}),
    # VideoMAE's encoder (Tong et al. 2022): tubelet patches over the whole clip; pool with "mean".
    "videomae": (
        "video",
        "VideoMAEConfig",
        "VideoMAEModel",
        {
            "image_size": 224,
            "patch_size": 16,
            "num_frames": 16,
            "tubelet_size": 2,
            "hidden_dropout_prob": 0.0,
            "attention_probs_dropout_prob": 0.0,
        },
    ),
    # Audio Spectrogram Transformer (Gong et al. 2021, arXiv:2104.01778): a ViT over log-mel
    # patches (+ CLS and distillation tokens). Non-overlapping 16x16 patches by default (the
    # paper overlaps them with stride 10: set frequency_stride / time_stride to 10, ~6x the tokens).
    # num_mel_bins and max_length (frames) come from the audio processor.
    "ast": (
        "audio",
        "ASTConfig",
        "ASTModel",
        {
            "num_mel_bins": 64,
            "max_length": 400,
            "patch_size": 16,
            "frequency_stride": 16,
            "time_stride": 16,
            "hidden_dropout_prob": 0.0,
            "attention_probs_dropout_prob": 0.0,
        },
    ),
}

ARCHS = {arch: row[0] for arch, row in _ARCH_TABLE.items()}
ARCHS["frame_vit"] = "video"  # a ViT per frame + temporal model: omnifuse.encoders.video.build_frame_vit


def preset_config(arch: str, preset: str, **overrides: Any):
    """The HF config of a preset; `overrides` set any config field (e.g. `patch_size=8`)."""
    if arch not in ARCHS:
        raise ValueError(f"unknown from-scratch architecture '{arch}'; known: {sorted(ARCHS)}")
    if preset not in _SIZES:
        raise ValueError(f"unknown preset '{preset}'; known: {sorted(_SIZES)}")
    hidden, layers, heads, mlp = _SIZES[preset]
    arch = "vit" if arch == "frame_vit" else arch  # a frame_vit's config is its per-frame ViT's
    _, config_name, _, defaults = _ARCH_TABLE[arch]
    sizes = dict(
        hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads, intermediate_size=mlp
    )
    return getattr(transformers, config_name)(**{**sizes, **defaults, **overrides})


def build_scratch_encoder(
    arch: str, preset: str = "tiny", pooling: str = "cls", stem: str = "patch", **overrides: Any
) -> HFEncoder:
    """A randomly initialised tower; `stem="conv"` gives a ViT a convolutional stem."""
    config = preset_config(arch, preset, **overrides)
    model_cls = getattr(transformers, _ARCH_TABLE[arch][2])
    model = instantiate(model_cls, config, add_pooling_layer=pooling == "pooler")
    return HFEncoder(model, ARCHS[arch], pooling, stem)
