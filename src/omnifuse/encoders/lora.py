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

# Query/value projection names across HF families (the paper adapts W_q and W_v): BERT-style
# `query`/`value` (older transformers), `q_proj`/`v_proj` (CLIP, SigLIP, Whisper, wav2vec2, and
# BERT/ViT in transformers 5), T5-style `q`/`v`, DistilBERT's `q_lin`/`v_lin`.
QUERY_VALUE_NAMES: tuple[tuple[str, str], ...] = (
    ("q_proj", "v_proj"),
    ("query", "value"),
    ("q", "v"),
    ("q_lin", "v_lin"),
)


@dataclass
class LoraSettings:
    """LoRA adapters on an encoder's attention projections."""

    r: int = 8
    """Rank of the update."""
    alpha: float = 16.0
    """Scale: the update is multiplied by alpha / r."""
    dropout: float = 0.0
    """Dropout on the adapter's input."""
    target_modules: list[str] | None = None
    """Linear layer names to adapt; default: the family's query/value projections."""
    encoders: list[str] = field(default_factory=list)
    """Modalities whose encoder gets adapters; empty: every encoder."""

    def __post_init__(self) -> None:
        if self.r <= 0:
            raise ValueError(f"lora.r must be positive; got {self.r}")


def lora_targets(model: nn.Module) -> list[str]:
    """The model's query and value projection layer names, found among its Linear layers."""
    linear_names = {name.rsplit(".", 1)[-1] for name, m in model.named_modules() if isinstance(m, nn.Linear)}
    for pair in QUERY_VALUE_NAMES:
        if set(pair) <= linear_names:
            return list(pair)
    raise ValueError(
        f"cannot find query/value projections in {type(model).__name__} (Linear layers: {sorted(linear_names)}); "
        "set lora.target_modules"
    )


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
    encoder.lora_settings = {**asdict(settings), "target_modules": targets, "encoders": []}
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
