"""What fusion models share: encoding the modalities present, and encoders in an artifact.

Used by `FusionClassifier` and `MultiTaskModel`, which both run one encoder per modality on
whatever the batch holds and hand the features (with `<modality>_present` masks) to a fusion
module, and both save their encoders (with any LoRA adapters) in config.json.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from omnifuse.encoders.base import Encoder, EncoderOutput
from omnifuse.encoders.lora import LoraSettings, apply_lora
from omnifuse.encoders.registry import encoder_from_config
from omnifuse.fusion import Fusion


def encode_modalities(
    encoders: nn.ModuleDict, batch: dict[str, torch.Tensor], pooled_only: bool = False
) -> tuple[dict[str, EncoderOutput], dict[str, torch.Tensor]]:
    """Run the encoder of every modality in the batch; `present` (B,) bool per modality.

    `pooled_only` hands the fusion one vector per item (tokens dropped), e.g. to compare
    token-level fusion with pooled fusion over the same encoders.
    """
    features, present = {}, {}
    for m, encoder in encoders.items():
        if m not in batch:
            continue  # absent for the whole batch
        out = encoder(batch)
        if pooled_only:
            out = EncoderOutput(tokens=None, mask=None, pooled=out.pooled)
        features[m] = out
        flag = batch.get(f"{m}_present")
        present[m] = (
            flag.bool() if flag is not None else out.pooled.new_ones(out.pooled.shape[0], dtype=torch.bool)
        )
    if not features:
        raise ValueError(
            f"the batch has none of the model's modalities {list(encoders)}; keys: {sorted(batch)}"
        )
    return features, present


def check_fusion_fits(encoders: dict[str, Encoder], fusion: Fusion, inputs: str = "tokens") -> None:
    """The fusion module must fuse exactly these modalities at these sizes, from these inputs."""
    if inputs not in ("tokens", "pooled"):
        raise ValueError(f"inputs must be 'tokens' or 'pooled'; got '{inputs}'")
    if fusion.needs_tokens and inputs == "pooled":
        raise ValueError(
            f"fusion '{fusion.name}' attends over token sequences but the encoders are set to give pooled "
            "vectors only (inputs: pooled); set inputs: tokens or pick a pooled strategy (concat, gated, ...)"
        )
    sizes = {m: int(e.hidden_size) for m, e in encoders.items()}
    if set(sizes) != set(fusion.dims):
        raise ValueError(
            f"the fusion module fuses {sorted(fusion.dims)} but the encoders are {sorted(sizes)}; "
            "build it with dims={modality: encoder.hidden_size} for the same modalities"
        )
    wrong = {m: (sizes[m], fusion.dims[m]) for m in sizes if sizes[m] != fusion.dims[m]}
    if wrong:
        detail = ", ".join(f"{m}: encoder {a} vs fusion {b}" for m, (a, b) in wrong.items())
        raise ValueError(
            f"hidden sizes do not match ({detail}); build the fusion with dims set to the encoders' "
            "hidden sizes (the factory does this for you)"
        )


def encoders_config(encoders: nn.ModuleDict) -> dict[str, dict[str, Any]]:
    out = {}
    for m, e in encoders.items():
        cfg = e.to_config()
        if getattr(e, "lora_settings", None):
            cfg["lora"] = dict(e.lora_settings)
        out[m] = cfg
    return out


def encoders_from_config(config: dict[str, dict[str, Any]]) -> dict[str, Encoder]:
    """Rebuild encoders (random weights), re-injecting LoRA adapters where they were saved."""
    encoders = {}
    for m, cfg in config.items():
        cfg = dict(cfg)
        lora = cfg.pop("lora", None)
        encoder = encoder_from_config(cfg)
        if lora:
            # which encoders get adapters is decided already (this one); `towers`: its older name
            apply_lora(
                encoder, LoraSettings(**{k: v for k, v in lora.items() if k not in ("encoders", "towers")})
            )
        encoders[m] = encoder
    return encoders
