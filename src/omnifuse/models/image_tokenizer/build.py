"""Recipe config (+ processor) -> a fresh ImageTokenizer; its validation metrics."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from omnifuse.data.loader import eval_loader
from omnifuse.data.processors import Processor
from omnifuse.data.sample import CorruptSamplePolicy, Sample
from omnifuse.models.image_tokenizer.config import ImageTokenizerConfig
from omnifuse.models.image_tokenizer.metrics import code_usage, psnr


def build(
    cls: type[nn.Module],
    cfg: ImageTokenizerConfig,
    processor: Processor,
    samples: Sequence[Sample] | None = None,
) -> nn.Module:
    """`cls` is the ImageTokenizer class (bound by the registry); `samples` are not needed."""
    return cls(cfg, processor).train()


class ImageTokenizerEvaluator:
    """Reconstruction MSE and PSNR (pixels in [0, 1]) and codebook usage on validation images."""

    def __init__(self, samples: Sequence[Sample], batch_size: int = 256, max_items: int = 1000):
        self.samples = list(samples)[:max_items]
        self.batch_size = batch_size

    @torch.no_grad()
    def evaluate(self, model: Any) -> tuple[dict[str, float], dict[str, Any]]:
        was = model.training
        model.eval()
        device = next(model.parameters()).device
        sq_err, psnrs, codes, losses = [], [], [], []
        policy = CorruptSamplePolicy(name="val data")
        try:
            for batch in eval_loader(self.samples, model.processor, ["image"], self.batch_size, policy):
                batch.pop("index")
                if not len(batch.get("image", [])):
                    continue
                out = model({"image": batch["image"].to(device)})
                target = model.to_pixels(batch["image"].to(device))
                sq_err.append((out.recon.clamp(0, 1) - target).pow(2).flatten(1).mean(1))
                psnrs.append(psnr(out.recon, target))
                codes.append(out.codes.flatten())
                losses.append(float(out.loss) * len(target))
        finally:
            model.train(was)
        if not psnrs:
            raise ValueError("no readable validation image")
        n = sum(len(p) for p in psnrs)
        usage = code_usage(torch.cat(codes), model.codebook_size)
        metrics = {
            "val/loss": sum(losses) / n,
            "val/mse": float(torch.cat(sq_err).mean()),
            "val/psnr": float(torch.cat(psnrs).mean()),
            "val/perplexity": usage["perplexity"],
            "val/code_usage": usage["code_usage"],
        }
        return metrics, {}

    def __call__(self, model: Any) -> dict[str, float]:
        return self.evaluate(model)[0]

    def score(self, metrics: dict[str, float]) -> float:
        return metrics["val/psnr"]


def evaluator(eval_config: Any, val_samples: Sequence[Sample], model: Any) -> ImageTokenizerEvaluator:
    return ImageTokenizerEvaluator(
        val_samples,
        batch_size=getattr(eval_config, "batch_size", 256),
        max_items=getattr(eval_config, "max_items", 1000),
    )
