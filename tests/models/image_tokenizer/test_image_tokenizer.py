"""The VQ-VAE image tokenizer: straight-through gradient, codebook updates, shapes, artifact round trip."""

from __future__ import annotations

import pytest
import torch

from omnifuse.data.processors import ImageProcessor, ImageSettings, Processor
from omnifuse.models.image_tokenizer import ImageTokenizer, ImageTokenizerConfig, code_usage, psnr
from omnifuse.models.registry import get_spec

pytest.importorskip("vector_quantize_pytorch")


def tiny(size: int = 32, grid: int = 8, **kw) -> ImageTokenizer:
    torch.manual_seed(0)
    proc = Processor({"image": ImageProcessor(ImageSettings(size=size))})
    cfg = ImageTokenizerConfig(
        grid=grid, codebook_size=kw.pop("codebook_size", 32), hidden=8, codebook_dim=8, **kw
    )
    return ImageTokenizer(cfg, proc)


def test_registered_with_capability():
    spec = get_spec("image_tokenizer")
    assert spec.can("tokenize_image") and not spec.can("generate_image")
    assert spec.modalities(ImageTokenizerConfig()) == ["image"]


def test_straight_through_gradient_reaches_the_encoder():
    model = tiny(kmeans_init=False, commitment_weight=0.0)
    out = model({"image": torch.randn(2, 3, 32, 32)})
    # the quantized vectors are codebook rows, yet the reconstruction loss alone trains the encoder
    out.recon_loss.backward()
    grads = [p.grad for p in model.encoder.parameters()]
    assert all(g is not None for g in grads) and sum(float(g.abs().sum()) for g in grads) > 0
    z = model.encoder(torch.randn(1, 3, 32, 32))
    q, codes, _ = model.quantizer.eval()(z)
    book = model.quantizer.codebook  # (K, D)
    assert torch.allclose(q[0, :, 0, 0], book[codes[0, 0, 0]], atol=1e-6)


def test_ema_codebook_updates_in_training_only():
    model = tiny(kmeans_init=False, dead_code_threshold=0.0)
    before = model.quantizer.codebook.clone()
    model.eval()
    model({"image": torch.randn(4, 3, 32, 32)})
    assert torch.equal(model.quantizer.codebook, before)
    model.train()
    model({"image": torch.randn(4, 3, 32, 32)})
    moved = (model.quantizer.codebook - before).abs().sum(1) > 0
    assert moved.any()  # the codes used by the batch moved towards their vectors (EMA)


def test_dead_codes_are_restarted_from_batch_vectors():
    model = tiny(kmeans_init=False, dead_code_threshold=1.0).train()
    with torch.no_grad():
        model.quantizer._codebook.embed.fill_(100.0)  # every code far away: none gets assigned
        model.quantizer._codebook.embed_avg.fill_(100.0)
        model.quantizer._codebook.cluster_size.fill_(0.0)
    model({"image": torch.randn(4, 3, 32, 32)})
    assert (model.quantizer.codebook.abs() < 50).all(1).sum() > 0  # dead codes now sit on real vectors


def test_encode_decode_shapes_and_errors():
    model = tiny(grid=4).eval()
    images = torch.randn(3, 3, 32, 32)
    codes = model.encode(images)
    assert codes.shape == (3, 4, 4) and codes.dtype == torch.long
    assert model.decode(codes).shape == (3, 3, 32, 32)
    assert model.decode(codes.flatten(1)).shape == (3, 3, 32, 32)
    assert 0 <= float(model.decode(codes).min()) and float(model.decode(codes).max()) <= 1
    with pytest.raises(ValueError, match="16 codes"):
        model.decode(torch.zeros(1, 15, dtype=torch.long))
    with pytest.raises(ValueError, match=r"\[0, 32\)"):
        model.decode(torch.full((1, 4, 4), 32))


def test_grid_must_divide_the_image_by_a_power_of_two():
    with pytest.raises(ValueError, match="power of two"):
        tiny(size=48, grid=16)
    with pytest.raises(ValueError, match="model.grid"):
        ImageTokenizerConfig(grid=7)


def test_artifact_round_trip(tmp_path):
    model = tiny().eval()
    images = torch.randn(2, 3, 32, 32)
    model.save_pretrained(tmp_path / "tok")
    loaded = ImageTokenizer.from_pretrained(tmp_path / "tok")
    assert torch.equal(loaded.encode(images), model.encode(images))
    assert torch.allclose(loaded.decode(model.encode(images)), model.decode(model.encode(images)))


def test_training_improves_reconstruction():
    """A hundred steps on flat-coloured images: PSNR rises by more than 6 dB."""
    model = tiny(size=16, grid=4, codebook_size=16)
    colors = torch.rand(8, 3, 1, 1).expand(8, 3, 16, 16)
    images = (colors - model.pixel_mean) / model.pixel_std
    model.train()({"image": images})  # k-means initialisation of the codebook
    model.eval()
    before = float(psnr(model.decode(model.encode(images)), colors).mean())
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(120):
        loss = model({"image": images}).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    recon = model.decode(model.encode(images))
    assert float(psnr(recon, colors).mean()) > before + 6
    stats = code_usage(model.encode(images), 16)
    assert 1 <= stats["perplexity"] <= 16 and 0 < stats["code_usage"] <= 1


def test_code_usage_and_psnr_formulas():
    stats = code_usage(torch.tensor([0, 1, 2, 3]), 8)
    assert stats["perplexity"] == pytest.approx(4.0) and stats["code_usage"] == 0.5
    x = torch.zeros(1, 3, 4, 4)
    assert float(psnr(x + 0.1, x)) == pytest.approx(20.0, abs=1e-4)
