"""Recipe config (+ processor, training samples) -> a fresh Captioner; the LM and vision builders;
the benchmark workload."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from omnifuse.data.processors import ImageProcessor, Processor, build_word_tokenizer
from omnifuse.data.sample import Sample
from omnifuse.encoders.factory import build_encoder
from omnifuse.encoders.lora import LoraSettings, apply_lora
from omnifuse.generation import DecodeWorkload, GenerationSettings
from omnifuse.models.captioner.config import END_OF_CHUNK, IMAGE_TOKEN, LM_PRESETS, CaptionerConfig
from omnifuse.models.captioner.processing import CaptionerTextProcessor


def sample_texts(samples: Sequence[Sample]) -> list[str]:
    texts: list[str] = []
    for s in samples:
        value = s.inputs.get("text")
        texts.extend([value] if isinstance(value, str) else list(value or []))
    return texts


def build_tokenizer(cfg: CaptionerConfig, processor: Processor, samples: Sequence[Sample] | None):
    """The LM's tokenizer: its own (HF LM), else a word tokenizer over the training texts + prompts."""
    if cfg.lm.source == "hf":
        from transformers import AutoTokenizer

        from omnifuse.utils.paths import resolve_model_path

        return AutoTokenizer.from_pretrained(resolve_model_path(cfg.lm.name_or_path))
    if samples:
        prompts = [cfg.caption_prompt, cfg.question_prompt.replace("{question}", "")]
        clean = [
            t.replace(IMAGE_TOKEN, " ").replace(END_OF_CHUNK, " ") for t in sample_texts(samples) + prompts
        ]
        return build_word_tokenizer(clean)
    if "text" in processor.processors:
        return processor["text"].tokenizer
    raise ValueError(
        "a from-scratch language model needs training samples (or a text processor) for its vocabulary"
    )


def scratch_lm(cfg: CaptionerConfig, tokenizer) -> nn.Module:
    """A randomly initialised GPT-2 of the preset's size over `tokenizer`'s vocabulary."""
    from transformers import GPT2Config, GPT2LMHeadModel

    layers, hidden, heads = LM_PRESETS[cfg.lm.preset]
    fields = dict(
        vocab_size=len(tokenizer),
        n_positions=max(256, cfg.max_length + cfg.max_images * cfg.num_latents),
        n_embd=hidden,
        n_layer=layers,
        n_head=heads,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        bos_token_id=tokenizer.cls_token_id if tokenizer.bos_token_id is None else tokenizer.bos_token_id,
        eos_token_id=tokenizer.sep_token_id if tokenizer.eos_token_id is None else tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    config = GPT2Config(**{**fields, **cfg.lm.overrides})
    config._attn_implementation = "sdpa"
    return GPT2LMHeadModel(config)


def hf_lm(name_or_path: str) -> nn.Module:
    from transformers import AutoModelForCausalLM

    from omnifuse.utils.paths import resolve_model_path

    return AutoModelForCausalLM.from_pretrained(resolve_model_path(name_or_path))


def add_lora(lm: nn.Module, settings: LoraSettings | dict[str, Any]) -> nn.Module:
    """LoRA adapters on the LM's attention projections (GPT-2: `c_attn`)."""
    if isinstance(settings, dict):
        settings = LoraSettings(**{k: v for k, v in settings.items() if k != "towers"})
    if settings.target_modules is None and any(n.endswith("c_attn") for n, _ in lm.named_modules()):
        settings = LoraSettings(
            r=settings.r, alpha=settings.alpha, dropout=settings.dropout, target_modules=["c_attn"]
        )
    return apply_lora(lm, settings)


def rebuild_lm(saved: dict[str, Any]) -> nn.Module:
    """The LM architecture (random weights) from an artifact's config: no hub access."""
    from omnifuse.encoders.hf import hf_model_class

    model_cls = hf_model_class(saved["class"])
    config = model_cls.config_class.from_dict(dict(saved["config"]))
    config._attn_implementation = "sdpa" if getattr(model_cls, "_supports_sdpa", False) else "eager"
    lm = model_cls(config)
    if saved.get("lora"):
        add_lora(lm, saved["lora"])
    return lm


def vision_tower(cfg: CaptionerConfig, processor: Processor) -> tuple[nn.Module, ImageProcessor]:
    """The image tower and its preprocessing: from a DualEncoder artifact, or built from `cfg.vision`."""
    if cfg.vision_from:
        from omnifuse.models.factory import load_model

        source = load_model(cfg.vision_from)
        towers = getattr(source, "towers", None)
        if towers is None or "image" not in towers:
            raise ValueError(f"model.vision_from: {cfg.vision_from} has no image tower")
        return towers["image"], source.processor["image"]
    image = processor.processors.get("image") or ImageProcessor()
    overrides = {"image_size": image.settings.size}
    return build_encoder(cfg.vision, "image", overrides), image


@dataclass
class PreparedData:
    """What the `prepare` hook gives the training run: samples and the preprocessing to start from."""

    train: list[Sample]
    val: list[Sample] | None
    processor: Processor


def prepare(recipe: Any, processor: Processor | None = None) -> PreparedData:
    """Read the recipe's manifests (`image`: one path or a list; `text`: interleaved text) and
    start the preprocessing from the recipe's image settings (a resumed run's, when given)."""
    from omnifuse.data.readers import read_samples
    from omnifuse.data.sample import CorruptSamplePolicy

    data = recipe.data

    def read(spec: str, name: str) -> list[Sample]:
        policy = CorruptSamplePolicy(strict=data.strict, name=name)
        return read_samples(spec, columns=data.columns, label_columns=data.labels or None, policy=policy)

    train = read(data.train, "train data")
    lacking = [s.source for s in train[:2000] if not {"image", "text"} <= set(s.inputs)]
    if lacking:
        raise ValueError(
            f"a captioner trains on rows with an image (or a list of images) and a text; "
            f"{lacking[0]} lacks one (data.columns maps them: now {data.columns})"
        )
    val = read(data.val, "val data") if data.val else None
    processor = processor or Processor({"image": ImageProcessor(recipe.processor.image)})
    return PreparedData(train, val, processor)


def build(*args: Any) -> nn.Module:
    """`build([cls,] cfg, processor, samples=None)`; `cls` is the Captioner class when the registry
    binds it, else it is looked up."""
    if args and isinstance(args[0], type):
        cls, *args = args
    else:
        from omnifuse.models.registry import get_spec

        cls = get_spec("captioner").model_class
    cfg, processor, samples = (list(args) + [None])[:3]
    vision, image_proc = vision_tower(cfg, processor)
    saved = processor.processors.get("text")
    if isinstance(saved, CaptionerTextProcessor):  # a resumed run: the saved tokenizer, as it was
        text, tokenizer = saved, saved.tokenizer
        image_proc = processor.processors.get("image", image_proc)
    else:
        tokenizer = build_tokenizer(cfg, processor, samples)
        text = CaptionerTextProcessor(tokenizer, cfg.max_length, cfg.caption_prompt)  # adds the media tokens
    lm = hf_lm(cfg.lm.name_or_path) if cfg.lm.source == "hf" else scratch_lm(cfg, tokenizer)
    if cfg.lm.lora is not None:
        add_lora(lm, cfg.lm.lora)
    return cls(cfg, vision, lm, Processor({"image": image_proc, "text": text})).train()


# ---------------------------------------------------------------------- bench generate hook
BENCH_WORDS = "a an the red green blue yellow circle square triangle star small large left right above below of and".split()


def bench_captioner(connector: str, lm_preset: str = "small", image_size: int = 32) -> nn.Module:
    """A fresh captioner of benchmark size (random weights): ViT tiny, GPT-2 `lm_preset`."""
    from omnifuse.encoders.config import TowerConfig
    from omnifuse.models.captioner.config import LanguageModelConfig
    from omnifuse.models.registry import get_spec

    cfg = CaptionerConfig(
        connector=connector,
        vision=TowerConfig(arch="vit", preset="tiny", overrides={"patch_size": 8}),
        lm=LanguageModelConfig(preset=lm_preset),
    )
    samples = [Sample(inputs={"text": " ".join(BENCH_WORDS)})]
    processor = Processor({"image": ImageProcessor(size=image_size)})
    return build(get_spec("captioner").model_class, cfg, processor, samples).eval()


def decode_workload(model: nn.Module | None = None) -> list[DecodeWorkload]:
    """`bench generate`'s rows: caption decoding from one image per sequence (both connectors
    when no trained model is given)."""
    models = [model] if model is not None else [bench_captioner("xattn"), bench_captioner("prefix")]
    out = []
    for m in models:
        size = m.processor["image"].settings.size

        def inputs(batch_size: int, size: int = size) -> dict[str, Any]:
            g = torch.Generator().manual_seed(batch_size)
            return {"pixel_values": torch.randn(batch_size, 1, 3, size, size, generator=g)}

        def run(model: nn.Module, batch: dict[str, Any], settings: GenerationSettings) -> int:
            return model.generate(pixel_values=batch["pixel_values"], settings=settings).new_tokens

        lm_cfg = m.lm.config
        name = f"captioner {m.config.connector} (gpt2 {lm_cfg.n_layer}x{lm_cfg.n_embd}, {m.config.num_latents} latents)"
        out.append(DecodeWorkload(name, m.eval(), inputs, run))
    return out
