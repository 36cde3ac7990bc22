"""The training loop, on HF Accelerate: AdamW + warmup/cosine, accumulation, clipping, bf16,
atomic checkpoints with exact resume, periodic evaluation, early stopping, `best/`.

A run directory: `config.yaml` (written by the caller), `metrics.jsonl`, `checkpoints/step-N/`,
`best/` (an artifact), `plots/`.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import os
import random
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from omnifuse.data.loader import Collator, EpochBatchSampler, SampleDataset
from omnifuse.data.sample import CorruptSamplePolicy, Sample
from omnifuse.models.registry import find_spec
from omnifuse.train.checkpoint import (
    atomic_dir,
    latest_checkpoint,
    load_checkpoint,
    prune_checkpoints,
    save_checkpoint,
)
from omnifuse.train.config import DataConfig, TrainConfig
from omnifuse.train.fsdp import fsdp_requested, full_state, is_sharded, load_full_state, shard
from omnifuse.train.optim import build_optimizer, build_scheduler
from omnifuse.utils.progress import progress_bar

logger = logging.getLogger("omnifuse.train")

Evaluator = Callable[[torch.nn.Module], dict[str, float]]


@dataclass
class TrainResult:
    step: int
    metrics: list[dict[str, Any]] = field(default_factory=list)
    best_metric: float | None = None
    best_step: int | None = None
    stopped_early: bool = False
    run_dir: Path | None = None
    seconds: float = 0.0
    samples_per_second: float = 0.0


def seed_everything(seed: int, deterministic: bool = False) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True)
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")


def due(step: int, every: int | None) -> bool:
    """Whether a periodic action (`every` steps; None = never) falls on `step`."""
    return bool(every) and step % every == 0


class MetricsLog:
    """`metrics.jsonl`, one JSON object per line; on resume, rows after the checkpoint are dropped."""

    def __init__(self, path: Path):
        self.path = path

    def rows(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        rows = []
        for line in self.path.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:  # a line cut by a kill
                continue
        return rows

    def truncate_after(self, step: int) -> None:
        kept = [r for r in self.rows() if r.get("step", 0) <= step]
        self.path.write_text("".join(json.dumps(r) + "\n" for r in kept))

    def append(self, row: dict[str, Any]) -> None:
        with open(self.path, "a") as f:
            f.write(json.dumps(row) + "\n")
            f.flush()


class Trainer:
    """Trains any model whose forward(batch) returns an output with a `.loss`.

    ``Trainer(model, train_samples, recipe.data, recipe.train, run_dir, evaluator=...)``: the
    data config says how samples are read (strict, cached, grouped, modalities allowed to be
    missing), the train config how the model is optimised.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        train_samples: Sequence[Sample],
        data_config: DataConfig,
        config: TrainConfig,
        run_dir: str | Path,
        evaluator: Evaluator | None = None,
        targets: Callable[[Sequence[Sample]], dict[str, torch.Tensor]] | None = None,
        modalities: Sequence[str] | None = None,
    ):
        """`targets` encodes labels into each batch (its kind's spec gives it: classifiers);
        `modalities` default to the model's."""
        from accelerate import Accelerator, DistributedDataParallelKwargs

        strict, allow_missing = data_config.strict, data_config.allow_missing

        self.config = config
        self.run_dir = Path(run_dir)
        self.evaluator = evaluator
        seed_everything(config.seed, config.deterministic)
        if config.threads:
            torch.set_num_threads(config.threads)
        self.accelerator = Accelerator(
            mixed_precision="bf16" if config.precision == "bf16" else "no",
            cpu=not torch.cuda.is_available(),
            kwargs_handlers=[
                DistributedDataParallelKwargs(find_unused_parameters=config.find_unused_parameters)
            ],
        )
        acc = self.accelerator
        self.modalities = sorted(modalities or model.modalities)
        self.policy = CorruptSamplePolicy(strict=strict, name="train data")
        dataset = SampleDataset(train_samples, self.modalities, allow_missing)
        self.sampler = EpochBatchSampler(
            len(dataset),
            config.batch_size,
            seed=config.seed,
            rank=acc.process_index,
            world_size=acc.num_processes,
            group_size=data_config.group_size,
        )
        self.collator = Collator(
            model.processor,
            self.modalities,
            train=True,
            seed=config.seed,
            policy=self.policy,
            cache_decoded=data_config.cache_decoded,
            targets=targets,
            allow_missing=allow_missing,
        )
        self.loader = DataLoader(
            dataset,
            batch_sampler=self.sampler,
            collate_fn=self.collator,
            num_workers=config.num_workers,
            # Its own generator: a new iterator must not draw from the global RNG, or a resumed
            # run (new iterator mid-epoch) would diverge from an uninterrupted one.
            generator=torch.Generator().manual_seed(config.seed),
        )
        # FSDP2: the model is sharded here (not by Accelerate, which runs FSDP as DDP on CPU),
        # the optimizer built over the sharded parameters; rank 0 keeps one plain copy to write
        # checkpoints and evaluate (the gathered full state is loaded into it).
        self.fsdp = fsdp_requested(config.distributed, acc.distributed_type, acc.num_processes)
        self.plain: torch.nn.Module | None = None
        if self.fsdp:
            if acc.is_main_process:
                self.plain = copy.deepcopy(model)
            self.fsdp_blocks = shard(model, acc.device.type)
            if not is_sharded(model):
                raise RuntimeError("fully_shard left the model's parameters unsharded")
            logger.info(
                "FSDP2: %d blocks and the root sharded over %d processes", self.fsdp_blocks, acc.num_processes
            )
        optimizer = build_optimizer(
            model, config.optimizer, config.lr, config.weight_decay, config.betas, config.eps, config.momentum
        )
        self.scheduler = build_scheduler(
            optimizer, config.warmup_steps, config.max_steps, config.schedule, config.min_lr_ratio
        )
        if self.fsdp:
            self.model, self.optimizer = model, acc.prepare(optimizer)
        else:
            self.model, self.optimizer = acc.prepare(model, optimizer)
        self.metrics = MetricsLog(self.run_dir / "metrics.jsonl")
        self.step = 0
        self.epoch = 0
        self.batch_in_epoch = 0
        self.best: float | None = None
        self.best_step: int | None = None
        self.bad_evals = 0
        self.loss_parts: dict[str, float] = {}  # per-objective losses since the last log row
        self.loss_steps = 0

    # ---- state ------------------------------------------------------------------------------
    @property
    def unwrapped(self) -> torch.nn.Module:
        return self.accelerator.unwrap_model(self.model)

    @property
    def main_model(self) -> torch.nn.Module:
        """On the main process, the whole model to read after `fit`: the unwrapped one, or under
        FSDP the plain copy holding the weights gathered at the end of `fit`."""
        return self.plain if self.fsdp else self.unwrapped

    @property
    def parallelism(self) -> str:
        """What really ran: `fsdp2` (parameters are DTensors), `ddp`, or `single`."""
        if self.fsdp and is_sharded(self.model):
            return "fsdp2"
        return "ddp" if self.accelerator.num_processes > 1 else "single"

    def gathered(self) -> tuple[torch.nn.Module | None, dict[str, Any] | None]:
        """A plain (unsharded) model with the current weights, and the full optimizer state
        (None: take `optimizer.state_dict()`), on the main process; (None, None) elsewhere.
        Under FSDP a collective: every process must call it."""
        if not self.fsdp:
            return (self.unwrapped if self.accelerator.is_main_process else None), None
        model_state, optimizer_state = full_state(self.model, self.optimizer.optimizer)
        if self.plain is None:
            return None, None
        self.plain.load_state_dict(model_state)
        return self.plain, optimizer_state

    def trainer_state(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "batch_in_epoch": self.batch_in_epoch,
            "best": self.best,
            "best_step": self.best_step,
            "bad_evals": self.bad_evals,
            "world_size": self.accelerator.num_processes,
            "parallelism": self.parallelism,
        }

    def save_checkpoint(self) -> None:
        self.accelerator.wait_for_everyone()
        model, optimizer_state = self.gathered()
        if self.accelerator.is_main_process:
            root = self.run_dir / "checkpoints"
            save_checkpoint(
                root,
                self.step,
                model,
                self.optimizer,
                self.scheduler,
                self.trainer_state(),
                optimizer_state=optimizer_state,
            )
            prune_checkpoints(root, self.config.keep_checkpoints)
        self.accelerator.wait_for_everyone()

    def resume(self) -> bool:
        """Continue from the newest complete checkpoint; False when there is none."""
        path = latest_checkpoint(self.run_dir / "checkpoints")
        if path is None:
            return False
        restore = None
        if self.fsdp:

            def restore(model_state, optimizer_state):
                load_full_state(self.model, self.optimizer.optimizer, model_state, optimizer_state)

        state = load_checkpoint(path, self.unwrapped, self.optimizer, self.scheduler, restore=restore)
        if state.get("world_size", 1) != self.accelerator.num_processes:
            logger.warning(
                "resuming a %s-process run with %s processes",
                state["world_size"],
                self.accelerator.num_processes,
            )
        self.step = state["step"]
        self.epoch, self.batch_in_epoch = state["epoch"], state["batch_in_epoch"]
        self.best, self.best_step, self.bad_evals = state["best"], state["best_step"], state["bad_evals"]
        if self.accelerator.is_main_process:
            self.metrics.truncate_after(self.step)
        logger.info("resumed from %s (step %d)", path, self.step)
        return True

    # ---- evaluation ------------------------------------------------------------------------
    def improved(self, value: float) -> bool:
        if self.best is None or math.isnan(self.best):
            return True
        return value > self.best if self.config.early_stopping.mode == "max" else value < self.best

    def default_score(self, metrics: dict[str, float]) -> float:
        """Higher is better: the evaluator's own `score`, else minus the validation loss."""
        score = getattr(self.evaluator, "score", None)
        return float(score(metrics)) if score is not None else -metrics.get("val/loss", 0.0)

    def evaluate(self) -> bool:
        """Run the evaluator, log, keep `best/`; returns True when early stopping says stop."""
        if self.evaluator is None:
            return False
        self.accelerator.wait_for_everyone()
        stop = False
        model, _ = self.gathered()
        if self.accelerator.is_main_process:
            metrics = self.evaluator(model)
            self.metrics.append({"step": self.step, **metrics})
            es = self.config.early_stopping
            key = es.metric
            if key is not None and key not in metrics:
                raise KeyError(f"early_stopping.metric '{key}' is not among the metrics: {sorted(metrics)}")
            value = metrics[key] if key else self.default_score(metrics)
            if self.improved(value):
                self.best, self.best_step, self.bad_evals = value, self.step, 0
                atomic_dir(self.run_dir / "best", model.save_pretrained)
            else:
                self.bad_evals += 1
                stop = key is not None and self.bad_evals >= es.patience
        if self.accelerator.num_processes > 1:  # every process must stop together
            flag = torch.tensor([int(stop)], device=self.accelerator.device)
            torch.distributed.broadcast(flag, src=0)
            stop = bool(flag.item())
        return stop

    def kind_log(self) -> dict[str, float]:
        """What the model's kind logs beside the loss (its spec's `train_log`, e.g. logit_scale)."""
        spec = find_spec(self.unwrapped)
        return spec.train_log(self.unwrapped) if spec is not None and spec.train_log else {}

    # ---- the loop --------------------------------------------------------------------------
    def batches(self):
        """Endless micro-batches from the current data position, advancing epochs."""
        while True:
            self.sampler.set_epoch(self.epoch, self.batch_in_epoch)
            self.collator.epoch = self.epoch
            for batch in self.loader:
                self.batch_in_epoch += 1
                yield batch
            self.epoch, self.batch_in_epoch = self.epoch + 1, 0

    def train_step(self, micro_batches: list[dict[str, torch.Tensor]]) -> float:
        """One optimiser step over `micro_batches`; returns the loss of the global batch.

        An output with a `loss_weight` (its loss is a mean over that many elements, e.g. the
        labelled tokens of a captioner) is weighted by it: the gradient is that of the mean over
        every element of every micro-batch on every process, as one process with the whole batch
        would compute it. Other outputs weigh each micro-batch (and process) equally.
        """
        acc, model = self.accelerator, self.model
        total = 0.0
        weighted = torch.zeros(2, dtype=torch.float64)  # sum of loss * weight, sum of weight
        for i, batch in enumerate(micro_batches):
            batch = {k: v.to(acc.device) for k, v in batch.items() if k != "index"}
            sync = i == len(micro_batches) - 1
            if self.fsdp:  # FSDP2: reduce-scatter the gradients on the last micro-batch only
                model.set_requires_gradient_sync(sync)
            ctx = (
                acc.no_sync(model) if not sync and acc.num_processes > 1 and not self.fsdp else nullcontext()
            )
            with ctx, acc.autocast():
                out = model(batch)
                weight = getattr(out, "loss_weight", None)
                if weight is not None:
                    weight = weight.detach().float()
                    loss = out.loss * weight  # summed here, divided by the global weight below
                    weighted += torch.stack([loss.detach().double().cpu(), weight.double().cpu()])
                else:
                    loss = out.loss / len(micro_batches)
            acc.backward(loss)
            total += float(loss.detach())
            for name, part in (getattr(out, "losses", None) or {}).items():  # each objective apart
                self.loss_parts[name] = self.loss_parts.get(name, 0.0) + float(part.detach()) / len(
                    micro_batches
                )
        if weighted[1] > 0:
            total = self._global_mean(weighted)
        self.loss_steps += 1
        if self.config.max_grad_norm:
            acc.clip_grad_norm_(model.parameters(), self.config.max_grad_norm)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return total

    def _global_mean(self, weighted: torch.Tensor) -> float:
        """Turn the gradients of sum(loss * weight) (averaged over processes by DDP) into those of
        the global weighted mean; returns that mean."""
        acc = self.accelerator
        if acc.num_processes > 1:
            weighted = weighted.to(acc.device)
            torch.distributed.all_reduce(weighted)
            weighted = weighted.cpu()
        loss_sum, weight_sum = weighted.tolist()
        scale = acc.num_processes / max(weight_sum, 1.0)
        for p in self.model.parameters():
            if p.grad is not None:
                p.grad.mul_(scale)
        return loss_sum / max(weight_sum, 1.0)

    def fit(self, resume: bool = False) -> TrainResult:
        cfg, acc = self.config, self.accelerator
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if resume:
            self.resume()
        elif acc.is_main_process and self.metrics.path.exists():
            self.metrics.path.unlink()
        writer = self._tensorboard() if cfg.tensorboard and acc.is_main_process else None
        self.model.train()
        stream = self.batches()
        bar = progress_bar(
            total=cfg.max_steps,
            initial=self.step,
            desc="train",
            disable=not (cfg.progress and acc.is_main_process),
            dynamic_ncols=True,
        )
        started, seen, stopped = time.perf_counter(), 0, False
        window: list[float] = []
        while self.step < cfg.max_steps and not stopped:
            micro = [next(stream) for _ in range(cfg.grad_accum)]
            loss = self.train_step(micro)
            self.step += 1
            seen += sum(len(b["index"]) for b in micro) * acc.num_processes
            window.append(loss)
            rate = seen / max(time.perf_counter() - started, 1e-9)
            bar.update(1)
            if self.step % cfg.log_every == 0 or self.step == cfg.max_steps:
                row = {
                    "step": self.step,
                    "epoch": self.epoch,
                    "train/loss": sum(window) / len(window),
                    "train/lr": self.scheduler.get_last_lr()[0],
                    "train/samples_per_s": rate,
                    **{f"train/{k}": v for k, v in self.kind_log().items()},
                }
                window = []
                row.update({f"train/loss_{k}": v / self.loss_steps for k, v in self.loss_parts.items()})
                self.loss_parts, self.loss_steps = {}, 0
                bar.set_postfix(loss=f"{row['train/loss']:.4f}", samples_s=f"{rate:.0f}")
                if acc.is_main_process:
                    self.metrics.append(row)
                    if writer:
                        for k, v in row.items():
                            if isinstance(v, float):
                                writer.add_scalar(k, v, self.step)
            if due(self.step, cfg.eval_every):
                stopped = self.evaluate()
            if due(self.step, cfg.checkpoint_every):
                self.save_checkpoint()
        bar.close()
        # the final state is always evaluated and checkpointed (once)
        if self.evaluator is not None and not due(self.step, cfg.eval_every):
            self.evaluate()
        if not due(self.step, cfg.checkpoint_every):
            self.save_checkpoint()
        if self.evaluator is None:
            model, _ = self.gathered()
            if acc.is_main_process:
                atomic_dir(self.run_dir / "best", model.save_pretrained)
        self.policy.log()
        if writer:
            writer.close()
        elapsed = time.perf_counter() - started
        return TrainResult(
            step=self.step,
            metrics=self.metrics.rows(),
            best_metric=self.best,
            best_step=self.best_step,
            stopped_early=stopped,
            run_dir=self.run_dir,
            seconds=elapsed,
            samples_per_second=seen / max(elapsed, 1e-9),
        )

    def _tensorboard(self):
        from omnifuse._optional import require

        tb = require("torch.utils.tensorboard", "tensorboard", "TensorBoard logging")
        return tb.SummaryWriter(str(self.run_dir / "tensorboard"))
