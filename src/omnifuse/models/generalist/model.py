"""A Gato-style generalist: one decoder-only transformer over text, image patches, observations and actions.

Reed et al. 2022, "A Generalist Agent", https://arxiv.org/abs/2205.06175; Hugging Face's JAT
(`jat/modeling_jat.py`). The token stream comes from :class:`omnifuse.data.episodes.GatoTokenizer`;
token ids are embedded by the HF causal LM's own embedding table, image / grid patches by a
linear layer per patch kind at their placeholder positions, and a learned local position is
added inside each observation. The loss is next-token cross-entropy on text and action tokens.

Acting (`act`) feeds `[demonstration] [mission] (obs | act)* obs |` and picks each action token
among the ids valid for the task's action (discrete values or continuous bins).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from omnifuse.data.episodes.envs import observation_fields
from omnifuse.data.episodes.processor import MODALITY
from omnifuse.data.episodes.spaces import TaskSpace
from omnifuse.data.episodes.tokenize import PATCH_KINDS, TokenSequence
from omnifuse.data.processors import Processor
from omnifuse.models.artifact import ArtifactMixin
from omnifuse.models.generalist.build import build, prepare
from omnifuse.models.generalist.config import BACKBONES, GeneralistConfig
from omnifuse.models.registry import register_model_kind


@dataclass
class GeneralistOutput:
    """loss: mean cross-entropy over target tokens; logits: (B, T, V)."""

    loss: torch.Tensor
    logits: torch.Tensor


VALUE_FREQUENCIES = 8
"""Sine/cosine pairs of the value features of continuous tokens."""


def value_features(value: torch.Tensor) -> torch.Tensor:
    """(...,) companded values in [-1, 1] -> (..., 1 + 2F): the value, sin and cos at F octaves."""
    freqs = torch.pi * 2.0 ** torch.arange(VALUE_FREQUENCIES, device=value.device, dtype=value.dtype)
    angles = value.unsqueeze(-1) * freqs  # (..., F)
    return torch.cat([value.unsqueeze(-1), angles.sin(), angles.cos()], dim=-1)


class UntrainedTaskError(ValueError):
    """The model is asked to act in an environment it has never seen in training."""


def build_lm_config(cfg: GeneralistConfig, vocab_size: int, eos_id: int, pad_id: int):
    """An HF causal-LM config for the backbone, sized by `cfg` (a pretrained one keeps its own sizes)."""
    from transformers import AutoConfig, GPT2Config, GPTNeoConfig, LlamaConfig

    ids = {"bos_token_id": eos_id, "eos_token_id": eos_id, "pad_token_id": pad_id, "vocab_size": vocab_size}
    if cfg.backbone == "gpt2":
        return GPT2Config(
            n_positions=cfg.context_length,
            n_embd=cfg.hidden_size,
            n_layer=cfg.num_layers,
            n_head=cfg.num_heads,
            resid_pdrop=cfg.dropout,
            embd_pdrop=cfg.dropout,
            attn_pdrop=cfg.dropout,
            **ids,
        )
    if cfg.backbone == "gpt_neo":
        return GPTNeoConfig(
            max_position_embeddings=cfg.context_length,
            hidden_size=cfg.hidden_size,
            num_layers=cfg.num_layers,
            num_heads=cfg.num_heads,
            attention_types=[[["global"], cfg.num_layers]],
            resid_dropout=cfg.dropout,
            embed_dropout=cfg.dropout,
            attention_dropout=cfg.dropout,
            **ids,
        )
    if cfg.backbone == "llama":
        return LlamaConfig(
            hidden_size=cfg.hidden_size,
            intermediate_size=4 * cfg.hidden_size,
            num_hidden_layers=cfg.num_layers,
            num_attention_heads=cfg.num_heads,
            num_key_value_heads=cfg.num_heads,
            max_position_embeddings=cfg.context_length,
            attention_dropout=cfg.dropout,
            **ids,
        )
    from omnifuse.utils.paths import resolve_model_path

    lm_config = AutoConfig.from_pretrained(resolve_model_path(cfg.backbone))
    lm_config.update(ids)
    return lm_config


@register_model_kind(
    "generalist",
    config=GeneralistConfig,
    build=build,
    modalities=lambda cfg: [MODALITY],
    capabilities=["act", "generate_text"],
    prepare=prepare,
)
class Generalist(ArtifactMixin, nn.Module):
    """One set of weights that acts in the environments it was trained on, captions and answers."""

    def __init__(
        self,
        config: GeneralistConfig,
        processor: Processor,
        tasks: dict[str, TaskSpace] | None = None,
        lm_config: dict[str, Any] | None = None,
    ):
        super().__init__()
        from transformers import AutoConfig, AutoModelForCausalLM

        if config.backbone not in BACKBONES and lm_config is None:
            from omnifuse.utils.paths import resolve_model_path

            self.lm = AutoModelForCausalLM.from_pretrained(resolve_model_path(config.backbone))
        self.config = config
        self.processor = processor
        self.gato = processor[MODALITY]
        tok = self.gato.tokenizer
        self.tasks = dict(tasks or {})
        self.modalities = [MODALITY]
        if lm_config is not None:
            lm_cfg = AutoConfig.for_model(**lm_config)
            self.lm = AutoModelForCausalLM.from_config(lm_cfg)
        elif config.backbone in BACKBONES:
            self.lm = AutoModelForCausalLM.from_config(
                build_lm_config(config, tok.vocab_size, tok.eos_id, tok.pad_id)
            )
        else:
            self.lm.resize_token_embeddings(tok.vocab_size)
            self.lm.config.update(
                {"eos_token_id": tok.eos_id, "pad_token_id": tok.pad_id, "bos_token_id": tok.eos_id}
            )
        hidden = self.lm.get_input_embeddings().embedding_dim
        self.patch_embed = nn.ModuleDict({k: nn.Linear(d, hidden) for k, d in sorted(tok.patch_dims.items())})
        self.local_embed = nn.Embedding(config.max_local_positions, hidden, padding_idx=0)
        self.value_embed = nn.Linear(1 + 2 * VALUE_FREQUENCIES, hidden) if config.value_embedding else None

    # ---- artifact -------------------------------------------------------------------------------
    def to_config(self) -> dict[str, Any]:
        cfg = dataclasses.asdict(self.config)
        cfg["mixture"] = {}  # where the training data was is not part of the architecture
        return {
            "model_type": self.model_type,
            "config": cfg,
            "lm_config": self.lm.config.to_dict(),
            "tasks": {env_id: space.to_dict() for env_id, space in sorted(self.tasks.items())},
        }

    @classmethod
    def from_config(cls, config: dict[str, Any], processor: Processor) -> Generalist:
        tasks = {k: TaskSpace.from_dict(v) for k, v in config.get("tasks", {}).items()}
        return cls(GeneralistConfig(**config["config"]), processor, tasks, lm_config=config["lm_config"])

    # ---- forward --------------------------------------------------------------------------------
    def embed(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        tokens = batch["tokens"]  # (B, T)
        x = self.lm.get_input_embeddings()(tokens)  # (B, T, D)
        b, t, d = x.shape
        flat = x.reshape(b * t, d)  # (B*T, D)
        for kind in PATCH_KINDS:
            if f"{kind}_patches" in batch:
                patches = self.patch_embed[kind](batch[f"{kind}_patches"].to(flat.dtype))  # (N, D)
                flat = flat.index_copy(0, batch[f"{kind}_patch_at"], patches)
        local = batch["local_pos"].clamp(max=self.config.max_local_positions - 1)  # (B, T)
        x = flat.view(b, t, d) + self.local_embed(local)  # (B, T, D)
        if self.value_embed is not None:
            tok = self.gato.tokenizer
            bins = tokens - tok.continuous_offset  # (B, T)
            continuous = (bins >= 0) & (bins < tok.n_bins)  # (B, T)
            value = (
                bins.clamp(0, tok.n_bins - 1).to(x.dtype) + 0.5
            ) / tok.n_bins * 2 - 1  # (B, T) in [-1, 1]
            x = x + continuous.unsqueeze(-1) * self.value_embed(value_features(value))  # (B, T, D)
        return x

    def forward(self, batch: dict[str, torch.Tensor]) -> GeneralistOutput:
        embeds = self.embed(batch)  # (B, T, D)
        attn = batch["attention_mask"]  # (B, T)
        logits = self.lm(inputs_embeds=embeds, attention_mask=attn).logits  # (B, T, V)
        target = batch["tokens"][:, 1:]  # (B, T-1)
        mask = batch["loss_mask"][:, 1:].bool() & attn[:, 1:].bool()  # (B, T-1)
        if mask.any():
            loss = F.cross_entropy(logits[:, :-1][mask].float(), target[mask])
        else:
            loss = logits.sum() * 0.0
        return GeneralistOutput(loss, logits)

    # ---- acting ---------------------------------------------------------------------------------
    def task_space(self, env_id: str) -> TaskSpace:
        if env_id not in self.tasks:
            trained = ", ".join(sorted(self.tasks)) or "no environment"
            raise UntrainedTaskError(
                f"this generalist was never trained on '{env_id}'; it was trained on {trained}"
            )
        return self.tasks[env_id]

    def _device(self) -> torch.device:
        return next(self.parameters()).device

    @torch.no_grad()
    def _next_logits(self, seqs: Sequence[TokenSequence]) -> torch.Tensor:
        batch = self.gato.tokenizer.collate(seqs)
        batch = {k: v.to(self._device()) for k, v in batch.items()}
        logits = self.forward(batch).logits  # (B, T, V)
        last = batch["attention_mask"].sum(1) - 1  # (B,)
        return logits[torch.arange(len(seqs), device=last.device), last].float()  # (B, V)

    def act_batch(
        self,
        env_id: str,
        observations: Sequence[Any],
        histories: Sequence[Sequence[tuple[Any, Any]]],
        prompts: Sequence[TokenSequence | None] | None = None,
        temperature: float = 0.0,
        generator: torch.Generator | None = None,
        max_history: int | None = None,
    ) -> list[np.ndarray]:
        """One action per environment: raw observations, their (raw observation, action) histories,
        optional demonstration prompts (:meth:`demonstration_prompt`). Greedy unless `temperature` > 0.

        The newest history steps that fit the context are used, at most `max_history` of them and
        fewer than the training windows' `window_steps` (fewer steps: faster acting; training windows
        also start anywhere, so short histories are in distribution)."""
        space = self.task_space(env_id)
        tok = self.gato.tokenizer
        per_step = tok.step_tokens(space)
        prompts = list(prompts) if prompts is not None else [None] * len(observations)
        seqs = []
        for raw, history, prompt in zip(observations, histories, prompts):
            fields, mission = observation_fields(raw)
            fixed = (len(prompt) if prompt is not None else 0) + (
                len(tok.encode_text(mission)) if space.mission else 0
            )
            keep = max(0, (self.gato.context_length - fixed - per_step) // per_step)
            if self.gato.window_steps is not None:  # never more past steps than training windows had
                keep = min(keep, self.gato.window_steps - 1)
            if max_history is not None:
                keep = min(keep, max_history)
            recent = list(history)[-keep:] if keep else []
            past = [(observation_fields(o)[0], np.asarray(a).reshape(-1)) for o, a in recent]
            seqs.append(tok.act_prompt(space, mission, past, fields, prompt))
        chosen: list[list[int]] = [[] for _ in seqs]
        for lo, hi in tok.action_choices(space):
            current = [_append(s, c) for s, c in zip(seqs, chosen)]
            logits = self._next_logits(current)[:, lo:hi]  # (B, choices)
            if temperature > 0:
                probs = torch.softmax(logits / temperature, dim=-1)
                pick = torch.multinomial(probs, 1, generator=generator)[:, 0]
            else:
                pick = logits.argmax(-1)
            for row, p in zip(chosen, pick.tolist()):
                row.append(lo + int(p))
        return [tok.decode_action(space, c) for c in chosen]

    def act(
        self,
        observation: Any,
        history: Sequence[tuple[Any, Any]] = (),
        env_id: str | None = None,
        prompt: TokenSequence | None = None,
    ) -> np.ndarray:
        """The action for a raw environment observation given the episode so far."""
        if env_id is None:
            if len(self.tasks) != 1:
                raise ValueError(f"name the environment: this generalist acts in {sorted(self.tasks)}")
            env_id = next(iter(self.tasks))
        return self.act_batch(env_id, [observation], [history], [prompt])[0]

    def demonstration_prompt(self, episode) -> TokenSequence:
        """Gato's prompt: the last `prompt_steps` steps of a demonstration of the same task."""
        space = self.task_space(episode.env_id)
        k = min(self.gato.prompt_steps, len(episode))
        return self.gato.tokenizer.episode_sequence(space, episode, len(episode) - k, len(episode))

    # ---- text -----------------------------------------------------------------------------------
    @torch.no_grad()
    def generate_text(self, images: Sequence[Any], questions: Sequence[str] | None = None, settings=None):
        """Captions (no questions) or answers for images, decoded by the shared generation layer."""
        from omnifuse.generation import GenerationSettings, hf_generate

        tok = self.gato.tokenizer
        settings = settings or GenerationSettings(max_new_tokens=16)
        if questions is None:
            seqs = [tok.caption_sequence(img) for img in images]
        else:
            if len(questions) != len(images):
                raise ValueError(f"{len(images)} images but {len(questions)} questions")
            seqs = [tok.vqa_sequence(img, q) for img, q in zip(images, questions)]
        batch = _left_collate(seqs, tok)
        batch = {k: v.to(self._device()) for k, v in batch.items()}
        embeds = self.embed(batch)
        non_text = [i for i in range(tok.text_size, tok.vocab_size) if i != tok.eos_id]
        specials = list(getattr(tok.text_tokenizer, "all_special_ids", []))
        out = hf_generate(
            self.lm,
            tok.text_tokenizer,
            batch["tokens"],
            batch["attention_mask"],
            settings,
            eos_token_id=tok.eos_id,
            suppress_token_ids=non_text + specials,
            inputs_embeds=embeds,
        )
        return out


def _append(seq: TokenSequence, ids: Sequence[int]) -> TokenSequence:
    if not ids:
        return seq
    n = len(ids)
    return TokenSequence(
        np.concatenate([seq.tokens, np.asarray(ids, dtype=np.int64)]),
        np.concatenate([seq.loss_mask, np.zeros(n, bool)]),
        np.concatenate([seq.local_pos, np.zeros(n, np.int64)]),
        seq.patches,
        seq.patch_at,
    )


def _left_collate(seqs: Sequence[TokenSequence], tok) -> dict[str, torch.Tensor]:
    """Left-padded batch (decoder-only generation continues from the right end)."""
    width = max(len(s) for s in seqs)
    shifted = []
    for s in seqs:
        pad = width - len(s)
        shifted.append(
            TokenSequence(
                np.concatenate([np.full(pad, tok.pad_id, np.int64), s.tokens]),
                np.concatenate([np.zeros(pad, bool), s.loss_mask]),
                np.concatenate([np.zeros(pad, np.int64), s.local_pos]),
                s.patches,
                {k: v + pad for k, v in s.patch_at.items()},
            )
        )
    batch = tok.collate(shifted)
    mask = torch.zeros_like(batch["attention_mask"])
    for i, s in enumerate(seqs):
        mask[i, width - len(s) :] = 1
    batch["attention_mask"] = mask
    return batch
