"""Knowledge distillation from a teacher artifact into a smaller student.

DualEncoder: embedding distillation (1 - cosine to the teacher's embeddings, per modality) plus
logit distillation — KL between the teacher's and the student's similarity matrices at
temperature T, both directions (as in CLIP-KD, Yang et al. 2024, arXiv:2307.12732).
Classifiers (anything whose `forward(batch)` has `.logits`): KL on the class logits at
temperature T (Hinton et al. 2015, "Distilling the Knowledge in a Neural Network",
arXiv:1503.02531). Both add `task_weight` times the student's own loss.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from omnifuse.deploy.compress.base import CompressContext, CompressOptions, MethodResult, register_method
from omnifuse.deploy.compress.finetune import finetune
from omnifuse.encoders.presets import preset_config
from omnifuse.models.factory import load_model
from omnifuse.models.registry import get_spec, spec_of

SIZE_FIELDS = ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size")


def kl_logits(student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    """T^2 * KL(softmax(teacher / T) || softmax(student / T)), mean over rows. (N, C) each."""
    t = F.log_softmax(teacher.float() / temperature, dim=-1)
    s = F.log_softmax(student.float() / temperature, dim=-1)
    return F.kl_div(s, t, log_target=True, reduction="batchmean") * temperature**2


def dual_encoder_distill_loss(
    student: nn.Module, teacher: nn.Module, batch: dict[str, torch.Tensor], opts: CompressOptions
) -> torch.Tensor:
    present = [m for m in student.modalities if m in batch]
    s_emb = {m: student.encode(m, batch) for m in present}  # (B, E) each, normalised
    with torch.no_grad():
        t_emb = {m: teacher.encode(m, batch) for m in present}
    loss = s_emb[present[0]].new_zeros(())
    if opts.embed_weight:
        cos = torch.stack([(1 - (s_emb[m] * t_emb[m]).sum(-1)).mean() for m in present])
        loss = loss + opts.embed_weight * cos.mean()
    pairs = student.pairs(present)
    if opts.logit_weight and pairs:
        kl = []
        for a, b in pairs:
            s_logits = student.similarity(s_emb[a], s_emb[b])  # (B, B)
            with torch.no_grad():
                t_logits = teacher.similarity(t_emb[a], t_emb[b])  # (B, B)
            kl.append(kl_logits(s_logits, t_logits, opts.temperature))
            kl.append(kl_logits(s_logits.T, t_logits.T, opts.temperature))
        loss = loss + opts.logit_weight * torch.stack(kl).mean()
    if opts.task_weight and pairs:
        scale = student.scale()
        task = [student.loss_fn(s_emb[a], s_emb[b], scale, student.logit_bias) for a, b in pairs]
        loss = loss + opts.task_weight * torch.stack(task).sum()
    return loss


def logits_distill_loss(
    student: nn.Module, teacher: nn.Module, batch: dict[str, torch.Tensor], opts: CompressOptions
) -> torch.Tensor:
    out = student(batch)
    with torch.no_grad():
        t_logits = teacher(batch).logits  # (B, C)
    loss = opts.logit_weight * kl_logits(out.logits, t_logits, opts.temperature)
    if opts.task_weight and out.loss is not None:
        loss = loss + opts.task_weight * out.loss
    return loss


def distill_loss(student, teacher, batch, opts: CompressOptions) -> torch.Tensor:
    """Embedding distillation for kinds that `embed`, logit distillation for trained heads."""
    spec = spec_of(student)
    if spec.can("embed"):
        return dual_encoder_distill_loss(student, teacher, batch, opts)
    spec.require("classify", "distill (embeddings or logits to match)")
    return logits_distill_loss(student, teacher, batch, opts)


def _shrink_tower(tower: dict[str, Any], preset: str, overrides: dict[str, Any]) -> dict[str, Any]:
    if "hf_config" not in tower:
        raise ValueError(
            f"distill: cannot resize a '{tower.get('type')}' tower with a preset; pass a student"
        )
    sizes = preset_config("bert", preset).to_dict()
    hf = {**tower["hf_config"], **{k: sizes[k] for k in SIZE_FIELDS}, **overrides}
    return {**tower, "hf_config": hf}


def student_config(teacher_config: dict[str, Any], preset: str, overrides: dict[str, Any]) -> dict[str, Any]:
    """The teacher's config with every tower at `preset` size (+ overrides); same embed_dim.

    A preset resizes the `towers` (with their `projections`) of a kind that can `embed`; for
    other kinds pass a student artifact."""
    kind = teacher_config.get("model_type")
    if (
        not get_spec(kind).can("embed")
        or "towers" not in teacher_config
        or "projections" not in teacher_config
    ):
        raise ValueError(
            f"distill: a student preset resizes the towers of a model that can 'embed' (a dual encoder); "
            f"for a '{kind}' pass a student artifact (--student DIR)"
        )
    config = copy.deepcopy(teacher_config)
    config["towers"] = {m: _shrink_tower(t, preset, overrides) for m, t in config["towers"].items()}
    for m, proj in config["projections"].items():
        proj["in_dim"] = config["towers"][m]["hf_config"]["hidden_size"]
    return config


def build_student(teacher: nn.Module, ctx: CompressContext, student: nn.Module | None) -> nn.Module:
    if student is not None:
        if spec_of(student).name != spec_of(teacher).name:
            raise ValueError("distill: the student must be the same model type as the teacher")
        if student.processor.fingerprint() != teacher.processor.fingerprint():
            raise ValueError(
                "distill: the student's preprocessing (processor.json) differs from the teacher's"
            )
        return student
    opts = ctx.options
    config = student_config(ctx.source_config, opts.student_preset, opts.student_overrides)
    torch.manual_seed(opts.seed)
    model = type(teacher).from_config(config, teacher.processor)
    with torch.no_grad():
        model.logit_scale.copy_(teacher.logit_scale)
    return model


@register_method("distill")
def distill(model: nn.Module, ctx: CompressContext) -> MethodResult:
    opts = ctx.options
    train = ctx.require_train("distill", "distillation")
    if opts.distill_steps < 1:
        raise ValueError("distill needs --steps >= 1")
    teacher = model.eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    student = build_student(teacher, ctx, load_model(opts.student).train() if opts.student else None)
    losses = finetune(
        student, train, opts.distill_steps, loss_fn=lambda s, b: distill_loss(s, teacher, b, opts),
        lr=opts.lr, batch_size=opts.batch_size, seed=opts.seed, desc="distill", progress=opts.progress,
    )  # fmt: skip
    config = student.to_config()
    compression = {
        "method": "distill",
        "teacher": str(ctx.source_dir),
        "student": opts.student or {"preset": opts.student_preset, "overrides": opts.student_overrides},
        "temperature": opts.temperature,
        "steps": opts.distill_steps,
    }
    details = {"first_loss": losses[0], "last_loss": losses[-1], "steps": len(losses)}
    return MethodResult(student, compression, details, config=config)
