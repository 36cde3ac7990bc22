"""The shared decoding layer over HF generate: settings, limits, stopping, streaming, KV cache."""

from __future__ import annotations

import pytest
import torch

from omnifuse.data.processors import build_word_tokenizer
from omnifuse.generation import (
    GenerationError,
    GenerationSettings,
    context_length,
    ensure_pad_token,
    hf_generate,
    left_pad,
    stream_generate,
    truncate_at_stop,
)

WORDS = "a red blue green circle square triangle small large left right of the and is".split()


@pytest.fixture(scope="module")
def lm_and_tok():
    from transformers import GPT2Config, GPT2LMHeadModel

    tok = build_word_tokenizer([" ".join(WORDS)])
    torch.manual_seed(0)
    cfg = GPT2Config(n_embd=32, n_layer=2, n_head=2, vocab_size=len(tok), n_positions=24)
    return GPT2LMHeadModel(cfg).eval(), tok


def _prompts(tok, texts):
    rows = [tok(t, add_special_tokens=False)["input_ids"] for t in texts]
    return left_pad(rows, ensure_pad_token(tok))


def test_settings_validate_and_map():
    with pytest.raises(GenerationError, match="strategy"):
        GenerationSettings(strategy="nucleus")
    with pytest.raises(GenerationError, match="top_p"):
        GenerationSettings(strategy="sample", top_p=0)
    with pytest.raises(GenerationError, match="unknown generation setting"):
        GenerationSettings.from_dict({"max_tokens": 3})
    with pytest.raises(GenerationError, match="above the limit of 16"):
        GenerationSettings(max_new_tokens=17).check_limit(16)
    assert GenerationSettings(strategy="beam", num_beams=3).hf_kwargs()["num_beams"] == 3
    assert GenerationSettings(strategy="sample", top_k=5).hf_kwargs()["do_sample"] is True


def test_left_pad():
    ids, mask = left_pad([[5, 6, 7], [8]], 0)
    assert ids.tolist() == [[5, 6, 7], [0, 0, 8]]
    assert mask.tolist() == [[1, 1, 1], [0, 0, 1]]


def test_greedy_matches_manual_argmax_with_and_without_cache(lm_and_tok):
    lm, tok = lm_and_tok
    ids, mask = _prompts(tok, ["a red circle"])
    cached = hf_generate(
        lm, tok, ids, mask, GenerationSettings(max_new_tokens=6, min_new_tokens=6), eos_token_id=[]
    )
    plain = hf_generate(
        lm,
        tok,
        ids,
        mask,
        GenerationSettings(max_new_tokens=6, min_new_tokens=6, use_cache=False),
        eos_token_id=[],
    )
    seq = ids[0].tolist()
    with torch.no_grad():
        for _ in range(6):
            seq.append(int(lm(torch.tensor([seq])).logits[0, -1].argmax()))
    assert cached.token_ids[0] == seq[ids.shape[1] :] == plain.token_ids[0]
    assert cached.finish_reasons == ["length"] and cached.new_tokens == 6


def test_batch_left_padding_gives_the_same_tokens_as_one_by_one(lm_and_tok):
    lm, tok = lm_and_tok
    s = GenerationSettings(max_new_tokens=5, min_new_tokens=5)
    both = hf_generate(lm, tok, *_prompts(tok, ["a red circle left of", "blue"]), s, eos_token_id=[])
    alone = hf_generate(lm, tok, *_prompts(tok, ["blue"]), s, eos_token_id=[])
    assert both.token_ids[1] == alone.token_ids[0]


def test_context_limit_is_a_clear_error(lm_and_tok):
    lm, tok = lm_and_tok
    assert context_length(lm.config) == 24
    ids, mask = _prompts(tok, ["a red circle"])
    with pytest.raises(GenerationError, match="exceeds the language model's context of 24"):
        hf_generate(lm, tok, ids, mask, GenerationSettings(max_new_tokens=30))
    long_ids, long_mask = _prompts(tok, [" ".join(["red"] * 30)])
    with pytest.raises(GenerationError, match="prompt is 30 tokens"):
        hf_generate(lm, tok, long_ids, long_mask, GenerationSettings(max_new_tokens=1))


def test_beam_and_sampling_return_several_sequences(lm_and_tok):
    lm, tok = lm_and_tok
    ids, mask = _prompts(tok, ["a red", "blue"])
    beam = hf_generate(
        lm,
        tok,
        ids,
        mask,
        GenerationSettings(strategy="beam", num_beams=3, num_return_sequences=2, max_new_tokens=5),
    )
    assert len(beam.texts) == 4
    s = GenerationSettings(strategy="sample", temperature=0.7, top_k=5, seed=3, max_new_tokens=4)
    first, again = (hf_generate(lm, tok, ids, mask, s) for _ in range(2))
    assert first.token_ids == again.token_ids  # seeded


def test_stop_strings_cut_the_text(lm_and_tok):
    lm, tok = lm_and_tok
    ids, mask = _prompts(tok, ["a red circle"])
    full = hf_generate(
        lm, tok, ids, mask, GenerationSettings(max_new_tokens=8, min_new_tokens=8), eos_token_id=[]
    )
    words = full.texts[0].split()
    assert len(words) >= 3
    stop = words[2]
    cut = hf_generate(lm, tok, ids, mask, GenerationSettings(max_new_tokens=8, stop=[stop]), eos_token_id=[])
    assert cut.texts[0] == truncate_at_stop(full.texts[0], [stop]).strip()
    assert cut.finish_reasons == ["stop"]


def test_streaming_yields_the_same_text(lm_and_tok):
    lm, tok = lm_and_tok
    ids, mask = _prompts(tok, ["a red circle"])
    s = GenerationSettings(max_new_tokens=6, min_new_tokens=6)
    stream = stream_generate(lambda st: hf_generate(lm, tok, ids, mask, s, eos_token_id=[], streamer=st), tok)
    pieces = list(stream)
    assert len(pieces) >= 2
    assert "".join(pieces).strip() == stream.output.texts[0]


def test_streaming_reraises_errors(lm_and_tok):
    lm, tok = lm_and_tok
    ids, mask = _prompts(tok, ["a red circle"])
    s = GenerationSettings(max_new_tokens=60)
    stream = stream_generate(lambda st: hf_generate(lm, tok, ids, mask, s, streamer=st), tok)
    with pytest.raises(GenerationError, match="context"):
        list(stream)
