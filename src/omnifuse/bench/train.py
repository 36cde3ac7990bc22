"""`omnifuse bench train`: training samples/s and peak memory of a recipe, next to a plain fp32
eager loop over HF's `CLIPModel` with the same sizes, on the same batches, in the same run.

Each configuration runs in its own fresh process (so peak memory is its own), for the same
number of optimizer steps on identical batches; throughput is measured after warm-up steps.
"""

from __future__ import annotations

import math
import multiprocessing as mp
import resource
import time
from dataclasses import asdict, dataclass, replace
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


def default_bench_recipe(data_dir, out_dir) -> dict[str, Any]:
    """The shapes CLIP recipe with the `small` presets (width 256, 4 layers) at batch 128, in bf16
    autocast where the hardware makes it fast (AMX / AVX512-BF16 CPUs, recent GPUs)."""
    from omnifuse.demos.clip import demo_recipe_dict
    from omnifuse.utils.cpu import bf16_is_fast

    recipe = demo_recipe_dict(data_dir, out_dir, steps=100)
    recipe["name"] = "bench-train"
    recipe["model"]["embed_dim"] = 256
    recipe["model"]["encoders"] = {
        # CLIP's own tower architectures, so that the baseline differs only in the loop
        "text": {"arch": "clip_text", "preset": "small", "pooling": "pooler"},
        "image": {
            "arch": "clip_vision",
            "preset": "small",
            "pooling": "pooler",
            "overrides": {"patch_size": 8},
        },
    }
    recipe["train"].update(batch_size=128, lr=5e-4, precision="bf16" if bf16_is_fast() else "fp32")
    return recipe


def make_batches(recipe: Recipe, n_batches: int) -> tuple[list[dict[str, torch.Tensor]], Any, list]:
    """The first `n_batches` training batches of the recipe, processed once (and the samples)."""
    from omnifuse.data.loader import Collator, EpochBatchSampler, SampleDataset
    from omnifuse.train.run import build_processor, load_recipe_data

    data = load_recipe_data(recipe)
    processor = build_processor(recipe, data.train)
    modalities = sorted(recipe.model.encoders)
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
    return batches, processor, data.train


def clip_baseline(recipe: Recipe, processor) -> torch.nn.Module:
    """An HF CLIPModel whose towers have the sizes of the recipe's text and image towers."""
    from transformers import CLIPConfig, CLIPModel

    from omnifuse.encoders.presets import preset_config
    from omnifuse.models.factory import data_overrides, first_token_id

    t_cfg, i_cfg = recipe.model.encoders["text"], recipe.model.encoders["image"]
    text = preset_config(t_cfg.arch, t_cfg.preset, **{**data_overrides(processor, "text"), **t_cfg.overrides})
    image = preset_config(
        i_cfg.arch, i_cfg.preset, **{**data_overrides(processor, "image"), **i_cfg.overrides}
    )
    keys = ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads")
    tok = processor["text"].tokenizer
    config = CLIPConfig(
        text_config={
            **{k: getattr(text, k) for k in keys},
            "vocab_size": text.vocab_size,
            "max_position_embeddings": text.max_position_embeddings,
            # CLIP's text tower pools at the end-of-text token: take the ids from our tokenizer.
            "bos_token_id": first_token_id(tok, "cls_token_id", "bos_token_id"),
            "eos_token_id": first_token_id(tok, "sep_token_id", "eos_token_id"),
            "pad_token_id": tok.pad_token_id or 0,
        },
        vision_config={
            **{k: getattr(image, k) for k in keys},
            "image_size": image.image_size,
            "patch_size": image.patch_size,
        },
        projection_dim=recipe.model.embed_dim,
        logit_scale_init_value=math.log(1.0 / recipe.model.init_temperature),
    )
    return CLIPModel(config)


def _omnifuse_step(recipe: Recipe, processor, samples):
    """Our training step: `Trainer.train_step` (Accelerate, autocast per recipe, clipping, AdamW
    with decay exclusions, schedule), fed the same pre-processed batches as the baseline."""
    import tempfile

    from omnifuse.models.factory import build_model
    from omnifuse.train.loop import Trainer

    model = build_model(recipe.model, processor)
    trainer = Trainer(model, samples, recipe.data, recipe.train, tempfile.mkdtemp())
    desc = f"omnifuse Trainer.train_step, {recipe.train.precision}"
    return model, (lambda batch: trainer.train_step([batch])), desc


def _baseline_step(recipe: Recipe, processor):
    """A plain fp32 eager loop over HF's CLIPModel: forward with return_loss, backward, clip, and
    the same AdamW groups and warmup/cosine schedule as ours, so losses compare step for step."""
    from omnifuse.train.optim import build_optimizer, build_scheduler

    model = clip_baseline(recipe, processor)
    cfg = recipe.train
    opt = build_optimizer(model, cfg.optimizer, cfg.lr, cfg.weight_decay, cfg.betas, cfg.eps, cfg.momentum)
    schedule = build_scheduler(opt, cfg.warmup_steps, cfg.max_steps, cfg.schedule, cfg.min_lr_ratio)
    model.train()

    def step(b) -> float:
        loss = model(
            input_ids=b["text"], attention_mask=b["text_mask"], pixel_values=b["image"], return_loss=True
        ).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm or float("inf"))
        opt.step()
        schedule.step()
        opt.zero_grad(set_to_none=True)
        return float(loss.detach())

    return model, step, "HF CLIPModel, fp32 eager"


def _run(kind: str, recipe: Recipe, batches, processor, samples, warmup: int, queue) -> None:
    torch.manual_seed(recipe.train.seed)
    if recipe.train.threads:
        torch.set_num_threads(recipe.train.threads)
    if kind.startswith("omnifuse"):
        if kind == "omnifuse_fp32":
            recipe = replace(recipe, train=replace(recipe.train, precision="fp32"))
        model, step, desc = _omnifuse_step(recipe, processor, samples)
    else:
        model, step, desc = _baseline_step(recipe, processor)
    losses, times = [], []
    for i, batch in enumerate(batches):
        t0 = time.perf_counter()
        losses.append(step(batch))
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    seconds = sum(times) / len(times)
    tail = losses[-5:]
    row = BenchRow(
        name=kind,
        description=desc,
        samples_per_s=len(batches[0]["text"]) / seconds,
        step_ms=seconds * 1000,
        peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        first_loss=losses[0],
        final_loss=sum(tail) / len(tail),
        params_m=sum(p.numel() for p in model.parameters()) / 1e6,
    )
    queue.put(asdict(row))


def _result(queue, proc, kind: str) -> dict[str, Any]:
    """The row the process puts on `queue`; an error, not a hang, when it dies without one."""
    import queue as queues

    while True:
        try:
            return queue.get(timeout=2.0)
        except queues.Empty:
            if not proc.is_alive():
                raise RuntimeError(
                    f"bench train: the {kind} run exited with code {proc.exitcode} before reporting "
                    "(its traceback is above)"
                ) from None


def bench_train(recipe: Recipe, steps: int = 60, warmup: int = 5) -> dict[str, Any]:
    if steps <= warmup:
        raise ValueError(f"steps ({steps}) must exceed warm-up steps ({warmup})")
    batches, processor, samples = make_batches(recipe, steps)
    ctx = mp.get_context("spawn")
    # The same loop in fp32 as well, when the recipe uses bf16: it separates what the loop costs
    # from what bf16 gains (and what bf16 does to the loss).
    kinds = (
        ["hf_clip_fp32", "omnifuse_fp32", "omnifuse"]
        if recipe.train.precision != "fp32"
        else ["hf_clip_fp32", "omnifuse"]
    )
    rows = []
    for kind in kinds:
        queue = ctx.Queue()
        proc = ctx.Process(target=_run, args=(kind, recipe, batches, processor, samples, warmup, queue))
        proc.start()
        rows.append(_result(queue, proc, kind))
        proc.join()
    base, ours = rows[0], rows[-1]
    return {
        "rows": rows,
        "speedup": ours["samples_per_s"] / base["samples_per_s"],
        "final_loss_ratio": ours["final_loss"] / base["final_loss"],
        "steps": steps,
        "warmup": warmup,
        "batch_size": recipe.train.batch_size,
        "threads": torch.get_num_threads(),
    }
