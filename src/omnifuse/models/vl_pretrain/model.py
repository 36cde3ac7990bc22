"""VLPretrain: an encoder per modality and a fusion module, pre-trained ALBEF-style.

Li et al. 2021, "Align before Fuse: Vision and Language Representation Learning with Momentum
Distillation" (ALBEF, https://arxiv.org/abs/2107.07651); BLIP (https://arxiv.org/abs/2201.12086)
and ViLT (https://arxiv.org/abs/2102.03334) train the same three objectives:

- **ITC**, image-text contrastive: CLIP's symmetric InfoNCE (`omnifuse.losses.clip_loss`) between
  projected, normalised pooled features of the two encoders.
- **ITM**, image-text matching: a binary head on the fusion module's joint representation,
  trained on the matching pairs and on hard negatives: for every image the most similar
  non-matching text of the batch by the contrastive similarity, for every text the most similar
  non-matching image (:func:`mine_hard_negatives`), and minimal pairs when the data has them
  (a caption with swapped attributes or swapped relation arguments).
- **MLM** conditioned on the image: the text encoder reads the masked caption, the fusion module
  fuses it with the image, and a head predicts every masked token from its token state and the
  fused vector (the zoo's strategies give one fused vector per pair, so the image reaches each
  token through it).

Each objective has a weight in the recipe and is logged apart. The encoders and the fusion module
start a fusion classifier (`from_pretrained` in its recipe).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from omnifuse.data.processors import Processor
from omnifuse.encoders.base import Encoder, EncoderOutput
from omnifuse.fusion import Fusion, build_fusion
from omnifuse.losses import clip_loss
from omnifuse.models.artifact import ArtifactMixin
from omnifuse.models.masked_lm.model import mlm_loss
from omnifuse.models.multimodal import check_fusion_fits, encoders_config, encoders_from_config


@dataclass
class VLPretrainOutput:
    """loss: weighted total; losses: each objective apart; itm_logits: (N, 2) over the ITM pairs."""

    loss: torch.Tensor | None
    losses: dict[str, torch.Tensor] = field(default_factory=dict)
    embeddings: dict[str, torch.Tensor] = field(default_factory=dict)
    itm_logits: torch.Tensor | None = None
    itm_labels: torch.Tensor | None = None
    mlm_logits: torch.Tensor | None = None


def same_rows(x: torch.Tensor) -> torch.Tensor:
    """(B, ...) -> (B, B) bool: rows i and j hold identical values."""
    flat = x.reshape(x.shape[0], -1).float()
    return torch.cdist(flat, flat) == 0


def mine_hard_negatives(sim: torch.Tensor, positive: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """ALBEF's in-batch hard negatives, taking the hardest one (highest similarity).

    sim: (B, B) similarity of image i and text j; positive: (B, B) bool, True where image i and
    text j match (the diagonal, and duplicates of an image or a text in the batch).
    Returns (text index per image, image index per text), each (B,), -1 where a row or column has
    no non-matching candidate.
    """
    masked = sim.masked_fill(positive, float("-inf"))  # (B, B)
    text_for_image = masked.argmax(dim=1)  # (B,)
    image_for_text = masked.argmax(dim=0)  # (B,)
    text_for_image[torch.isinf(masked.max(dim=1).values)] = -1
    image_for_text[torch.isinf(masked.max(dim=0).values)] = -1
    return text_for_image, image_for_text


def select(out: EncoderOutput, index: torch.Tensor) -> EncoderOutput:
    return EncoderOutput(out.tokens[index], out.mask[index], out.pooled[index])


def concat(outputs: list[EncoderOutput]) -> EncoderOutput:
    """Stack encoder outputs along the batch, padding token sequences to the longest."""
    t = max(o.tokens.shape[1] for o in outputs)
    tokens = [F.pad(o.tokens, (0, 0, 0, t - o.tokens.shape[1])) for o in outputs]  # (B_k, T, D)
    masks = [F.pad(o.mask, (0, t - o.mask.shape[1])) for o in outputs]  # (B_k, T)
    return EncoderOutput(torch.cat(tokens), torch.cat(masks), torch.cat([o.pooled for o in outputs]))


class ConditionedMLMHead(nn.Module):
    """Token state (D) and the fused vector (F) -> vocabulary logits, through a BERT-style transform."""

    def __init__(self, text_dim: int, fused_dim: int, vocab_size: int):
        super().__init__()
        self.text_dim, self.fused_dim, self.vocab_size = text_dim, fused_dim, vocab_size
        self.transform = nn.Sequential(
            nn.Linear(text_dim + fused_dim, text_dim), nn.GELU(), nn.LayerNorm(text_dim)
        )
        self.decoder = nn.Linear(text_dim, vocab_size)

    def forward(self, tokens: torch.Tensor, fused: torch.Tensor) -> torch.Tensor:
        ctx = fused[:, None, :].expand(-1, tokens.shape[1], -1)  # (B, T, F)
        return self.decoder(self.transform(torch.cat([tokens, ctx], dim=-1)))  # (B, T, V)


def check_joint(fusion: Fusion, what: str) -> None:
    """ITM and image-conditioned MLM need one joint representation of a pair."""
    if fusion.decision_level:
        raise ValueError(
            f"{what} needs a joint representation of the image and the text, but fusion '{fusion.name}' "
            "combines per-modality decisions and gives none; choose a strategy that fuses "
            "(single_stream, cross_attention, co_attention, concat_mlp, ...) or set its loss weight to 0"
        )


class VLPretrain(ArtifactMixin, nn.Module):
    """``VLPretrain({"text": t, "image": i}, build_fusion("single_stream", dims), vocab_size=V)``."""

    def __init__(
        self,
        encoders: dict[str, Encoder],
        fusion: Fusion,
        vocab_size: int,
        embed_dim: int = 64,
        loss_weights: dict[str, float] | None = None,
        itm_negatives: tuple[str, ...] = ("in_batch", "minimal_pairs"),
        init_temperature: float = 0.07,
        negative_label: str = "negative",
        processor: Processor | None = None,
    ):
        super().__init__()
        if "text" not in encoders or len(encoders) != 2:
            raise ValueError(f"encoders must be 'text' and one other modality; got {sorted(encoders)}")
        check_fusion_fits(encoders, fusion)
        self.loss_weights = {"itc": 1.0, "itm": 1.0, "mlm": 1.0, **(loss_weights or {})}
        if self.loss_weights["itm"]:
            check_joint(fusion, "image-text matching (ITM)")
        if self.loss_weights["mlm"]:
            check_joint(fusion, "masked language modelling conditioned on the image (MLM)")
        self.encoders = nn.ModuleDict({m: encoders[m] for m in sorted(encoders)})
        self.other = next(m for m in sorted(encoders) if m != "text")
        self.fusion = fusion
        self.embed_dim = embed_dim
        self.projections = nn.ModuleDict(
            {m: nn.Linear(int(e.hidden_size), embed_dim, bias=False) for m, e in self.encoders.items()}
        )
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1.0 / init_temperature)))
        fused_dim = int(fusion.output_dim)
        self.itm_head = nn.Linear(fused_dim, 2)
        self.mlm_head = ConditionedMLMHead(int(self.encoders["text"].hidden_size), fused_dim, vocab_size)
        self.itm_negatives = tuple(itm_negatives)
        self.negative_label = negative_label
        self.processor = processor or Processor({})

    @property
    def modalities(self) -> list[str]:
        return list(self.encoders)

    def scale(self) -> torch.Tensor:
        return self.logit_scale.clamp(max=math.log(100.0)).exp()

    # ---- pieces -------------------------------------------------------------------------------
    def embed(self, features: dict[str, EncoderOutput]) -> dict[str, torch.Tensor]:
        return {m: F.normalize(self.projections[m](f.pooled), dim=-1) for m, f in features.items()}  # (B, E)

    def fuse(self, other: EncoderOutput, text: EncoderOutput) -> torch.Tensor:
        return self.fusion({self.other: other, "text": text}).fused  # (N, F)

    def match_logits(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """(B, 2) ITM logits of each row's pair (index 1: match)."""
        other, text = self.encoders[self.other](batch), self.encoders["text"](batch)
        return self.itm_head(self.fuse(other, text))

    def forward(self, batch: dict[str, torch.Tensor]) -> VLPretrainOutput:
        w = self.loss_weights
        feats = {m: enc(batch) for m, enc in self.encoders.items()}  # tokens (B, T, D), pooled (B, D)
        emb = self.embed(feats)
        losses: dict[str, torch.Tensor] = {}
        if w["itc"]:
            losses["itc"] = clip_loss(emb[self.other], emb["text"], self.scale())
        itm_logits = itm_labels = mlm_logits = None
        if w["itm"]:
            itm_logits, itm_labels = self._itm(batch, feats, emb)
            losses["itm"] = F.cross_entropy(itm_logits.float(), itm_labels)
        if w["mlm"] and "mlm_labels" in batch:
            masked = self.encoders["text"]({"text": batch["mlm_input"], "text_mask": batch["text_mask"]})
            mlm_logits = self.mlm_head(masked.tokens, self.fuse(feats[self.other], masked))  # (B, T, V)
            losses["mlm"] = mlm_loss(mlm_logits, batch["mlm_labels"])
        loss = sum(w[k] * v for k, v in losses.items()) if losses else None
        return VLPretrainOutput(loss, losses, emb, itm_logits, itm_labels, mlm_logits)

    def _itm(self, batch, feats, emb) -> tuple[torch.Tensor, torch.Tensor]:
        """Positive pairs, in-batch hard negatives and minimal-pair negatives -> (N, 2) logits, (N,) labels."""
        other, text = feats[self.other], feats["text"]
        b = other.pooled.shape[0]
        rows = torch.arange(b, device=other.pooled.device)
        others, texts, labels = [other], [text], [torch.ones(b, dtype=torch.long, device=rows.device)]
        if "in_batch" in self.itm_negatives and b > 1:
            with torch.no_grad():
                sim = emb[self.other] @ emb["text"].T  # (B, B)
                positive = same_rows(batch[self.other]) | same_rows(batch["text"])  # (B, B)
                text_for, other_for = mine_hard_negatives(sim, positive)
            keep = text_for >= 0
            others.append(select(other, rows[keep]))
            texts.append(select(text, text_for[keep]))
            keep_t = other_for >= 0
            others.append(select(other, other_for[keep_t]))
            texts.append(select(text, rows[keep_t]))
            labels.append(labels[0].new_zeros(int(keep.sum()) + int(keep_t.sum())))
        if "minimal_pairs" in self.itm_negatives and "itm_negative" in batch:
            present = batch["itm_negative_present"].bool()  # (B,)
            if present.any():
                neg = self.encoders["text"](
                    {"text": batch["itm_negative"], "text_mask": batch["itm_negative_mask"]}
                )
                others.append(select(other, rows[present]))
                texts.append(select(neg, rows[present]))
                labels.append(labels[0].new_zeros(int(present.sum())))
        fused = self.fuse(concat(others), concat(texts))  # (N, F)
        return self.itm_head(fused), torch.cat(labels)

    # ---- artifact -----------------------------------------------------------------------------
    def to_config(self) -> dict[str, Any]:
        return {
            "model_type": self.model_type,
            "encoders": encoders_config(self.encoders),
            "fusion": self.fusion.to_config(),
            "vocab_size": self.mlm_head.vocab_size,
            "embed_dim": self.embed_dim,
            "loss_weights": dict(self.loss_weights),
            "itm_negatives": list(self.itm_negatives),
            "negative_label": self.negative_label,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any], processor: Processor | None = None) -> VLPretrain:
        fusion_cfg = dict(config["fusion"])
        return cls(
            encoders_from_config(config["encoders"]),
            build_fusion(fusion_cfg.pop("name"), **fusion_cfg),
            vocab_size=config["vocab_size"],
            embed_dim=config["embed_dim"],
            loss_weights=config.get("loss_weights"),
            itm_negatives=tuple(config.get("itm_negatives", ())),
            negative_label=config.get("negative_label", "negative"),
            processor=processor,
        )
