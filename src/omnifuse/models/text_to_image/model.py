"""A DALL-E-style prior: one decoder-only transformer over [text tokens; <image>; image codes].

Ramesh et al. 2021, "Zero-Shot Text-to-Image Generation", https://arxiv.org/abs/2102.12092: text
tokens then the image's discrete codes (from an image tokenizer) in one autoregressive sequence,
with learned text positions plus row and column embeddings for the image grid, and the text and
image losses weighted 1:7. Classifier-free guidance (Ho & Salimans 2022,
https://arxiv.org/abs/2207.12598; Gafni et al. 2022, https://arxiv.org/abs/2203.13131): the text is
replaced by the null prompt with probability `text_drop_prob` in training, and sampling mixes the
conditional and unconditional next-code distributions with a guidance scale. Candidates are
reranked by CLIP score (any omnifuse DualEncoder), as DALL-E does.

The transformer is HF's GPT-2 built from a config (no download). Vocabulary: text ids
[0, V_text), then `<image>` = V_text, then the codes [V_text + 1, V_text + 1 + K).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from omnifuse.data.processors import Processor
from omnifuse.generation import (
    ClassifierFreeGuidance,
    GenerationError,
    GenerationSettings,
    check_guidance_scale,
    hf_generate,
    outside_range,
)
from omnifuse.models.artifact import ArtifactMixin
from omnifuse.models.image_tokenizer import ImageTokenizer
from omnifuse.models.registry import register_model_kind, spec_of
from omnifuse.models.text_to_image.build import build, decode_workload, evaluator, tokenizer_processors
from omnifuse.models.text_to_image.config import TextToImageConfig

logger = logging.getLogger("omnifuse.text_to_image")


@dataclass
class TextToImageOutput:
    """loss = weighted mean of text_loss and image_loss; logits (B, L - 1, V)."""

    loss: torch.Tensor
    text_loss: torch.Tensor
    image_loss: torch.Tensor
    logits: torch.Tensor


@dataclass
class ImageGenerationOutput:
    """Generated images, grouped per prompt: rows i*n ... i*n + n - 1 belong to prompt i
    (best first when reranked)."""

    images: list[Image.Image]
    codes: torch.Tensor
    """(P * n, grid * grid) image codes."""
    prompts: list[str]
    """The prompt of each image."""
    scores: list[float] | None = None
    """CLIP score (cosine similarity of prompt and image embeddings) when reranked."""
    n: int = 1
    extras: dict[str, Any] = field(default_factory=dict)

    def best(self) -> list[Image.Image]:
        """The first image of each prompt (the top-ranked one when reranked)."""
        return self.images[:: self.n]


class GenerationTimeout(GenerationError):
    """Image generation ran past its `max_time` (a server answers 408)."""


class TextImagePositions(nn.Module):
    """GPT-2's learned absolute positions, plus row and column embeddings on image positions.

    Replaces the transformer's `wpe`; HF computes `position_ids` (cache included) and calls it.
    """

    def __init__(self, wpe: nn.Embedding, image_start: int, grid: int):
        super().__init__()
        self.wpe = wpe
        self.image_start = image_start
        self.grid = grid
        self.row = nn.Embedding(grid, wpe.embedding_dim)
        self.col = nn.Embedding(grid, wpe.embedding_dim)
        for emb in (self.row, self.col):
            nn.init.normal_(emb.weight, std=0.02)

    @property
    def weight(self) -> torch.Tensor:
        return self.wpe.weight

    def forward(self, position_ids: torch.Tensor) -> torch.Tensor:
        out = self.wpe(position_ids)  # (B, L, D)
        index = position_ids - self.image_start  # (B, L); >= 0 on image codes
        is_image = (index >= 0).unsqueeze(-1).to(out.dtype)
        index = index.clamp(0, self.grid * self.grid - 1)
        return out + is_image * (self.row(index // self.grid) + self.col(index % self.grid))


class _CodeTokenizer:
    """What `hf_generate` needs of a tokenizer when the new tokens are image codes, not text."""

    eos_token_id = None
    eos_token = None

    def __init__(self, pad_id: int):
        self.pad_token_id = pad_id
        self.pad_token = "[PAD]"

    def decode(self, ids, skip_special_tokens: bool = True) -> str:
        return ""


def check_tokenizer(config: TextToImageConfig, tokenizer: ImageTokenizer) -> None:
    """The tokenizer's grid and codebook must be the ones the prior was configured for."""
    for name, have in (("grid", tokenizer.grid), ("codebook_size", tokenizer.codebook_size)):
        want = getattr(config, name)
        if want is not None and want != have:
            raise ValueError(
                f"the image tokenizer ({config.image_tokenizer}) has {name} {have}, but this text_to_image "
                f"model expects {name} {want} (model.{name}); use a matching tokenizer or set model.{name}: {have}"
            )


@register_model_kind(
    "text_to_image",
    config=TextToImageConfig,
    build=build,
    modalities=lambda cfg: ["image", "text"],
    capabilities=["generate_image"],
    evaluator=evaluator,
    processors=tokenizer_processors,
    decode_workload=decode_workload,
)
class TextToImage(ArtifactMixin, nn.Module):
    """Text prompts -> images, through a frozen image tokenizer and a GPT-2 prior over its codes."""

    def __init__(self, config: TextToImageConfig, image_tokenizer: ImageTokenizer, processor: Processor):
        super().__init__()
        from transformers import GPT2Config, GPT2LMHeadModel

        if "text" not in processor.processors:
            raise ValueError(f"a text_to_image model needs a text processor; got {processor.modalities}")
        check_tokenizer(config, image_tokenizer)
        config = dataclasses.replace(
            config, grid=image_tokenizer.grid, codebook_size=image_tokenizer.codebook_size
        )
        self.config = config
        text = processor["text"]
        self.processor = Processor({"text": text, "image": image_tokenizer.processor["image"]})
        self.modalities = ["image", "text"]
        self.text_length = int(text.max_length)
        self.text_vocab = int(text.vocab_size)
        self.pad_id = int(text.tokenizer.pad_token_id or 0)
        self.boi_id = self.text_vocab  # <image>
        self.image_offset = self.text_vocab + 1
        self.image_tokens = image_tokenizer.tokens_per_image
        self.vocab_size = self.image_offset + image_tokenizer.codebook_size
        self.image_tokenizer = image_tokenizer.eval()
        for p in self.image_tokenizer.parameters():
            p.requires_grad_(False)
        hf = GPT2Config(
            vocab_size=self.vocab_size,
            n_positions=self.text_length + 1 + self.image_tokens,
            n_embd=config.hidden,
            n_layer=config.layers,
            n_head=config.heads,
            resid_pdrop=config.dropout,
            embd_pdrop=config.dropout,
            attn_pdrop=config.dropout,
            bos_token_id=None,
            eos_token_id=None,
            pad_token_id=self.pad_id,
            **config.hf_overrides,
        )
        self.lm = GPT2LMHeadModel(hf)
        self.lm.transformer.wpe = TextImagePositions(
            self.lm.transformer.wpe, self.text_length + 1, image_tokenizer.grid
        )

    def train(self, mode: bool = True) -> TextToImage:
        super().train(mode)
        self.image_tokenizer.eval()  # frozen: its codebook never moves
        return self

    # ---- sequences -------------------------------------------------------------------------------
    def pad_text(self, ids: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Text ids (B, t <= T) -> (B, T), padding (and masked positions) set to the pad id."""
        if mask is not None:
            ids = ids.masked_fill(mask == 0, self.pad_id)
        if ids.shape[1] > self.text_length:
            raise ValueError(f"text of {ids.shape[1]} tokens; the text context is {self.text_length}")
        return F.pad(ids, (0, self.text_length - ids.shape[1]), value=self.pad_id)

    def sequence(self, text: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        """[text (B, T); <image>; codes + offset (B, N)] -> (B, T + 1 + N)."""
        boi = torch.full_like(text[:, :1], self.boi_id)
        return torch.cat([text, boi, codes.flatten(1) + self.image_offset], dim=1)

    def forward(self, batch: dict[str, torch.Tensor]) -> TextToImageOutput:
        text = self.pad_text(batch["text"], batch.get("text_mask"))  # (B, T)
        dropped = torch.zeros(text.shape[0], dtype=torch.bool, device=text.device)
        if self.training and self.config.text_drop_prob > 0:
            dropped = torch.rand(text.shape[0], device=text.device) < self.config.text_drop_prob
            text = torch.where(dropped.unsqueeze(1), torch.full_like(text, self.pad_id), text)
        codes = (
            batch["image_codes"] if "image_codes" in batch else self.image_tokenizer.encode(batch["image"])
        )
        codes = codes.flatten(1)  # (B, N)
        seq = self.sequence(text, codes)  # (B, T + 1 + N)
        inputs = seq[:, :-1]  # padding inside the text is attended to: it is the prompt's shape
        logits = self.lm(input_ids=inputs, attention_mask=torch.ones_like(inputs)).logits  # (B, L - 1, V)
        return self.losses(logits, text, codes, dropped)

    def losses(
        self, logits: torch.Tensor, text: torch.Tensor, codes: torch.Tensor, dropped: torch.Tensor
    ) -> TextToImageOutput:
        """Text loss over real (non-pad, non-dropped) text tokens after the first, against text
        logits only; image loss over every code, against code logits only; weighted mean."""
        T, cfg = self.text_length, self.config
        text_logits = logits[:, : T - 1, : self.text_vocab]  # (B, T - 1, V_text): predict text[1:]
        text_target = text[:, 1:]  # (B, T - 1)
        keep = (text_target != self.pad_id) & ~dropped.unsqueeze(1)
        text_ce = F.cross_entropy(text_logits.transpose(1, 2).float(), text_target, reduction="none")
        text_loss = (text_ce * keep).sum() / keep.sum().clamp_min(1)
        image_logits = logits[:, T:, self.image_offset :]  # (B, N, K): <image> and codes predict codes
        image_loss = F.cross_entropy(image_logits.transpose(1, 2).float(), codes)
        w_t, w_i = cfg.text_loss_weight, cfg.image_loss_weight
        loss = (w_t * text_loss + w_i * image_loss) / (w_t + w_i)
        return TextToImageOutput(loss, text_loss.detach(), image_loss.detach(), logits)

    # ---- prompts ---------------------------------------------------------------------------------
    def encode_prompts(self, prompts: Sequence[str]) -> torch.Tensor:
        """Prompts -> text ids (P, T). A prompt longer than the context is truncated with a warning
        or refused (`long_prompt`); an empty one is an error."""
        if isinstance(prompts, str):
            prompts = [prompts]
        if not prompts or any(not isinstance(p, str) or not p.strip() for p in prompts):
            raise GenerationError("give at least one non-empty text prompt")
        tok = self.processor["text"].tokenizer
        rows = tok(list(prompts), add_special_tokens=True)["input_ids"]
        out = torch.full((len(rows), self.text_length), self.pad_id, dtype=torch.long)
        for i, row in enumerate(rows):
            if len(row) > self.text_length:
                if self.config.long_prompt == "error":
                    raise GenerationError(
                        f"prompt {i} is {len(row)} tokens; the text context is {self.text_length} tokens "
                        "(shorten it; this model refuses long prompts: model.long_prompt = error)"
                    )
                logger.warning(
                    "prompt %d is %d tokens; keeping its first %d (the text context)",
                    i,
                    len(row),
                    self.text_length,
                )
                row = row[: self.text_length]
            out[i, : len(row)] = torch.tensor(row)
        return out

    # ---- sampling --------------------------------------------------------------------------------
    def image_settings(self, settings: GenerationSettings | None) -> GenerationSettings:
        """The caller's sampling controls, decoding exactly one image's codes per sequence."""
        settings = settings or GenerationSettings(strategy="sample")
        if settings.strategy == "beam":
            raise GenerationError(
                "image generation samples or decodes greedily; beam search is not supported"
            )
        return dataclasses.replace(
            settings,
            max_new_tokens=self.image_tokens,
            min_new_tokens=self.image_tokens,
            num_return_sequences=1,
            stop=[],
            repetition_penalty=1.0,
        )

    @torch.no_grad()
    def generate_codes(
        self,
        text: torch.Tensor,
        settings: GenerationSettings | None = None,
        guidance_scale: float = 1.0,
        max_time: float | None = None,
    ) -> torch.Tensor:
        """Text ids (B, T) -> image codes (B, N) sampled through HF `generate`, with guidance;
        past `max_time` seconds a GenerationTimeout."""
        settings = self.image_settings(settings)
        scale = check_guidance_scale(guidance_scale)
        device = next(self.lm.parameters()).device
        text = text.to(device)
        boi = torch.full_like(text[:, :1], self.boi_id)
        prompt = torch.cat([text, boi], 1)  # (B, T + 1)
        processors = []
        if scale != 1.0:
            null = torch.cat([torch.full_like(text, self.pad_id), boi], 1)  # the null prompt
            processors.append(ClassifierFreeGuidance(self.lm, null, scale, use_cache=settings.use_cache))
        from transformers import LogitsProcessorList

        was = self.training
        self.eval()
        try:
            out = hf_generate(
                self.lm,
                _CodeTokenizer(self.pad_id),
                prompt,
                torch.ones_like(prompt),
                settings,
                eos_token_id=[],
                suppress_token_ids=outside_range(self.vocab_size, self.image_offset, self.vocab_size),
                logits_processor=LogitsProcessorList(processors),
                **({"max_time": max(max_time, 1e-3)} if max_time is not None else {}),
            )
        finally:
            self.train(was)
        if any(len(row) < self.image_tokens for row in out.token_ids):
            raise GenerationTimeout(
                f"image generation took longer than the limit of {max_time:g} s; ask for fewer images"
            )
        codes = torch.tensor(out.token_ids, dtype=torch.long) - self.image_offset  # (B, N)
        return codes

    @torch.no_grad()
    def generate(
        self,
        prompts: str | Sequence[str],
        n: int = 1,
        settings: GenerationSettings | None = None,
        guidance_scale: float = 1.0,
        rerank: nn.Module | None = None,
        batch_size: int = 64,
        max_time: float | None = None,
    ) -> ImageGenerationOutput:
        """`n` images per prompt; with `rerank` (a model whose spec can `embed`, e.g. a CLIP
        DualEncoder) each prompt's images are sorted by CLIP score, best first.

        Deterministic for `settings.seed`. Past `max_time` seconds of sampling, a GenerationTimeout.
        """
        import time

        deadline = None if max_time is None else time.monotonic() + max_time
        prompts = [prompts] if isinstance(prompts, str) else list(prompts)
        if n < 1:
            raise GenerationError(f"n must be >= 1; got {n}")
        if rerank is not None:
            spec_of(rerank).require("embed", "reranking generated images")
        text = self.encode_prompts(prompts).repeat_interleave(n, 0)  # (P * n, T)
        settings = self.image_settings(settings)
        chunks = []
        for start in range(0, len(text), batch_size):
            chunk_settings = settings
            if settings.seed is not None and start:  # one seed per call, distinct chunks
                chunk_settings = dataclasses.replace(settings, seed=settings.seed + start)
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise GenerationTimeout(
                    f"image generation took longer than the limit of {max_time:g} s; ask for fewer images"
                )
            chunks.append(
                self.generate_codes(text[start : start + batch_size], chunk_settings, guidance_scale, left)
            )
        codes = torch.cat(chunks)
        images = self.decode_codes(codes)
        per_image = [p for p in prompts for _ in range(n)]
        result = ImageGenerationOutput(images, codes, per_image, None, n)
        if rerank is not None:
            from omnifuse.models.text_to_image.rerank import rerank_by_clip

            result = rerank_by_clip(result, rerank)
        return result

    @torch.no_grad()
    def decode_codes(self, codes: torch.Tensor) -> list[Image.Image]:
        device = next(self.image_tokenizer.parameters()).device
        return ImageTokenizer.to_pil(self.image_tokenizer.decode(codes.to(device)))

    # ---- artifact --------------------------------------------------------------------------------
    def to_config(self) -> dict[str, Any]:
        return {
            "model_type": self.model_type,
            "config": dataclasses.asdict(self.config),
            "image_tokenizer": self.image_tokenizer.to_config(),
        }

    @classmethod
    def from_config(cls, config: dict[str, Any], processor: Processor) -> TextToImage:
        tokenizer = ImageTokenizer.from_config(
            config["image_tokenizer"], Processor({"image": processor["image"]})
        )
        return cls(TextToImageConfig(**config["config"]), tokenizer, processor)
