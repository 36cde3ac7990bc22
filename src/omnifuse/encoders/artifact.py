"""A tower taken from an omnifuse artifact (`source: omnifuse` in a tower config).

Any artifact whose config.json lists its encoders — `encoders` (fusion models, pre-trained
`masked_lm` / `vl_pretrain` models) or `towers` (dual encoders), each an encoder's `to_config()`
— gives its tower for a modality: rebuilt from that config and loaded with the weights stored
in model.safetensors under `encoders.<modality>.` / `towers.<modality>.`, or, where the artifact
says so in `encoder_weights[modality]` (`{"from": "model.bert.", "to": "model."}`), under another
prefix that stands for the encoder's own one. This module reads files only; it never imports a model kind.
"""

from __future__ import annotations

import json
from pathlib import Path

from safetensors import safe_open

from omnifuse.encoders.base import Encoder
from omnifuse.encoders.registry import encoder_from_config


def artifact_encoder_config(directory: str | Path, modality: str) -> tuple[dict, tuple[str, str]]:
    """(encoder config, (file key prefix, encoder key prefix)) of the artifact's tower for `modality`; clear errors otherwise."""
    directory = Path(directory)
    path = directory / "config.json"
    if not path.exists():
        raise ValueError(f"tower source 'omnifuse': {directory} is not an omnifuse artifact (no config.json)")
    config = json.loads(path.read_text())
    key = "encoders" if "encoders" in config else "towers"
    towers = config.get(key) or {}
    if modality not in towers:
        raise ValueError(
            f"tower source 'omnifuse': the {config.get('model_type', '?')} artifact {directory} has no "
            f"{modality} encoder; it has {sorted(towers) or 'none'}"
        )
    cfg = dict(towers[modality])
    if cfg.pop("lora", None):
        raise ValueError(f"{directory}: its {modality} tower carries LoRA adapters; merge them before reuse")
    rename = (config.get("encoder_weights") or {}).get(modality) or {"from": f"{key}.{modality}.", "to": ""}
    return cfg, (rename["from"], rename["to"])


def load_artifact_encoder(directory: str | Path, modality: str, pooling: str | None = None) -> Encoder:
    """The `modality` tower of an omnifuse artifact, with its trained weights."""
    cfg, (prefix, own) = artifact_encoder_config(directory, modality)
    if pooling is not None and cfg.get("type", "hf") == "hf":
        cfg["pooling"] = pooling
    encoder = encoder_from_config(cfg)
    expected = encoder.state_dict()
    state = {}
    with safe_open(str(Path(directory) / "model.safetensors"), framework="pt") as f:
        for name in f.keys():  # noqa: SIM118 (safe_open has no __iter__)
            key = own + name[len(prefix) :]
            if name.startswith(prefix) and key in expected:
                state[key] = f.get_tensor(name)
    missing = sorted(set(expected) - set(state))
    if missing:
        raise ValueError(
            f"{directory}: weights under '{prefix}' lack {len(missing)} tensor(s) of its {modality} tower, "
            f"e.g. {missing[:3]}"
        )
    encoder.load_state_dict(state, strict=True)
    return encoder.train()
