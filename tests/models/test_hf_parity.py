"""A real HF CLIPModel / SiglipModel (tiny, random, saved locally) loads into a DualEncoder with
embeddings equal to HF's own."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from transformers import CLIPConfig, CLIPModel, SiglipConfig, SiglipModel

from omnifuse.models import DualEncoder

TEXT = dict(
    vocab_size=99,
    hidden_size=32,
    intermediate_size=37,
    num_hidden_layers=2,
    num_attention_heads=4,
    max_position_embeddings=16,
)
VISION = dict(
    hidden_size=32,
    intermediate_size=37,
    num_hidden_layers=2,
    num_attention_heads=4,
    image_size=30,
    patch_size=6,
)


def inputs(vocab: int = 99, eos: int | None = None):
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(3, vocab - 1, (3, 10), generator=g)
    if eos is not None:
        ids[:, -1] = eos
    mask = torch.ones_like(ids)
    pixels = torch.randn(3, 3, 30, 30, generator=g)
    return ids, mask, pixels


def test_clip_parity(tmp_path):
    torch.manual_seed(0)
    hf = CLIPModel(
        CLIPConfig(text_config={**TEXT, "eos_token_id": 98}, vision_config=VISION, projection_dim=24)
    )
    hf.save_pretrained(tmp_path)
    hf = CLIPModel.from_pretrained(tmp_path).eval()
    ids, mask, pixels = inputs(eos=98)
    with torch.no_grad():
        ref_t = F.normalize(hf.get_text_features(input_ids=ids, attention_mask=mask).pooler_output, dim=-1)
        ref_i = F.normalize(hf.get_image_features(pixel_values=pixels).pooler_output, dim=-1)
        ref_logits = hf(input_ids=ids, attention_mask=mask, pixel_values=pixels).logits_per_text
        model = DualEncoder.from_hf(str(tmp_path))
        t = model.encode("text", {"text": ids, "text_mask": mask})
        i = model.encode("image", {"image": pixels})
    assert (t - ref_t).abs().max() <= 1e-5
    assert (i - ref_i).abs().max() <= 1e-5
    assert (model.similarity(t, i) - ref_logits).abs().max() <= 1e-4


def test_siglip_parity(tmp_path):
    torch.manual_seed(0)
    hf = SiglipModel(SiglipConfig(text_config=TEXT, vision_config=VISION))
    hf.save_pretrained(tmp_path)
    hf = SiglipModel.from_pretrained(tmp_path).eval()
    ids, mask, pixels = inputs()
    with torch.no_grad():
        ref_t = F.normalize(hf.get_text_features(input_ids=ids).pooler_output, dim=-1)
        ref_i = F.normalize(hf.get_image_features(pixel_values=pixels).pooler_output, dim=-1)
        ref_logits = hf(input_ids=ids, pixel_values=pixels).logits_per_text
        model = DualEncoder.from_hf(str(tmp_path))
        t = model.encode("text", {"text": ids})
        i = model.encode("image", {"image": pixels})
    assert (t - ref_t).abs().max() <= 1e-5
    assert (i - ref_i).abs().max() <= 1e-5
    assert model.logit_bias is not None
    assert (model.similarity(t, i) - ref_logits).abs().max() <= 1e-4


def test_imported_clip_round_trips(tmp_path):
    hf = CLIPModel(
        CLIPConfig(text_config={**TEXT, "eos_token_id": 98}, vision_config=VISION, projection_dim=24)
    )
    hf.save_pretrained(tmp_path / "hf")
    model = DualEncoder.from_hf(str(tmp_path / "hf"))
    model.save_pretrained(tmp_path / "ours")
    again = DualEncoder.from_pretrained(tmp_path / "ours")
    ids, mask, pixels = inputs(eos=98)
    with torch.no_grad():
        assert torch.equal(model.encode("image", {"image": pixels}), again.encode("image", {"image": pixels}))
        batch = {"text": ids, "text_mask": mask}
        assert torch.equal(model.encode("text", batch), again.encode("text", batch))
