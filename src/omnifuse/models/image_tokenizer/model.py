"""A VQ-VAE image tokenizer: images <-> grids of discrete codes.

van den Oord et al. 2017, "Neural Discrete Representation Learning", https://arxiv.org/abs/1711.00937
(straight-through gradient, commitment loss, EMA codebook updates); the DALL-E tokenizer role
(Ramesh et al. 2021, https://arxiv.org/abs/2102.12092). The quantizer is vector-quantize-pytorch's
`VectorQuantize` (EMA updates, k-means init, dead-code restarts); we write the conv encoder and
decoder around it.

The encoder reads the processor's normalised images; the decoder writes pixels in [0, 1], so
reconstruction error and PSNR are measured in pixel space whatever the normalisation.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from omnifuse._optional import require
from omnifuse.data.processors import Processor
from omnifuse.models.artifact import ArtifactMixin
from omnifuse.models.image_tokenizer.build import build, evaluator
from omnifuse.models.image_tokenizer.config import ImageTokenizerConfig, downsamplings
from omnifuse.models.image_tokenizer.metrics import code_usage, psnr  # noqa: F401  (re-exported)
from omnifuse.models.registry import register_model_kind


@dataclass
class ImageTokenizerOutput:
    """loss = recon_loss + commitment; recon: (B, 3, H, W) pixels in [0, 1]; codes: (B, g, g)."""

    loss: torch.Tensor
    recon_loss: torch.Tensor
    commit_loss: torch.Tensor
    recon: torch.Tensor
    codes: torch.Tensor


class ResBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.net = nn.Sequential(
            nn.ReLU(),
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(channels, channels, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.net(x)


def stage_channels(hidden: int, n_down: int) -> list[int]:
    """Channels after the stem and after each downsampling stage (doubling, capped at 4x)."""
    return [hidden * min(2**i, 4) for i in range(n_down + 1)]


class ConvEncoder(nn.Module):
    def __init__(self, hidden: int, n_down: int, res_blocks: int, out_dim: int):
        super().__init__()
        ch = stage_channels(hidden, n_down)
        layers: list[nn.Module] = [nn.Conv2d(3, ch[0], 3, padding=1)]
        for i in range(n_down):
            layers += [nn.ReLU(), nn.Conv2d(ch[i], ch[i + 1], 4, stride=2, padding=1)]
        layers += [ResBlock(ch[-1]) for _ in range(res_blocks)]
        layers += [nn.ReLU(), nn.Conv2d(ch[-1], out_dim, 1)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)  # (B, 3, H, W) -> (B, D, g, g)


class ConvDecoder(nn.Module):
    def __init__(self, hidden: int, n_down: int, res_blocks: int, in_dim: int):
        super().__init__()
        ch = stage_channels(hidden, n_down)[::-1]
        layers: list[nn.Module] = [nn.Conv2d(in_dim, ch[0], 3, padding=1)]
        layers += [ResBlock(ch[0]) for _ in range(res_blocks)]
        for i in range(n_down):
            layers += [nn.ReLU(), nn.ConvTranspose2d(ch[i], ch[i + 1], 4, stride=2, padding=1)]
        layers += [nn.ReLU(), nn.Conv2d(ch[-1], 3, 3, padding=1)]
        self.net = nn.Sequential(*layers)

    def forward(self, q: torch.Tensor) -> torch.Tensor:
        return self.net(q)  # (B, D, g, g) -> (B, 3, H, W)


@register_model_kind(
    "image_tokenizer",
    config=ImageTokenizerConfig,
    build=build,
    modalities=lambda cfg: ["image"],
    capabilities=["tokenize_image"],
    evaluator=evaluator,
)
class ImageTokenizer(ArtifactMixin, nn.Module):
    """Images (B, 3, H, W) <-> codes (B, grid, grid) in [0, codebook_size)."""

    def __init__(self, config: ImageTokenizerConfig, processor: Processor):
        super().__init__()
        if "image" not in processor.processors:
            raise ValueError(f"an image tokenizer needs an image processor; got {processor.modalities}")
        vqp = require("vector_quantize_pytorch", "generate", "the image tokenizer")
        self.config = config
        self.processor = processor
        settings = processor["image"].settings
        self.image_size = settings.size
        n_down = downsamplings(self.image_size, config.grid)
        self.modalities = ["image"]
        self.encoder = ConvEncoder(config.hidden, n_down, config.res_blocks, config.codebook_dim)
        self.decoder = ConvDecoder(config.hidden, n_down, config.res_blocks, config.codebook_dim)
        self.quantizer = vqp.VectorQuantize(
            dim=config.codebook_dim,
            codebook_size=config.codebook_size,
            decay=config.ema_decay,
            kmeans_init=config.kmeans_init,
            threshold_ema_dead_code=config.dead_code_threshold,
            commitment_weight=config.commitment_weight,
            accept_image_fmap=True,
            rotation_trick=False,  # the classic straight-through estimator
        )
        self.register_buffer("pixel_mean", torch.tensor(settings.mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(settings.std).view(1, 3, 1, 1), persistent=False)

    # ---- shape facts a prior checks against -------------------------------------------------
    @property
    def grid(self) -> int:
        return self.config.grid

    @property
    def codebook_size(self) -> int:
        return self.config.codebook_size

    @property
    def tokens_per_image(self) -> int:
        return self.config.grid**2

    # ---- forward / encode / decode -------------------------------------------------------------
    def to_pixels(self, image: torch.Tensor) -> torch.Tensor:
        """Processor-normalised (B, 3, H, W) -> pixels in [0, 1]."""
        return image * self.pixel_std + self.pixel_mean

    def forward(self, batch: dict[str, torch.Tensor]) -> ImageTokenizerOutput:
        image = batch["image"]  # (B, 3, H, W) normalised
        target = self.to_pixels(image)  # (B, 3, H, W) in [0, 1]
        z = self.encoder(image)  # (B, D, g, g)
        with self._codebook_frozen(not self.training):
            q, codes, commit = self.quantizer(z)  # straight-through: (B, D, g, g), (B, g, g), ()
        recon = self.decoder(q)  # (B, 3, H, W)
        recon_loss = F.mse_loss(recon, target)
        commit = commit.sum()
        return ImageTokenizerOutput(recon_loss + commit, recon_loss, commit, recon, codes)

    @torch.no_grad()
    def encode(self, image: torch.Tensor) -> torch.Tensor:
        """Normalised images (B, 3, H, W) -> codes (B, g, g), without touching the codebook."""
        z = self.encoder(image)  # (B, D, g, g)
        with self._codebook_frozen(True):
            _, codes, _ = self.quantizer(z)
        return codes

    @contextmanager
    def _codebook_frozen(self, frozen: bool):
        """No EMA update, no dead-code restart and no k-means initialisation while `frozen`:
        only training moves the codebook."""
        book = self.quantizer._codebook
        was_training, was_initted = self.quantizer.training, book.initted.clone()
        if frozen:
            self.quantizer.eval()
            book.initted.fill_(True)
        try:
            yield
        finally:
            if frozen:
                self.quantizer.train(was_training)
                book.initted.copy_(was_initted)

    @torch.no_grad()
    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes (B, g, g) or (B, g*g) -> pixels (B, 3, H, W) in [0, 1]."""
        g = self.config.grid
        if codes.dim() == 2:
            if codes.shape[1] != g * g:
                raise ValueError(f"expected {g * g} codes per image (grid {g}x{g}); got {codes.shape[1]}")
            codes = codes.view(-1, g, g)
        if codes.shape[1:] != (g, g):
            raise ValueError(f"expected codes of shape (B, {g}, {g}); got {tuple(codes.shape)}")
        if codes.numel() and (int(codes.min()) < 0 or int(codes.max()) >= self.config.codebook_size):
            raise ValueError(f"codes must lie in [0, {self.config.codebook_size}); got {int(codes.max())}")
        q = self.quantizer.get_output_from_indices(codes.long())  # (B, D, g, g)
        return self.decoder(q).clamp(0, 1)

    def preprocess(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """PIL images -> normalised (B, 3, H, W) with the saved preprocessing."""
        device = self.pixel_mean.device
        return self.processor({"image": list(images)})["image"].to(device)

    def tokenize(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """PIL images -> codes (B, g, g)."""
        return self.encode(self.preprocess(images))

    @staticmethod
    def to_pil(pixels: torch.Tensor) -> list[Image.Image]:
        """Pixels (B, 3, H, W) in [0, 1] -> PIL images."""
        arr = (pixels.clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).cpu().numpy()
        return [Image.fromarray(a) for a in arr]

    # ---- artifact ------------------------------------------------------------------------------
    def to_config(self) -> dict[str, Any]:
        return {"model_type": self.model_type, "config": dataclasses.asdict(self.config)}

    @classmethod
    def from_config(cls, config: dict[str, Any], processor: Processor) -> ImageTokenizer:
        return cls(ImageTokenizerConfig(**config["config"]), processor)
