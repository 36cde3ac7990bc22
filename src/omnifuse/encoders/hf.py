"""Adapters over HF transformers models: any text or vision model becomes an `Encoder`.

The adapter maps the batch dict to the model's keyword arguments, pools the token
features (`cls`, `mean` or the model's own `pooler`) and records the HF class and config,
so an artifact can rebuild the tower without the hub.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any

import torch
import transformers
from transformers import PretrainedConfig, PreTrainedModel

from omnifuse.encoders.base import Encoder, EncoderOutput
from omnifuse.encoders.registry import register_encoder_kind
from omnifuse.encoders.stems import apply_stem
from omnifuse.utils.paths import resolve_model_path

POOLINGS = ("cls", "mean", "pooler")


def _text_kwargs(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    kwargs = {"input_ids": batch["text"]}
    if "text_mask" in batch:
        kwargs["attention_mask"] = batch["text_mask"]
    return kwargs


def _image_kwargs(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {"pixel_values": batch["image"]}


#: modality -> function building the HF model's keyword arguments from a batch.
def _video_kwargs(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {"pixel_values": batch["video"]}  # (B, F, 3, H, W), as VideoMAE / ViViT / TimeSformer take it


INPUT_ADAPTERS = {"text": _text_kwargs, "image": _image_kwargs, "video": _video_kwargs}


# ---- audio: the processed batch holds "audio" (B, n_mels, T) log-mel or (B, S) waveforms ----------
def _audio_features_kwargs(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {"input_features": batch["audio"]}  # (B, M, T): Whisper, Speech2Text layout


def _ast_kwargs(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {"input_values": batch["audio"].transpose(1, 2)}  # (B, T, M)


def _clap_kwargs(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {"input_features": batch["audio"].transpose(1, 2).unsqueeze(1)}  # (B, 1, T, M)


def _waveform_kwargs(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    if batch["audio"].dim() != 2:
        raise ValueError(
            f"this audio model takes raw waveforms (B, S), got {tuple(batch['audio'].shape)}; "
            "set processor.audio.features: waveform"
        )
    return {"input_values": batch["audio"]}  # (B, S)


INPUT_ADAPTERS["audio"] = _audio_features_kwargs

#: HF audio model class -> its keyword arguments (default for other audio classes: `input_features`).
AUDIO_ADAPTERS = {
    "ASTModel": _ast_kwargs,
    "ClapAudioModel": _clap_kwargs,
    "WhisperEncoder": _audio_features_kwargs,
    "Wav2Vec2Model": _waveform_kwargs,
    "HubertModel": _waveform_kwargs,
    "WavLMModel": _waveform_kwargs,
    "Data2VecAudioModel": _waveform_kwargs,
}

#: Tower classes that live inside a transformers model module but are not exported at the top level.
SUBMODULE_CLASSES = {"WhisperEncoder": "transformers.models.whisper.modeling_whisper"}


def audio_tower(model: PreTrainedModel) -> PreTrainedModel:
    """The audio encoder of a joint checkpoint: Whisper's encoder, CLAP's audio model; else the model."""
    if type(model).__name__ in ("WhisperModel", "WhisperForConditionalGeneration"):
        return model.get_encoder()
    if hasattr(model, "audio_model") and isinstance(model.audio_model, PreTrainedModel):
        return model.audio_model  # ClapModel -> ClapAudioModel
    return model


def hf_model_class(name: str) -> type[PreTrainedModel]:
    """Look up a model class in `transformers` by name (never remote code)."""
    cls = getattr(transformers, name, None)
    if cls is None and name in SUBMODULE_CLASSES:
        cls = getattr(importlib.import_module(SUBMODULE_CLASSES[name]), name)
    if not (inspect.isclass(cls) and issubclass(cls, PreTrainedModel)):
        raise ValueError(f"'{name}' is not a transformers model class")
    return cls


def accepts_pooling_flag(cls: type) -> bool:
    return "add_pooling_layer" in inspect.signature(cls.__init__).parameters


@register_encoder_kind("hf")
class HFEncoder(Encoder):
    """Wraps an HF `PreTrainedModel` as an `Encoder` for one modality.

    pooling: "cls" (first token), "mean" (masked mean over tokens) or "pooler" (the
    model's own `pooler_output`: CLIP's EOS token / post-layernorm CLS, SigLIP's head).
    """

    def __init__(self, model: PreTrainedModel, modality: str, pooling: str = "cls", stem: str = "patch"):
        super().__init__()
        if modality not in INPUT_ADAPTERS:
            raise ValueError(
                f"no HF input adapter for modality '{modality}'; known: {sorted(INPUT_ADAPTERS)}"
            )
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got '{pooling}'")
        apply_stem(model, stem)
        self.model = model
        self.modality = modality
        self.pooling = pooling
        self.stem = stem
        cfg = model.config
        self.hidden_size = int(getattr(cfg, "hidden_size", None) or cfg.d_model)

    def _run(self, batch: dict[str, torch.Tensor], **kwargs):
        adapter = INPUT_ADAPTERS[self.modality]
        if self.modality == "audio":
            adapter = AUDIO_ADAPTERS.get(type(self.model).__name__, adapter)
        return self.model(**adapter(batch), return_dict=True, **kwargs)

    def layer_tokens(self, batch: dict[str, torch.Tensor], layer: int) -> torch.Tensor:
        """(B, T, D) token features after transformer layer `layer` (Python indexing over the
        embeddings and each layer's output: -1 the last layer, -2 the one before, as LLaVA reads
        its CLIP tower). A contrastive tower trains only its pooled token at the last layer;
        earlier layers keep what each patch shows."""
        states = self._run(batch, output_hidden_states=True).hidden_states
        if states is None or not -len(states) <= layer < len(states):
            raise ValueError(
                f"layer {layer}: {type(self.model).__name__} has {len(states or ())} hidden states "
                "(the embeddings and each layer)"
            )
        return states[layer]

    def forward(self, batch: dict[str, torch.Tensor]) -> EncoderOutput:
        out = self._run(batch)
        tokens = out.last_hidden_state  # (B, T, D)
        if tokens.dim() == 4:  # CLAP's audio Swin returns a feature map (B, D, H, W)
            tokens = tokens.flatten(2).transpose(1, 2)  # (B, H*W, D)
        if self.modality == "text" and "text_mask" in batch:
            mask = batch["text_mask"].to(tokens.dtype)  # (B, T)
        else:
            mask = tokens.new_ones(tokens.shape[:2])  # (B, T)
        if self.pooling == "cls":
            pooled = tokens[:, 0]
        elif self.pooling == "mean":
            pooled = (tokens * mask.unsqueeze(-1)).sum(1) / mask.sum(1, keepdim=True).clamp_min(1.0)
        else:
            pooled = getattr(out, "pooler_output", None)
            if pooled is None:
                raise ValueError(
                    f"{type(self.model).__name__} has no pooler output; use pooling 'cls' or 'mean'"
                )
        return EncoderOutput(tokens=tokens, mask=mask, pooled=pooled)  # pooled: (B, D)

    def to_config(self) -> dict[str, Any]:
        cfg = {
            "type": "hf",
            "modality": self.modality,
            "pooling": self.pooling,
            "hf_class": type(self.model).__name__,
            "hf_config": self.model.config.to_dict(),
            "stem": self.stem,
        }
        if accepts_pooling_flag(type(self.model)):
            cfg["add_pooling_layer"] = getattr(self.model, "pooler", None) is not None
        return cfg

    @classmethod
    def from_config(cls, cfg: dict[str, Any]) -> HFEncoder:
        """Rebuild the architecture (random weights) from `to_config()` output: no hub access."""
        model_cls = hf_model_class(cfg["hf_class"])
        hf_config = dict(cfg["hf_config"])
        config: PretrainedConfig = model_cls.config_class.from_dict(hf_config)
        model = instantiate(model_cls, config, cfg.get("add_pooling_layer"))
        return cls(model, cfg["modality"], cfg["pooling"], cfg.get("stem", "patch"))


def instantiate(
    model_cls: type[PreTrainedModel], config: PretrainedConfig, add_pooling_layer: bool | None
) -> PreTrainedModel:
    kwargs = {}
    if add_pooling_layer is not None and accepts_pooling_flag(model_cls):
        kwargs["add_pooling_layer"] = add_pooling_layer
    config._attn_implementation = "sdpa" if getattr(model_cls, "_supports_sdpa", False) else "eager"
    return model_cls(config, **kwargs)


def load_hf_encoder(name_or_path: str, modality: str, pooling: str = "cls", **kwargs: Any) -> HFEncoder:
    """Load pretrained weights by hub name or local directory (`AutoModel`).

    For a joint checkpoint (e.g. a CLIP model) pass the tower class yourself, or use
    `omnifuse.models.DualEncoder.from_hf`.
    """
    from transformers import AutoConfig, AutoModel
    from transformers.models.auto.modeling_auto import MODEL_MAPPING

    name_or_path = resolve_model_path(name_or_path)
    config = AutoConfig.from_pretrained(name_or_path)
    model_cls = MODEL_MAPPING[type(config)]
    # An unused pooler would be a parameter without gradient, which DDP refuses.
    if pooling != "pooler" and accepts_pooling_flag(model_cls):
        kwargs.setdefault("add_pooling_layer", False)
    model = AutoModel.from_pretrained(name_or_path, **kwargs)
    if modality == "audio":  # a Whisper or CLAP checkpoint: keep the audio encoder only
        model = audio_tower(model)
    return HFEncoder(model, modality, pooling)
