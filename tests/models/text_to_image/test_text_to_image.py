"""The text-to-image prior: loss masking and weights, guidance, seeded sampling, reranking, artifact."""

from __future__ import annotations

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel, LogitsProcessorList

from omnifuse.data.processors import (
    ImageProcessor,
    ImageSettings,
    Processor,
    TextProcessor,
    build_word_tokenizer,
)
from omnifuse.generation import ClassifierFreeGuidance, GenerationError, GenerationSettings
from omnifuse.models.image_tokenizer import ImageTokenizer, ImageTokenizerConfig
from omnifuse.models.registry import get_spec
from omnifuse.models.text_to_image import TextToImage, TextToImageConfig, clip_scores, rerank_by_clip

pytest.importorskip("vector_quantize_pytorch")

WORDS = "a red green blue circle square star above below left of right"


def tokenizer(grid: int = 4, codebook_size: int = 16) -> ImageTokenizer:
    torch.manual_seed(0)
    cfg = ImageTokenizerConfig(
        grid=grid, codebook_size=codebook_size, hidden=8, codebook_dim=8, kmeans_init=False
    )
    return ImageTokenizer(cfg, Processor({"image": ImageProcessor(ImageSettings(size=16))})).eval()


def prior(**kw) -> TextToImage:
    torch.manual_seed(0)
    text = TextProcessor(build_word_tokenizer([WORDS]), max_length=kw.pop("max_length", 8))
    cfg = TextToImageConfig(image_tokenizer="mem", hidden=32, layers=2, heads=2, **kw)
    return TextToImage(cfg, tokenizer(), Processor({"text": text}))


def sample(seed=0, **kw) -> GenerationSettings:
    return GenerationSettings(strategy="sample", seed=seed, **kw)


def test_registered():
    spec = get_spec("text_to_image")
    assert spec.can("generate_image") and not spec.can("generate_text")
    assert spec.modalities(TextToImageConfig(image_tokenizer="x")) == ["image", "text"]


def test_loss_masks_padding_and_dropped_text_and_weights_1_to_7():
    model = prior()
    T, N = model.text_length, model.image_tokens
    text = model.encode_prompts(["a red circle", "a blue square above a green star"])  # padded to T
    codes = torch.randint(0, 16, (2, N))
    torch.manual_seed(1)
    logits = torch.randn(2, T + N, model.vocab_size)
    dropped = torch.tensor([False, False])
    out = model.losses(logits, text, codes, dropped)
    assert float(out.loss) == pytest.approx(
        (1 * float(out.text_loss) + 7 * float(out.image_loss)) / 8, rel=1e-5
    )
    # logits that predict padding, and non-code logits at image positions, do not matter
    changed = logits.clone()
    pad_targets = (text[:, 1:] == model.pad_id).nonzero()
    changed[pad_targets[:, 0], pad_targets[:, 1]] += 100 * torch.randn(len(pad_targets), model.vocab_size)
    changed[:, T:, : model.image_offset] += 50.0
    again = model.losses(changed, text, codes, dropped)
    assert float(again.text_loss) == pytest.approx(float(out.text_loss), rel=1e-6)
    assert float(again.image_loss) == pytest.approx(float(out.image_loss), rel=1e-6)
    # a dropped text contributes no text loss; the image loss still counts
    only_second = model.losses(logits, text, codes, torch.tensor([True, False]))
    second = model.losses(logits[1:], text[1:], codes[1:], dropped[1:])
    assert float(only_second.text_loss) == pytest.approx(float(second.text_loss), rel=1e-6)
    assert float(only_second.image_loss) == pytest.approx(float(out.image_loss), rel=1e-6)


def test_forward_trains_and_drops_text():
    model = prior(text_drop_prob=0.5).train()
    batch = model.processor({"text": ["a red circle", "a blue star"] * 4})
    batch["image"] = torch.randn(8, 3, 16, 16)
    out = model(batch)
    out.loss.backward()
    assert model.lm.transformer.wpe.row.weight.grad is not None  # grid positions are learned
    assert all(p.grad is None for p in model.image_tokenizer.parameters())  # the tokenizer is frozen
    assert not model.image_tokenizer.training


def test_row_and_column_positions_only_on_image_tokens():
    model = prior()
    pos = model.lm.transformer.wpe
    ids = torch.arange(model.text_length + 1 + model.image_tokens).unsqueeze(0)
    out = pos(ids)
    text_part = ids[:, : model.text_length + 1]
    assert torch.equal(out[:, : model.text_length + 1], pos.wpe(text_part))
    first = model.text_length + 1
    expected = pos.wpe(ids[:, first + 5]) + pos.row.weight[1] + pos.col.weight[1]  # code 5 of a 4x4 grid
    assert torch.allclose(out[:, first + 5], expected)


def test_sampling_is_deterministic_for_a_seed():
    model = prior().eval()
    a = model.generate(["a red circle", "a blue star"], n=2, settings=sample(7), guidance_scale=2.0)
    b = model.generate(["a red circle", "a blue star"], n=2, settings=sample(7), guidance_scale=2.0)
    c = model.generate(["a red circle", "a blue star"], n=2, settings=sample(8), guidance_scale=2.0)
    assert a.codes.shape == (4, 16) and len(a.images) == 4 and a.images[0].size == (16, 16)
    assert torch.equal(a.codes, b.codes) and not torch.equal(a.codes, c.codes)
    assert int(a.codes.min()) >= 0 and int(a.codes.max()) < 16  # only image codes are sampled
    no_cache = model.generate(
        ["a red circle", "a blue star"], n=2, settings=sample(7, use_cache=False), guidance_scale=2.0
    )
    assert torch.equal(a.codes, no_cache.codes)  # the guidance twin's KV cache changes nothing


def test_guidance_scale_1_is_plain_conditional_sampling():
    torch.manual_seed(0)
    lm = GPT2LMHeadModel(GPT2Config(n_embd=16, n_layer=1, n_head=2, vocab_size=30, n_positions=32)).eval()
    prompt = torch.tensor([[3, 4, 5], [6, 7, 8]])
    null = torch.zeros_like(prompt)
    kw = dict(
        do_sample=True, max_new_tokens=10, min_new_tokens=10, top_k=0, pad_token_id=0, eos_token_id=None
    )

    def run(processors, ids=prompt):
        torch.manual_seed(3)
        return lm.generate(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            logits_processor=LogitsProcessorList(processors),
            **kw,
        )

    plain = run([])
    assert torch.equal(run([ClassifierFreeGuidance(lm, null, 1.0)]), plain)
    assert not torch.equal(run([ClassifierFreeGuidance(lm, null, 4.0)]), plain)
    # scale 0 is sampling from the unconditional twin
    assert torch.equal(run([ClassifierFreeGuidance(lm, null, 0.0)])[:, 3:], run([], null)[:, 3:])


def test_guidance_and_prompt_errors():
    model = prior(max_length=6)
    with pytest.raises(GenerationError, match="guidance_scale"):
        model.generate("a red circle", settings=sample(), guidance_scale=-1)
    with pytest.raises(GenerationError, match="non-empty"):
        model.generate([""], settings=sample())
    long = "a red circle above a blue square left of a green star"
    assert model.encode_prompts([long]).shape == (1, 6)  # truncated (with a warning)
    strict = prior(max_length=6, long_prompt="error")
    with pytest.raises(GenerationError, match="text context is 6"):
        strict.encode_prompts([long])


def test_mismatched_tokenizer_is_refused():
    text = TextProcessor(build_word_tokenizer([WORDS]), max_length=8)
    with pytest.raises(ValueError, match="grid 4.*expects grid 8"):
        TextToImage(TextToImageConfig(image_tokenizer="t", grid=8), tokenizer(), Processor({"text": text}))
    with pytest.raises(ValueError, match="codebook_size 16.*expects codebook_size 32"):
        TextToImage(
            TextToImageConfig(image_tokenizer="t", codebook_size=32), tokenizer(), Processor({"text": text})
        )


def test_rerank_order_follows_clip_scores(tiny_model):
    clip = tiny_model()
    model = prior().eval()
    out = model.generate(["a red circle", "a blue star"], n=3, settings=sample(1))
    ranked = rerank_by_clip(out, clip)
    scores = clip_scores(clip, out.prompts, out.images)
    for p in range(2):
        block = ranked.scores[p * 3 : (p + 1) * 3]
        assert block == sorted(block, reverse=True)
        assert sorted(block) == pytest.approx(sorted(scores[p * 3 : (p + 1) * 3].tolist()), abs=1e-6)
        assert ranked.prompts[p * 3 : (p + 1) * 3] == [out.prompts[p * 3]] * 3
    best = int(torch.argmax(scores[:3]))
    assert torch.equal(ranked.codes[0], out.codes[best])


def test_artifact_round_trip(tmp_path):
    model = prior().eval()
    model.save_pretrained(tmp_path / "t2i")
    loaded = TextToImage.from_pretrained(tmp_path / "t2i")
    a = model.generate("a red circle", n=2, settings=sample(3), guidance_scale=1.5)
    b = loaded.generate("a red circle", n=2, settings=sample(3), guidance_scale=1.5)
    assert torch.equal(a.codes, b.codes)
    assert loaded.image_tokenizer.grid == 4


def test_decode_workload_joins_bench_generate():
    from omnifuse.bench.generate import bench_generate

    workload = get_spec("text_to_image").extras["decode_workload"](prior())
    assert workload.max_new_tokens == 16
    result = bench_generate(
        [workload], (2,), ("eager-fp32", "bf16-weights"), iters=1, budget_s=1, progress=None
    )
    assert len(result["rows"]) == 2 * 2 and all(r["tokens_per_s"] > 0 for r in result["rows"])
