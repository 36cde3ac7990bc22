"""A small focused fine-tuning loop for recovery after pruning, QAT and distillation.

Not the full Trainer (no checkpoints, no accelerate): a few hundred AdamW steps on one process,
with a hook after each step (e.g. re-applying pruning masks) and a progress bar.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from omnifuse.data.sample import Sample
from omnifuse.deploy.compress.data import iterate_batches
from omnifuse.utils.progress import progress_bar

LossFn = Callable[[nn.Module, dict[str, torch.Tensor]], torch.Tensor]


def task_loss(model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """The model's own training loss: `forward(batch).loss`."""
    loss = model(batch).loss
    if loss is None:
        raise ValueError(f"{type(model).__name__}.forward gave no loss on this batch (missing labels/pairs?)")
    return loss


def finetune(
    model: nn.Module,
    samples: Sequence[Sample],
    steps: int,
    loss_fn: LossFn = task_loss,
    lr: float = 1e-4,
    batch_size: int = 32,
    seed: int = 0,
    after_step: Callable[[], None] | None = None,
    desc: str = "finetune",
    progress: bool = True,
) -> list[float]:
    """`steps` AdamW steps of `loss_fn(model, batch)` over shuffled, augmented batches; the losses."""
    if steps <= 0:
        return []
    torch.manual_seed(seed)
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("the model has no trainable parameters to fine-tune")
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    model.train()
    losses: list[float] = []
    batches = iterate_batches(model, samples, batch_size, train=True, seed=seed, repeat=True)
    bar = progress_bar(range(steps), desc=desc, disable=not progress, leave=False)
    for _ in bar:
        loss = loss_fn(model, next(batches))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        if after_step is not None:
            after_step()
        losses.append(float(loss.detach()))
        bar.set_postfix(loss=f"{losses[-1]:.4f}")
    model.eval()
    return losses


def recover(model: nn.Module, ctx, method: str, after_step: Callable[[], None] | None = None) -> list[float]:
    """Recovery fine-tuning after a lossy method (pruning, low-rank): `--finetune-steps` steps of
    the model's own loss on `--train` (none when the option is 0); the losses."""
    opts = ctx.options
    if not opts.finetune_steps:
        return []
    train = ctx.require_train(method, "recovery fine-tuning")
    return finetune(
        model, train, opts.finetune_steps, lr=opts.lr, batch_size=opts.batch_size, seed=opts.seed,
        after_step=after_step, desc="recover", progress=opts.progress,
    )  # fmt: skip
