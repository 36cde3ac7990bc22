"""The captioner: exact LM equivalence at init, media masking, freezing, generation, round trip."""

from __future__ import annotations

import copy

import pytest
import torch
from transformers import GPT2LMHeadModel

from omnifuse.generation import GenerationError, GenerationSettings
from omnifuse.models.captioner import MaskedCrossAttention
from omnifuse.models.registry import get_spec, spec_of

GREEDY = GenerationSettings(max_new_tokens=6, min_new_tokens=6)


def _batch(model, texts, images):
    return model.processor({"image": images, "text": texts})


def test_registered_as_a_text_generator(make_captioner):
    tiny_captioner = make_captioner
    spec = get_spec("captioner")
    assert spec.can("generate_text") and not spec.can("embed")
    assert spec_of(tiny_captioner()) is spec


def test_gates_at_zero_give_the_lm_logits_exactly(make_captioner, img):
    tiny_captioner, image = make_captioner, img
    torch.manual_seed(0)
    model = tiny_captioner("xattn").eval()
    bare = GPT2LMHeadModel(model.lm.config).eval()
    bare.load_state_dict(model.lm.state_dict())
    old = [i for i in range(model.lm.config.vocab_size) if i not in model.new_token_ids]
    ids = model.processor["text"](["a red circle left of a blue square"])["text"][:, 1:]  # text only
    ids = ids[ids != model.image_id].view(1, -1)
    ids = ids[ids != model.end_of_chunk_id].view(1, -1)
    with torch.no_grad():
        assert torch.equal(model.lm(input_ids=ids).logits[..., old], bare(input_ids=ids).logits[..., old])
        # with images: identical to the unconditioned LM on the same tokens, whatever the images
        batch = _batch(model, ["<image>Caption: a red circle"], [image(1)])
        with_images = model(batch).logits
        other = model({**batch, "image": torch.randn_like(batch["image"])}).logits
        plain = model.lm(input_ids=batch["text"], attention_mask=batch["text_mask"]).logits
        assert torch.equal(with_images, plain) and torch.equal(other, plain)
        for block in model.xattn:  # the test can fail: open the gates and the images matter
            block.attn_gate.fill_(1.0)
        assert not torch.allclose(model(batch).logits, plain)


def test_media_masking_tokens_see_only_the_latest_image():
    attn = MaskedCrossAttention(dim=16, dim_visual=8, heads=2, head_dim=4)
    media = torch.randn(1, 2, 3, 8)  # (B, N images, L latents, Dv)
    image_id = 9
    ids = torch.tensor([[5, image_id, 5, 5, image_id, 5, 5]])  # text, img1, text, img2, text
    text_time = (ids == image_id).cumsum(1)
    _, weights = attn.attention(torch.randn(1, 7, 16), media, text_time)  # (B, H, T, N*L)
    first, second = weights[..., :3], weights[..., 3:]
    assert torch.all(weights[:, :, 0] == 0)  # before any image: attends to nothing
    assert torch.all(second[:, :, 1:4] == 0) and torch.allclose(first[:, :, 1:4].sum(-1), torch.ones(1, 2, 3))
    assert torch.all(first[:, :, 4:] == 0)  # after the second image: zero attention to the first
    assert torch.allclose(second[:, :, 4:].sum(-1), torch.ones(1, 2, 3))
    every = MaskedCrossAttention(dim=16, dim_visual=8, heads=2, head_dim=4, only_immediate=False)
    _, weights = every.attention(torch.randn(1, 7, 16), media, text_time)
    assert torch.all(weights[:, :, 5:, :3] > 0)  # attend-to-all-previous mode sees both


@pytest.mark.parametrize("connector", ["xattn", "prefix"])
def test_frozen_parameters_unchanged_after_training(connector, make_captioner, img):
    tiny_captioner, image = make_captioner, img
    from omnifuse.train.optim import build_optimizer

    torch.manual_seed(0)
    model = tiny_captioner(connector).train()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt = build_optimizer(model, "adamw", 1e-2, 0.1)
    batch = _batch(
        model,
        ["a red circle", "<image>Question: what color is the square? Answer: blue"],
        [image(1), image(2)],
    )
    for _ in range(3):
        opt.zero_grad()
        model(batch).loss.backward()
        opt.step()
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(
        n.split(".")[0] in {"resampler", "xattn", "projector", "new_embeddings"} for n in trainable
    )
    for n, p in model.named_parameters():
        if n in trainable:
            continue
        assert torch.equal(p, before[n]), n
    assert any(not torch.equal(p, before[n]) for n, p in model.named_parameters() if n in trainable)
    assert any(n.startswith("vision.") for n in before) and any(n.startswith("lm.") for n in before)


def test_generation_cache_batch_and_strategies(captioner, img):
    """The KV cache changes nothing, with the image's influence on (open gates): decoding steps
    after the first must still see the image."""
    image = img
    if captioner.config.connector == "xattn":
        for block in captioner.xattn:
            block.attn_gate.data.fill_(2.0)
            block.ff_gate.data.fill_(2.0)
    imgs = [image(1), image(2)]
    cached = captioner.generate(imgs, settings=GREEDY)
    plain = captioner.generate(
        imgs, settings=GenerationSettings(max_new_tokens=6, min_new_tokens=6, use_cache=False)
    )
    assert cached.token_ids == plain.token_ids
    alone = captioner.generate([imgs[1]], settings=GREEDY)
    assert alone.token_ids[0] == cached.token_ids[1]
    beam = captioner.generate(
        imgs,
        settings=GenerationSettings(strategy="beam", num_beams=3, num_return_sequences=2, max_new_tokens=4),
    )
    assert len(beam.texts) == 4
    sample = GenerationSettings(strategy="sample", top_p=0.9, temperature=0.8, seed=1, max_new_tokens=4)
    assert (
        captioner.generate(imgs, settings=sample).token_ids
        == captioner.generate(imgs, settings=sample).token_ids
    )


def test_images_change_the_output_once_trained_a_little(captioner, img):
    image = img
    """Conditioning reaches the logits (gates opened / projector live)."""
    if captioner.config.connector == "xattn":
        for block in captioner.xattn:
            block.attn_gate.data.fill_(1.0)
    batch = _batch(captioner, ["a red circle"] * 2, [image(1), image(2)])
    with torch.no_grad():
        logits = captioner(batch).logits
    assert not torch.allclose(logits[0], logits[1])


def test_interleaved_multi_image_batch(captioner, img):
    image = img
    text = ["<image>Caption: red<|endofchunk|><image>Caption: blue<|endofchunk|>", "<image>Caption: green"]
    batch = _batch(captioner, text, [[image(1), image(2)], [image(3)]])
    assert batch["image"].shape[:2] == (2, 2) and batch["image_count"].tolist() == [2, 1]
    assert torch.isfinite(captioner(batch).loss)
    shots = [(image(1), "<image>Caption: red<|endofchunk|>")] * 2
    out = captioner.caption([image(4)], GenerationSettings(max_new_tokens=3), few_shot=shots)
    assert len(out.texts) == 1


def test_bad_input_is_a_clear_error(captioner, img):
    image = img
    with pytest.raises(GenerationError, match="prompt 0 has 2 <image> token"):
        captioner.generate([image(1)], prompt="<image><image>Caption:")
    with pytest.raises(GenerationError, match="context"):
        captioner.generate([image(1)], prompt="<image>" + " red" * 200)
    with pytest.raises(GenerationError, match="above the limit of 16"):
        captioner.generate([image(1)], settings=GenerationSettings(max_new_tokens=17), limit=16)
    with pytest.raises(ValueError, match="row 0 has 0 <image> token"):
        captioner(
            {**_batch(captioner, ["<image>a red circle"], [image(1)]), "text": torch.tensor([[1, 5, 6]])}
        )


def test_save_load_round_trip_identical_greedy(captioner, tmp_path, img):
    image = img
    from omnifuse.models import load_model

    for p in captioner.parameters():  # make the conditioning matter
        p.data.add_(0.05 * torch.randn_like(p))
    captioner.save_pretrained(tmp_path / "cap")
    loaded = load_model(tmp_path / "cap")
    assert type(loaded) is type(captioner) and loaded.config == captioner.config
    for k, v in captioner.state_dict().items():
        assert torch.equal(v, loaded.state_dict()[k]), k
    imgs = [image(1), image(2)]
    assert (
        loaded.generate(imgs, settings=GREEDY).token_ids
        == captioner.generate(imgs, settings=GREEDY).token_ids
    )


def test_lora_on_the_lm_trains_only_adapters(tmp_path, make_captioner, img):
    tiny_captioner, image = make_captioner, img
    from omnifuse.encoders.lora import LoraSettings
    from omnifuse.models.captioner import LanguageModelConfig

    lm = LanguageModelConfig(overrides={"n_embd": 32, "n_positions": 96}, lora=LoraSettings(r=2))
    model = tiny_captioner("xattn", lm=lm)
    lm_trainable = [n for n, p in model.lm.named_parameters() if p.requires_grad]
    assert lm_trainable and all("lora_" in n for n in lm_trainable)
    model.save_pretrained(tmp_path / "lora")
    loaded = type(model).from_pretrained(tmp_path / "lora")
    assert (
        loaded.generate([image(1)], settings=GREEDY).token_ids
        == model.eval().generate([image(1)], settings=GREEDY).token_ids
    )


def test_lm_without_pad_token(make_captioner):
    tiny_captioner = make_captioner
    from omnifuse.models.captioner.processing import CaptionerTextProcessor

    model = tiny_captioner("xattn")
    tok = copy.deepcopy(model.tokenizer)
    tok.pad_token = None
    tok.eos_token = "[SEP]"
    proc = CaptionerTextProcessor(tok)
    assert proc.pad_id == tok.convert_tokens_to_ids("[SEP]")
    out = proc(["a red circle", "<image>Caption: a blue square left of a red circle"])
    assert out["text"].shape[0] == 2 and (out["text_labels"][0, out["text_mask"][0] == 0] == -100).all()


def test_decode_workload_hook_joins_bench_generate(captioner):
    from omnifuse.bench.generate import bench_generate

    spec = get_spec("captioner")
    (workload,) = spec.extras["decode_workload"](captioner)
    workload.max_new_tokens = 3
    result = bench_generate(
        [workload],
        (1, 2),
        ("eager-fp32", "bf16-weights"),
        caches=(True, False),
        iters=1,
        budget_s=1,
        progress=None,
    )
    assert all(r["tokens_per_s"] > 0 for r in result["rows"]) and len(result["rows"]) == 8
    assert (
        workload.run(
            workload.model, workload.inputs(2), GenerationSettings(max_new_tokens=3, min_new_tokens=3)
        )
        == 6
    )


def test_gate_scale_keeps_the_zero_start(make_captioner, img):
    torch.manual_seed(0)
    model = make_captioner("xattn", gate_scale=20.0).eval()
    batch = _batch(model, ["<image>Caption: a red circle"], [img(1)])
    with torch.no_grad():
        plain = model.lm(input_ids=batch["text"], attention_mask=batch["text_mask"]).logits
        assert torch.equal(model(batch).logits, plain)
        model.xattn[0].attn_gate.fill_(0.01)  # tanh(20 * 0.01) ~ 0.2: a small step opens it
        assert not torch.allclose(model(batch).logits, plain)
    with pytest.raises(ValueError, match="gate_scale"):
        make_captioner("xattn", gate_scale=0.0)


def test_vision_layer_reads_an_earlier_layer_of_the_tower(make_captioner, img, monkeypatch):
    """vision_layer -2 feeds the resampler the tower's penultimate hidden states (LLaVA's
    choice for a CLIP tower); a layer the tower lacks is a clear error."""
    torch.manual_seed(0)
    model = make_captioner("prefix", vision_layer=-2).eval()
    pixels = model.processor["image"]([[img(1)]])["image"][:, 0]  # (1, 3, H, W)
    seen = []
    resample = model.resampler.resample
    monkeypatch.setattr(model.resampler, "resample", lambda t, p: seen.append(t) or resample(t, p))
    with torch.no_grad():
        states = model.vision.model(pixel_values=pixels, output_hidden_states=True).hidden_states
        model.encode_images(pixels[:, None], torch.ones(1, dtype=torch.long))
    assert torch.equal(seen[0], states[-2]) and not torch.equal(seen[0], states[-1])
    with pytest.raises(ValueError, match="layer -9"):
        model.vision.layer_tokens({"image": pixels}, -9)
