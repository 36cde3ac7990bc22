"""Recipe config (+ processor) -> a fresh TextToImage; its processors, evaluator and decode workload."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from omnifuse.data.loader import eval_loader
from omnifuse.data.processors import Processor
from omnifuse.data.sample import CorruptSamplePolicy, Sample
from omnifuse.models.artifact import resolve_artifact_dir
from omnifuse.models.text_to_image.config import TextToImageConfig


def load_image_tokenizer(cfg: TextToImageConfig):
    from omnifuse.models.image_tokenizer import ImageTokenizer

    return ImageTokenizer.from_pretrained(resolve_artifact_dir(cfg.image_tokenizer))


def tokenizer_processors(cfg: TextToImageConfig) -> dict[str, Any]:
    """The prior sees images through its tokenizer, so it takes the tokenizer's image preprocessing."""
    return {"image": Processor.load(resolve_artifact_dir(cfg.image_tokenizer))["image"]}


def build(
    cls: type[nn.Module],
    cfg: TextToImageConfig,
    processor: Processor,
    samples: Sequence[Sample] | None = None,
) -> nn.Module:
    """`cls` is the TextToImage class (bound by the registry); the tokenizer artifact is loaded
    from `cfg.image_tokenizer` and checked against `cfg.grid` / `cfg.codebook_size`."""
    return cls(cfg, load_image_tokenizer(cfg), processor).train()


class TextToImageEvaluator:
    """Validation losses, with the prompt (`val/image_loss`) and with the null prompt
    (`val/image_loss_null`): their gap is how much the text tells the prior about the image."""

    def __init__(self, samples: Sequence[Sample], batch_size: int = 256, max_items: int = 1000):
        self.samples = list(samples)[:max_items]
        self.batch_size = batch_size

    @torch.no_grad()
    def evaluate(self, model: Any) -> tuple[dict[str, float], dict[str, Any]]:
        was = model.training
        model.eval()
        device = next(model.parameters()).device
        sums = {"loss": 0.0, "text_loss": 0.0, "image_loss": 0.0, "image_loss_null": 0.0}
        n = 0
        policy = CorruptSamplePolicy(name="val data")
        try:
            for batch in eval_loader(
                self.samples, model.processor, ["image", "text"], self.batch_size, policy
            ):
                index = batch.pop("index")
                if not len(index):
                    continue
                batch = {k: v.to(device) for k, v in batch.items()}
                batch["image_codes"] = model.image_tokenizer.encode(batch["image"])
                out = model(batch)
                null = dict(batch, text=torch.full_like(batch["text"], model.pad_id))
                out_null = model(null)
                b = len(index)
                sums["loss"] += float(out.loss) * b
                sums["text_loss"] += float(out.text_loss) * b
                sums["image_loss"] += float(out.image_loss) * b
                sums["image_loss_null"] += float(out_null.image_loss) * b
                n += b
        finally:
            model.train(was)
        if not n:
            raise ValueError("no readable validation sample")
        return {f"val/{k}": v / n for k, v in sums.items()}, {}

    def __call__(self, model: Any) -> dict[str, float]:
        return self.evaluate(model)[0]

    def score(self, metrics: dict[str, float]) -> float:
        return -metrics["val/image_loss"]


def evaluator(eval_config: Any, val_samples: Sequence[Sample], model: Any) -> TextToImageEvaluator:
    return TextToImageEvaluator(
        val_samples,
        batch_size=getattr(eval_config, "batch_size", 256),
        max_items=getattr(eval_config, "max_items", 1000),
    )


def decode_workload(model: Any = None):
    """`omnifuse bench generate`'s row: image codes decoded per second (one image = grid^2 codes).

    Given None it builds a benchmark-sized prior (GPT-2 4 x 256, 8 x 8 grid, 512 codes) over a
    from-scratch tokenizer of 64 px images; given a trained artifact it times that.
    """
    from omnifuse.generation import DecodeWorkload

    if model is None:
        model = _bench_model()
    model = model.eval()
    vocab = model.text_vocab

    def inputs(batch_size: int) -> dict[str, Any]:
        g = torch.Generator().manual_seed(batch_size)
        text = torch.randint(5, vocab, (batch_size, model.text_length), generator=g)
        return {"text": text}

    def run(m: nn.Module, batch: dict[str, Any], settings) -> int:
        return int(m.generate_codes(batch["text"], settings).numel())

    c = model.config
    name = f"text_to_image (gpt2 {c.layers}x{c.hidden}, {c.grid}x{c.grid} codes)"
    return DecodeWorkload(name, model, inputs, run, model.image_tokens)


def _bench_model():
    from omnifuse.data.processors import ImageProcessor, ImageSettings, TextProcessor, build_word_tokenizer
    from omnifuse.models.image_tokenizer import ImageTokenizer, ImageTokenizerConfig
    from omnifuse.models.registry import get_spec

    words = [f"w{i}" for i in range(60)]
    text = TextProcessor(build_word_tokenizer([" ".join(words)]), max_length=16)
    tok = ImageTokenizer(
        ImageTokenizerConfig(grid=8, codebook_size=512, kmeans_init=False),
        Processor({"image": ImageProcessor(ImageSettings(size=64))}),
    )
    cls = get_spec("text_to_image").model_class
    cfg = TextToImageConfig(image_tokenizer="(in memory)", hidden=256, layers=4, heads=4)
    return cls(cfg, tok, Processor({"text": text})).eval()
