"""`omnifuse bench train`: training samples/s and peak memory of a recipe, next to a plain fp32
eager loop over HF's `CLIPModel` with the same sizes, on the same batches, in the same run.

Each configuration runs in its own fresh process (so peak memory is its own), for the same
number of optimizer steps on identical batches; throughput is measured after warm-up steps.
"""

from __future__ import annotations

import multiprocessing as mp
import resource
import time
from dataclasses import asdict, dataclass
from typing import Any

import torch

from omnifuse.train.config import Recipe


@dataclass
class BenchRow:
    name: str
    description: str
    samples_per_s: float
    step_ms: float
    peak_rss_mb: float
    first_loss: float
    final_loss: float
    params_m: float


def make_batches(recipe: Recipe, n_batches: int) -> tuple[list[dict[str, torch.Tensor]], Any]:
    """The first `n_batches` training batches of the recipe, processed once."""
    from omnifuse.data.loader import Collator, EpochBatchSampler, SampleDataset
    from omnifuse.train.run import build_processor, load_recipe_data

    data = load_recipe_data(recipe)
    processor = build_processor(recipe, data.train)
    modalities = sorted(recipe.model.towers)
    dataset = SampleDataset(data.train, modalities)
    sampler = EpochBatchSampler(len(dataset), recipe.train.batch_size, seed=recipe.train.seed)
    collate = Collator(processor, modalities, train=True, seed=recipe.train.seed)
    batches = []
    epoch = 0
    while len(batches) < n_batches:
        sampler.set_epoch(epoch)
        for idx in sampler:
            batches.append({k: v for k, v in collate([dataset[i] for i in idx]).items() if k != "index"})
            if len(batches) == n_batches:
                break
        epoch += 1
    return batches, processor


def clip_baseline(recipe: Recipe, processor) -> torch.nn.Module:
    """An HF CLIPModel whose towers have the sizes of the recipe's text and image towers."""
    from transformers import CLIPConfig, CLIPModel

    from omnifuse.encoders.presets import preset_config
    from omnifuse.models.factory import data_overrides

    t_cfg, i_cfg = recipe.model.towers["text"], recipe.model.towers["image"]
    text = preset_config(t_cfg.arch, t_cfg.preset, **{**data_overrides(processor, "text"), **t_cfg.overrides})
    image = preset_config(i_cfg.arch, i_cfg.preset, **{**data_overrides(processor, "image"), **i_cfg.overrides})
    keys = ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads")
    config = CLIPConfig(
        text_config={**{k: getattr(text, k) for k in keys}, "vocab_size": text.vocab_size,
                     "max_position_embeddings": text.max_position_embeddings,
                     "eos_token_id": 3, "pad_token_id": 0},  # [SEP] ends every word-tokenized text
        vision_config={**{k: getattr(image, k) for k in keys}, "image_size": image.image_size,
                       "patch_size": image.patch_size},
        projection_dim=recipe.model.embed_dim,
    )
    return CLIPModel(config)


def _run(kind: str, recipe: Recipe, batches, processor, warmup: int, queue) -> None:
    torch.manual_seed(recipe.train.seed)
    if recipe.train.threads:
        torch.set_num_threads(recipe.train.threads)
    if kind == "omnifuse":
        from omnifuse.models.factory import build_model

        model = build_model(recipe.model, processor)
        bf16 = recipe.train.precision == "bf16"
        step_fn = lambda b: model(b).loss  # noqa: E731
        desc = f"omnifuse DualEncoder, {'bf16 autocast' if bf16 else 'fp32'}"
    else:
        model = clip_baseline(recipe, processor)
        bf16 = False

        def step_fn(b):
            return model(input_ids=b["text"], attention_mask=b["text_mask"], pixel_values=b["image"], return_loss=True).loss

        desc = "HF CLIPModel, fp32 eager"
    from omnifuse.train.optim import build_optimizer

    cfg = recipe.train
    opt = build_optimizer(model, cfg.lr, cfg.weight_decay, cfg.betas, cfg.eps)
    model.train()
    losses, times = [], []
    for i, batch in enumerate(batches):
        t0 = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = step_fn(batch)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm or 1e9)
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(float(loss))
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    step = sum(times) / len(times)
    tail = losses[-5:]
    queue.put(asdict(BenchRow(
        name=kind, description=desc,
        samples_per_s=len(batches[0]["text"]) / step, step_ms=step * 1000,
        peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        first_loss=losses[0], final_loss=sum(tail) / len(tail),
        params_m=sum(p.numel() for p in model.parameters()) / 1e6,
    )))


def bench_train(recipe: Recipe, steps: int = 40, warmup: int = 5) -> dict[str, Any]:
    if steps <= warmup:
        raise ValueError(f"steps ({steps}) must exceed warm-up steps ({warmup})")
    batches, processor = make_batches(recipe, steps)
    ctx = mp.get_context("spawn")
    rows = []
    for kind in ("hf_clip_fp32", "omnifuse"):
        queue = ctx.Queue()
        proc = ctx.Process(target=_run, args=(kind, recipe, batches, processor, warmup, queue))
        proc.start()
        rows.append(queue.get())
        proc.join()
    base, ours = rows
    return {
        "rows": rows,
        "speedup": ours["samples_per_s"] / base["samples_per_s"],
        "final_loss_ratio": ours["final_loss"] / base["final_loss"],
        "steps": steps,
        "warmup": warmup,
        "batch_size": recipe.train.batch_size,
        "threads": torch.get_num_threads(),
    }
