"""LoRA on any tower through PEFT, with the attention projections to target chosen per family.

LoRA: Hu et al. 2021, "LoRA: Low-Rank Adaptation of Large Language Models", arXiv:2106.09685.
Adapters are injected in place (`peft.inject_adapter_in_model`), so the encoder keeps its
type and its state-dict keys are predictable: an artifact records the LoRA settings and the
loader re-injects them before loading weights.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from torch import nn

from omnifuse._optional import require

# HF `config.model_type` -> Linear layers to adapt (query and value projections, as in the paper).
LORA_TARGETS: dict[str, list[str]] = {
    "bert": ["query", "value"],
    "roberta": ["query", "value"],
    "vit": ["query", "value"],
    "audio-spectrogram-transformer": ["query", "value"],
    "videomae": ["query", "value"],
    "clip_text_model": ["q_proj", "v_proj"],
    "clip_vision_model": ["q_proj", "v_proj"],
    "siglip_text_model": ["q_proj", "v_proj"],
    "siglip_vision_model": ["q_proj", "v_proj"],
    "whisper": ["q_proj", "v_proj"],
    "wav2vec2": ["q_proj", "v_proj"],
    "hubert": ["q_proj", "v_proj"],
}


@dataclass
class LoraSettings:
    r: int = 8
    """Rank of the update."""
    alpha: float = 16.0
    """Scale: the update is multiplied by alpha / r."""
    dropout: float = 0.0
    target_modules: list[str] | None = None
    """Linear layer names to adapt; default: the family's query/value projections."""
    towers: list[str] = field(default_factory=list)
    """Modalities whose encoder gets adapters; empty: every encoder."""

    def __post_init__(self) -> None:
        if self.r <= 0:
            raise ValueError(f"lora.r must be positive; got {self.r}")


def lora_targets(model: nn.Module) -> list[str]:
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    if model_type not in LORA_TARGETS:
        raise ValueError(
            f"no default LoRA targets for model type '{model_type}'; set lora.target_modules "
            f"(known families: {sorted(LORA_TARGETS)})"
        )
    return LORA_TARGETS[model_type]


def apply_lora(encoder: nn.Module, settings: LoraSettings) -> nn.Module:
    """Freeze the encoder and inject trainable LoRA adapters into its HF model (in place)."""
    peft = require("peft", "finetune")
    model = getattr(encoder, "model", encoder)
    targets = settings.target_modules or lora_targets(model)
    for p in encoder.parameters():
        p.requires_grad_(False)
    config = peft.LoraConfig(
        r=settings.r, lora_alpha=settings.alpha, lora_dropout=settings.dropout, target_modules=targets
    )
    peft.inject_adapter_in_model(config, model)  # new lora_A / lora_B params are trainable
    encoder.lora_settings = {**asdict(settings), "target_modules": targets, "towers": []}
    return encoder


def merge_lora(encoder: nn.Module) -> nn.Module:
    """Fold the adapters into the base weights (for export or serving), removing LoRA layers."""
    from peft.tuners.lora import LoraLayer

    model = getattr(encoder, "model", encoder)
    for name, module in list(model.named_modules()):
        if isinstance(module, LoraLayer):
            module.merge()
            parent_name, _, child = name.rpartition(".")
            parent = model.get_submodule(parent_name) if parent_name else model
            setattr(parent, child, module.get_base_layer())
    if hasattr(encoder, "lora_settings"):
        del encoder.lora_settings
    return encoder
