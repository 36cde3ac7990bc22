"""Recipe config (+ processor, training samples) -> a fresh MultiTaskModel; its training targets."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from omnifuse.data.processors import Processor
from omnifuse.data.sample import Sample
from omnifuse.data.targets import TargetEncoder, Targets
from omnifuse.models.heads import TaskSpec
from omnifuse.models.multimodal_build import build_parts, resolve_task
from omnifuse.models.multitask.config import MultiTaskConfig
from omnifuse.models.multitask.tasks import label_batch_key


def build(
    cls: type[nn.Module],
    cfg: MultiTaskConfig,
    processor: Processor,
    samples: Sequence[Sample] | None = None,
) -> nn.Module:
    """`cls` is the MultiTaskModel class (bound by the registry); each task's class names come
    from its config or else from the labels of `samples`."""
    encoders, fusion = build_parts(cfg, processor, None)
    specs = {}
    for t, task in cfg.tasks.items():
        names, _ = resolve_task(task, samples)
        specs[t] = TaskSpec(task.kind, names, task.label, task.weight)
    return cls(
        encoders, fusion, specs, sharing=cfg.sharing,
        loss_weighting=cfg.loss_weighting, soft_l2=cfg.soft_l2, head_hidden=cfg.head_hidden,
        dropout=cfg.dropout, inputs=cfg.inputs, processor=processor,
    )  # fmt: skip


def targets(model: nn.Module) -> Targets:
    """One label encoder per task, each filling `labels/<task>` in the batch."""
    return Targets(
        [
            TargetEncoder(s.label_key, s.kind, s.class_names, label_batch_key(t))
            for t, s in model.tasks.items()
        ]
    )
