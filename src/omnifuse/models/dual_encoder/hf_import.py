"""Import a real HF `CLIPModel` / `SiglipModel` into a `DualEncoder` with identical embeddings."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from omnifuse.data.processors import ImageProcessor, ImageSettings, Processor, TextProcessor
from omnifuse.encoders.hf import HFEncoder, instantiate
from omnifuse.losses import ClipLoss, SigLipLoss


def _tower(full_model: nn.Module, attr: str, tower_cls, tower_config, modality: str) -> HFEncoder:
    """`full_model.<attr>` (e.g. `text_model`) as a standalone HF tower model.

    transformers 5 keeps the towers as `CLIPTextModel`-style models already; older releases
    hold the bare transformer, which is copied into a fresh tower model.
    """
    from transformers import PreTrainedModel

    inner = getattr(full_model, attr)
    if isinstance(inner, PreTrainedModel):
        return HFEncoder(inner, modality, pooling="pooler")
    tower = instantiate(tower_cls, tower_config, None)
    getattr(tower, attr).load_state_dict(inner.state_dict())
    return HFEncoder(tower, modality, pooling="pooler")


def _hf_processor(name_or_path: str) -> Processor:
    """Best effort: the checkpoint's tokenizer and image settings, where it ships them."""
    procs = {}
    try:
        procs["text"] = TextProcessor.from_pretrained(name_or_path)
    except Exception:  # a bare weights directory without tokenizer files
        pass
    pre = Path(name_or_path) / "preprocessor_config.json"
    if pre.exists():
        cfg = json.loads(pre.read_text())
        crop = cfg.get("crop_size") or cfg.get("size") or {}
        size = crop.get("height") or crop.get("shortest_edge") if isinstance(crop, dict) else crop
        resize = cfg.get("size", {}).get("shortest_edge") if isinstance(cfg.get("size"), dict) else None
        procs["image"] = ImageProcessor(
            ImageSettings(size=int(size), resize=resize, mean=cfg["image_mean"], std=cfg["image_std"])
        )
    return Processor(procs)


def dual_encoder_from_hf(cls: type[nn.Module], name_or_path: str) -> nn.Module:
    """`cls` is the DualEncoder class (passed in: this module is imported by it)."""
    from transformers import (
        AutoConfig,
        CLIPModel,
        CLIPTextModel,
        CLIPVisionModel,
        SiglipModel,
        SiglipTextModel,
        SiglipVisionModel,
    )

    config = AutoConfig.from_pretrained(name_or_path)
    if config.model_type == "clip":
        hf = CLIPModel.from_pretrained(name_or_path).eval()
        text = _tower(hf, "text_model", CLIPTextModel, config.text_config, "text")
        image = _tower(hf, "vision_model", CLIPVisionModel, config.vision_config, "image")
        projections = {"text": hf.text_projection, "image": hf.visual_projection}
        model = cls(
            {"text": text, "image": image}, config.projection_dim, ClipLoss(), projections=projections
        )
    elif config.model_type == "siglip":
        hf = SiglipModel.from_pretrained(name_or_path).eval()
        text = _tower(hf, "text_model", SiglipTextModel, config.text_config, "text")
        image = _tower(hf, "vision_model", SiglipVisionModel, config.vision_config, "image")
        # SigLIP's towers end in their own heads: no extra projection.
        projections = {"text": nn.Identity(), "image": nn.Identity()}
        model = cls(
            {"text": text, "image": image},
            config.vision_config.hidden_size,
            SigLipLoss(),
            projections=projections,
        )
        with torch.no_grad():
            model.logit_bias.copy_(hf.logit_bias.reshape(()))
    else:
        raise ValueError(f"{name_or_path}: model_type '{config.model_type}' is not a CLIP or SigLIP model")
    with torch.no_grad():
        model.logit_scale.copy_(hf.logit_scale.reshape(()))
    model.processor = _hf_processor(name_or_path)
    return model.eval()
