"""The captioner: a vision tower and a causal LM joined by gated cross-attention or prefix tokens.

Flamingo: Alayrac et al. 2022, arXiv:2204.14198; open reimplementation OpenFlamingo (Awadalla et
al. 2023, arXiv:2308.01390). Prefix connector: LLaVA (Liu et al. 2023, arXiv:2304.08485).

The LM is any HF causal LM and is left untouched: the captioner conditions it through forward
hooks, so HF `generate` (greedy, beam search, sampling, with or without the KV cache) runs on the
LM itself.

- a pre-hook on the LM's forward reads `input_ids` and works out, per token, the index of the most
  recent `<image>` (continuing the count across KV-cached decoding steps);
- `xattn`: a pre-hook on every `cross_attn_every`-th decoder layer adds the tanh-gated
  cross-attention block's output to the layer's input hidden states;
- a hook on the input embeddings writes the trainable embeddings of `<image>` and
  `<|endofchunk|>` (and, for `prefix`, the projected visual tokens at the `<image>` positions);
- a hook on the output layer writes the logits of the two new tokens (tied to those embeddings).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from omnifuse.data.processors import Processor
from omnifuse.encoders.base import Encoder
from omnifuse.encoders.freezing import transformer_layers
from omnifuse.generation import GenerationError, GenerationOutput, GenerationSettings, hf_generate, left_pad
from omnifuse.models.artifact import ArtifactMixin
from omnifuse.models.captioner.blocks import GatedCrossAttentionBlock, PerceiverResampler, PrefixProjector
from omnifuse.models.captioner.build import build, decode_workload, prepare, rebuild_lm
from omnifuse.models.captioner.config import END_OF_CHUNK, IMAGE_TOKEN, CaptionerConfig
from omnifuse.models.captioner.processing import IGNORE, count_images, read_few_shot
from omnifuse.models.registry import register_model_kind
from omnifuse.utils.config import from_dict, to_dict


@dataclass
class CaptionerOutput:
    """loss: mean next-token cross-entropy over labelled tokens; logits: (B, T, V);
    loss_weight: how many labelled tokens that mean is over (the trainer weights micro-batches
    and processes by it, so the loss is the mean over every token of the global batch)."""

    loss: torch.Tensor | None
    logits: torch.Tensor
    loss_weight: torch.Tensor | None = None


ImageInput = Any  # a path, PIL image, numpy array or bytes


class _LayerHook:
    """Pre-hook of one decoder layer: add its gated cross-attention block's output.

    An object (not a closure) so that `copy.deepcopy(captioner)` hooks the copy to the copy.
    """

    def __init__(self, owner: Captioner, block: GatedCrossAttentionBlock):
        self.owner, self.block = owner, block

    def __call__(self, module, args, kwargs):
        state = self.owner._state
        if "media" not in state:
            return None
        hidden = args[0] if args else kwargs["hidden_states"]  # (B, T, D)
        media = self.owner._media_for("media", hidden.shape[0]).to(hidden.dtype)
        out = self.block(hidden, media, state["text_time"])
        if args:
            return (out, *args[1:]), kwargs
        return args, {**kwargs, "hidden_states": out}


@register_model_kind(
    "captioner",
    config=CaptionerConfig,
    build=build,
    modalities=lambda cfg: ["image", "text"],
    capabilities=["generate_text"],
    evaluator="captioner",
    columns={"text": "text"},  # manifests hold interleaved `<image>`/text in `text`
    decode_workload=decode_workload,
    prepare=prepare,
)
class Captioner(ArtifactMixin, nn.Module):
    """Images + interleaved text -> text, through a frozen (by default) causal LM."""

    def __init__(self, config: CaptionerConfig, vision: Encoder, lm: nn.Module, processor: Processor):
        super().__init__()
        if "image" not in processor.processors or "text" not in processor.processors:
            raise ValueError(f"a captioner needs image and text processors; got {processor.modalities}")
        text = processor["text"]
        if not hasattr(text, "image_id"):
            raise ValueError("a captioner's text processor must be a CaptionerTextProcessor")
        self.config = config
        self.processor = processor
        self.modalities = ["image", "text"]
        self.vision = vision
        self.lm = lm
        self.image_id, self.end_of_chunk_id = text.image_id, text.end_of_chunk_id
        self.new_token_ids = [self.image_id, self.end_of_chunk_id]
        emb = lm.get_input_embeddings()
        if max(self.new_token_ids) >= emb.num_embeddings:
            lm.resize_token_embeddings(max(self.new_token_ids) + 1)
            emb = lm.get_input_embeddings()
        d, dv = int(lm.config.hidden_size), int(vision.hidden_size)
        with torch.no_grad():
            init = emb.weight[: min(self.new_token_ids)].mean(0, keepdim=True).repeat(2, 1)
        self.new_embeddings = nn.Parameter(init.clone())  # (2, D): <image>, <|endofchunk|>
        self.resampler = PerceiverResampler(
            dv,
            config.resampler_depth,
            config.heads,
            config.head_dim,
            config.num_latents,
            config.max_images,
            config.ff_mult,
        )
        _, layers = transformer_layers(lm)
        self.xattn_layers = [i for i in range(len(layers)) if i % config.cross_attn_every == 0]
        if config.connector == "xattn":
            self.xattn = nn.ModuleList(
                GatedCrossAttentionBlock(
                    d,
                    dv,
                    config.heads,
                    config.head_dim,
                    config.ff_mult,
                    config.only_attend_immediate_media,
                    config.gate_scale,
                )
                for _ in self.xattn_layers
            )
        else:
            self.projector = PrefixProjector(dv, d)
        if config.vision_layer != -1 and not hasattr(vision, "layer_tokens"):
            raise ValueError(
                f"model.vision_layer {config.vision_layer} needs a tower that exposes its layers (an HF "
                f"tower); {type(vision).__name__} gives only its output (vision_layer -1)"
            )
        self._freeze()
        self._state: dict[str, Any] = {}
        self._hooks = self._install_hooks(layers)

    # ---- parameters ---------------------------------------------------------------------------
    def _freeze(self) -> None:
        cfg = self.config
        for p in self.vision.parameters():
            p.requires_grad_(not cfg.freeze_vision)
        for name, p in self.lm.named_parameters():
            p.requires_grad_(cfg.lm.trainable or "lora_" in name)

    def trainable_parameters(self) -> dict[str, int]:
        """Trainable parameter count per top-level part."""
        counts: dict[str, int] = {}
        for name, p in self.named_parameters():
            if p.requires_grad:
                part = name.split(".")[0]
                counts[part] = counts.get(part, 0) + p.numel()
        return counts

    @property
    def tokenizer(self):
        return self.processor["text"].tokenizer

    @property
    def context_length(self) -> int | None:
        from omnifuse.generation import context_length

        return context_length(self.lm.config)

    # ---- hooks --------------------------------------------------------------------------------
    def _install_hooks(self, layers: nn.ModuleList) -> list:
        hooks = [
            self.lm.register_forward_pre_hook(self._lm_pre_hook, with_kwargs=True),
            self.lm.get_input_embeddings().register_forward_hook(self._embedding_hook),
            self.lm.get_output_embeddings().register_forward_hook(self._logits_hook),
        ]
        if self.config.connector == "xattn":
            for block, i in zip(self.xattn, self.xattn_layers, strict=True):
                hooks.append(layers[i].register_forward_pre_hook(_LayerHook(self, block), with_kwargs=True))
        return hooks

    def _lm_pre_hook(self, module, args, kwargs):
        state = self._state
        if not state:
            return None  # unconditioned: the plain LM (text-only inputs)
        ids = kwargs.get("input_ids", args[0] if args else None)
        if ids is None:
            raise ValueError(
                "the captioner conditions the LM through input_ids; inputs_embeds are not supported"
            )
        # the KV cache: `cache` from transformers 5.x on, `past_key_values` before
        past = kwargs.get("cache", kwargs.get("past_key_values"))
        fresh = past is None or (hasattr(past, "get_seq_length") and past.get_seq_length() == 0)
        n = ids.shape[0]
        if fresh or state.get("counts") is None or state["counts"].shape[0] != n:
            start = ids.new_zeros(n)
        else:
            start = state["counts"]
        text_time = start[:, None] + (ids == self.image_id).cumsum(dim=1)  # (B, T)
        state["text_time"] = text_time
        state["counts"] = text_time[:, -1].clone()
        state["batch"] = n
        return None

    def _media_for(self, key: str, n: int) -> torch.Tensor:
        media = self._state[key]
        if media.shape[0] != n:  # beams / returned sequences: HF repeats each prompt's rows
            if n % media.shape[0]:
                raise ValueError(f"batch of {n} rows does not extend {media.shape[0]} prompts")
            media = media.repeat_interleave(n // media.shape[0], dim=0)
        return media

    def _embedding_hook(self, module, inputs, out: torch.Tensor) -> torch.Tensor:
        ids = inputs[0]  # (B, T)
        is_new = (ids == self.image_id) | (ids == self.end_of_chunk_id)
        if not bool(is_new.any()):
            return out
        new = self.new_embeddings.to(out.dtype)
        out = torch.where((ids == self.image_id).unsqueeze(-1), new[0], out)
        out = torch.where((ids == self.end_of_chunk_id).unsqueeze(-1), new[1], out)
        if "prefix" in self._state:
            prefix = self._media_for("prefix", ids.shape[0]).to(out.dtype)  # (B, N*L, D)
            slots = (ids == self.image_id).long()
            order = slots.cumsum(dim=1) - 1  # (B, T): index of each placeholder among its row's
            if int(slots.sum(1).max()) > prefix.shape[1]:
                raise ValueError("more <image> placeholders than visual tokens")
            gathered = prefix.gather(1, order.clamp_min(0).unsqueeze(-1).expand(-1, -1, prefix.shape[-1]))
            out = torch.where(slots.bool().unsqueeze(-1), gathered, out)
        return out

    def _logits_hook(self, module, inputs, logits: torch.Tensor) -> torch.Tensor:
        hidden = inputs[0]  # (B, T, D)
        new = hidden @ self.new_embeddings.to(hidden.dtype).t()  # (B, T, 2)
        logits = logits.clone()
        logits[..., self.new_token_ids] = new.to(logits.dtype)
        return logits

    # ---- images -------------------------------------------------------------------------------
    def encode_images(self, images: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
        """(B, N, 3, H, W) pixels, (B,) images per row -> (B, N, L, Dv) resampled latents."""
        b, n = images.shape[:2]
        valid = torch.arange(n, device=images.device)[None] < counts[:, None]  # (B, N)
        dtype = next(self.vision.parameters()).dtype
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.config.freeze_vision):
            pixels = {"image": images[valid].to(dtype)}
            if self.config.vision_layer == -1:
                tokens = self.vision(pixels).tokens  # (V, P, Dv)
            else:
                tokens = self.vision.layer_tokens(pixels, self.config.vision_layer)  # (V, P, Dv)
        positions = torch.arange(n, device=images.device).expand(b, n)[valid]  # (V,)
        latents = self.resampler.resample(tokens.to(self.new_embeddings.dtype), positions)  # (V, L, Dv)
        full = latents.new_zeros((b, n, *latents.shape[1:]))
        full[valid] = latents
        return full  # (B, N, L, Dv); padding slots are never attended

    @contextmanager
    def conditioned(self, images: torch.Tensor, counts: torch.Tensor) -> Iterator[None]:
        """Within the block, LM calls see these images (B, N, 3, H, W) with `counts` (B,) real ones."""
        latents = self.encode_images(images, counts)
        state: dict[str, Any] = {"counts": None}
        if self.config.connector == "xattn":
            state["media"] = latents
        else:
            state["prefix"] = self.projector(latents).flatten(1, 2)  # (B, N*L, D)
        self._state = state
        try:
            yield
        finally:
            self._state = {}

    def _expand_placeholders(
        self, ids: torch.Tensor, mask: torch.Tensor, labels: torch.Tensor | None, left: bool
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """`prefix`: each `<image>` becomes `num_latents` placeholders (one per visual token)."""
        k = self.config.num_latents
        rows, labs = [], []
        for b in range(ids.shape[0]):
            keep = mask[b].bool()
            row, lab = ids[b][keep].tolist(), (labels[b][keep].tolist() if labels is not None else None)
            out_row, out_lab = [], []
            for j, tok in enumerate(row):
                reps = k if tok == self.image_id else 1
                out_row += [tok] * reps
                if lab is not None:
                    out_lab += [lab[j] if tok != self.image_id else IGNORE] * reps
            rows.append(out_row)
            labs.append(out_lab)
        pad = self.processor["text"].pad_id
        width = max(len(r) for r in rows)
        new_ids = torch.full((len(rows), width), pad, dtype=torch.long)
        new_mask = torch.zeros_like(new_ids)
        new_labels = torch.full_like(new_ids, IGNORE) if labels is not None else None
        for b, row in enumerate(rows):
            sl = slice(width - len(row), width) if left else slice(0, len(row))
            new_ids[b, sl] = torch.tensor(row)
            new_mask[b, sl] = 1
            if new_labels is not None:
                new_labels[b, sl] = torch.tensor(labs[b])
        dev = ids.device
        return new_ids.to(dev), new_mask.to(dev), new_labels.to(dev) if new_labels is not None else None

    @staticmethod
    def _image_batch(batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        images = batch["image"]
        if images.dim() == 4:  # one image per row
            return images[:, None], torch.ones(images.shape[0], dtype=torch.long, device=images.device)
        counts = batch.get("image_count")
        if counts is None:
            counts = torch.full((images.shape[0],), images.shape[1], dtype=torch.long, device=images.device)
        return images, counts

    def _check_markers(self, ids: torch.Tensor, counts: torch.Tensor) -> None:
        markers = (ids == self.image_id).sum(dim=1)
        bad = (markers != counts.to(markers.device)).nonzero().flatten().tolist()
        if bad:
            b = bad[0]
            raise ValueError(
                f"row {b} has {int(markers[b])} {IMAGE_TOKEN} token(s) in its text but {int(counts[b])} image(s)"
            )

    # ---- training -----------------------------------------------------------------------------
    def forward(self, batch: dict[str, torch.Tensor]) -> CaptionerOutput:
        ids, mask = batch["text"], batch["text_mask"]  # (B, T)
        labels = batch.get("text_labels")
        images, counts = self._image_batch(batch)
        self._check_markers(ids, counts)
        if self.config.connector == "prefix":
            ids, mask, labels = self._expand_placeholders(ids, mask, labels, left=False)
        with self.conditioned(images, counts):
            logits = self.lm(input_ids=ids, attention_mask=mask, use_cache=False).logits  # (B, T, V)
        loss = weight = None
        if labels is not None:
            targets = labels[:, 1:].flatten()  # (B * (T - 1),)
            loss = F.cross_entropy(logits[:, :-1].flatten(0, 1).float(), targets, ignore_index=IGNORE)
            weight = (targets != IGNORE).sum()
        return CaptionerOutput(loss, logits, weight)

    # ---- generation ---------------------------------------------------------------------------
    def _images_tensor(self, groups: Sequence[Sequence[ImageInput]]) -> tuple[torch.Tensor, torch.Tensor]:
        if not any(groups):
            raise GenerationError("no images given")
        batch = self.processor["image"]([list(g) for g in groups])
        return batch["image"], batch["image_count"]  # (B, N, 3, H, W), (B,)

    def generate(
        self,
        images: ImageInput | Sequence[ImageInput] | Sequence[Sequence[ImageInput]] | None = None,
        prompt: str | Sequence[str] | None = None,
        settings: GenerationSettings | None = None,
        *,
        pixel_values: torch.Tensor | None = None,
        image_count: torch.Tensor | None = None,
        streamer=None,
        limit: int | None = None,
    ) -> GenerationOutput:
        """Continue each prompt, conditioned on its images.

        images: one image, a list (one image per prompt), or a list of lists (several images per
            prompt, in the order of the prompt's `<image>` tokens); or `pixel_values` (B, N, 3, H, W)
            already processed, with `image_count` (B,).
        prompt: one string for every image group, or one per group; default: the caption prompt.
        settings: decoding controls (default greedy, 32 new tokens); `limit` caps max_new_tokens.
        """
        settings = settings or GenerationSettings()
        settings.check_limit(limit)
        if pixel_values is None:
            if images is None:
                raise GenerationError("give images (or pixel_values)")
            if not isinstance(images, list | tuple):
                images = [images]
            groups = [list(g) if isinstance(g, list | tuple) else [g] for g in images]
            pixel_values, image_count = self._images_tensor(groups)
        elif image_count is None:
            image_count = torch.full((pixel_values.shape[0],), pixel_values.shape[1], dtype=torch.long)
        n = pixel_values.shape[0]
        prompts = (
            [prompt or self.config.caption_prompt] * n
            if not isinstance(prompt, list | tuple)
            else list(prompt)
        )
        if len(prompts) != n:
            raise GenerationError(f"{len(prompts)} prompts for {n} image groups")
        for i, (p, c) in enumerate(zip(prompts, image_count.tolist(), strict=True)):
            if count_images(p) != c:
                raise GenerationError(
                    f"prompt {i} has {count_images(p)} {IMAGE_TOKEN} token(s) but {c} image(s) were given"
                )
        text = self.processor["text"]
        ids, mask = left_pad([text.encode(p) for p in prompts], text.pad_id)
        if self.config.connector == "prefix":
            ids, mask, _ = self._expand_placeholders(ids, mask, None, left=True)
        device = self.new_embeddings.device
        eos = [self.end_of_chunk_id] + (
            [self.tokenizer.eos_token_id] if self.tokenizer.eos_token_id is not None else []
        )
        with torch.inference_mode(), self.conditioned(pixel_values.to(device), image_count.to(device)):
            return hf_generate(
                self.lm,
                self.tokenizer,
                ids.to(device),
                mask.to(device),
                settings,
                eos_token_id=eos,
                suppress_token_ids=[self.image_id],
                streamer=streamer,
            )

    def _with_shots(self, images, prompts, few_shot):
        shots = list(few_shot or [])
        prefix_text = "".join(chunk for _, chunk in shots)
        groups = [[img for img, _ in shots] + [img] for img in images]
        return groups, [prefix_text + p for p in prompts]

    def caption(
        self,
        images: Sequence[ImageInput],
        settings: GenerationSettings | None = None,
        few_shot=None,
        streamer=None,
        limit=None,
    ) -> GenerationOutput:
        """A caption per image; `few_shot`: (image, text chunk) examples put before each prompt."""
        groups, prompts = self._with_shots(images, [self.config.caption_prompt] * len(images), few_shot)
        return self.generate(groups, prompts, settings, streamer=streamer, limit=limit)

    def answer(
        self,
        images: Sequence[ImageInput],
        questions: Sequence[str],
        settings: GenerationSettings | None = None,
        few_shot=None,
        streamer=None,
        limit=None,
    ) -> GenerationOutput:
        """An answer per (image, question)."""
        if len(images) != len(questions):
            raise GenerationError(f"{len(images)} images for {len(questions)} questions")
        if any(not q.strip() for q in questions):
            raise GenerationError("empty question")
        prompts = [self.config.question_prompt.format(question=q.strip()) for q in questions]
        groups, prompts = self._with_shots(images, prompts, few_shot)
        return self.generate(
            groups, prompts, settings or GenerationSettings(max_new_tokens=8), streamer=streamer, limit=limit
        )

    def read_few_shot(self, path: str | os.PathLike, task: str) -> list[tuple[str, str]]:
        return read_few_shot(path, task, self.config.caption_prompt, self.config.question_prompt)

    # ---- artifact -----------------------------------------------------------------------------
    def to_config(self) -> dict[str, Any]:
        return {
            "model_type": self.model_type,
            "config": to_dict(self.config),
            "vision": self.vision.to_config(),
            "lm": {
                "class": type(self.lm).__name__,
                "config": self.lm.config.to_dict(),
                "lora": getattr(self.lm, "lora_settings", None),
            },
            "tokens": {"image": IMAGE_TOKEN, "end_of_chunk": END_OF_CHUNK},
        }

    @classmethod
    def from_config(cls, config: dict[str, Any], processor: Processor) -> Captioner:
        from omnifuse.encoders.registry import encoder_from_config

        cfg = from_dict(CaptionerConfig, {k: v for k, v in config["config"].items()})
        vision = encoder_from_config(config["vision"])
        lm = rebuild_lm(config["lm"])
        return cls(cfg, vision, lm, processor)
