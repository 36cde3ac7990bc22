"""Gato tokenisation: mu-law round trip, disjoint ranges, the loss mask, patches, batches."""

from __future__ import annotations

import numpy as np
import pytest

from omnifuse.data.episodes import Episode, FieldSpec, GatoTokenizer, TaskSpace
from omnifuse.data.episodes.tokenize import bin_centers, discretize, inverse_mu_law, mu_law
from omnifuse.data.processors import build_word_tokenizer
from omnifuse.data.sample import DataError


@pytest.fixture(scope="module")
def tok() -> GatoTokenizer:
    text = build_word_tokenizer(["go to the red ball", "a blue square", "what color is it", "red"])
    return GatoTokenizer(text, n_discrete=16)


CONTROL = TaskSpace(
    observation=[FieldSpec("state", "continuous", [3])],
    action=FieldSpec("action", "discrete", [1], n=[2]),
)
BABYAI = TaskSpace(
    observation=[
        FieldSpec("grid", "grid", [7, 7, 3], n=[11, 6, 3]),
        FieldSpec("direction", "discrete", [1], n=[4]),
    ],
    action=FieldSpec("action", "discrete", [1], n=[7]),
    mission=True,
)


def test_mu_law_matches_formula_and_inverts():
    x = np.array([-256.0, -3.0, -0.01, 0.0, 0.5, 7.0, 256.0])
    y = mu_law(x)
    expected = np.sign(x) * np.log(np.abs(x) * 100 + 1) / np.log(256 * 100 + 1)
    np.testing.assert_allclose(y, expected)
    assert y.min() == -1.0 and y.max() == 1.0
    np.testing.assert_allclose(inverse_mu_law(y), x, rtol=1e-9, atol=1e-12)


def test_mu_law_round_trip_within_one_bin(tok):
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0, 1, 500), rng.uniform(-250, 250, 500), [0.0, 1e-4, -1e-4]])
    tokens = tok.encode_continuous(x)
    lo, hi = tok.ranges()["continuous"]
    assert tokens.min() >= lo and tokens.max() < hi
    back = tok.decode_continuous(tokens)
    width = 2.0 / tok.n_bins
    # In companded space the decoded value is the centre of the value's own bin.
    assert np.max(np.abs(mu_law(back) - mu_law(x))) <= width / 2 + 1e-12
    # Re-encoding the decoded value gives the same token.
    np.testing.assert_array_equal(tok.encode_continuous(back), tokens)
    # A clearly different value lands in a different bin.
    assert discretize(mu_law(np.array([0.0])))[0] != discretize(mu_law(np.array([0.05])))[0]
    assert bin_centers(np.array([0, 1023])).tolist() == pytest.approx([-1 + width / 2, 1 - width / 2])


def test_token_ranges_are_disjoint_and_cover_the_vocabulary(tok):
    ranges = sorted(tok.ranges().values())
    assert ranges[0][0] == 0 and ranges[-1][1] == tok.vocab_size
    for (a0, a1), (b0, _b1) in zip(ranges, ranges[1:]):
        assert a1 == b0 and a0 < a1  # contiguous, non-empty, no overlap
    assert tok.ranges()["continuous"][1] - tok.ranges()["continuous"][0] == 1024
    assert tok.ranges()["text"] == (0, len(tok.text_tokenizer))
    text_ids = tok.encode_text("go to the red ball")
    assert all(0 <= i < tok.text_size for i in text_ids)
    assert tok.decode_text(text_ids) == "go to the red ball"
    d = tok.encode_discrete(np.array([0, 3, 15]))
    assert set(d.tolist()) <= set(range(*tok.ranges()["discrete"]))
    with pytest.raises(DataError, match="outside"):
        tok.encode_discrete(np.array([16]))


def _episode(steps: int, space: TaskSpace, seed: int = 0) -> Episode:
    rng = np.random.default_rng(seed)
    obs = {}
    for spec in space.observation:
        if spec.kind == "continuous":
            obs[spec.name] = rng.normal(size=(steps, *spec.shape)).astype(np.float32)
        else:
            n = spec.n if spec.kind == "grid" else spec.n * spec.shape[0]
            obs[spec.name] = np.stack([rng.integers(0, k, size=(steps, *spec.shape[:-1])) for k in n], -1)
    actions = rng.integers(0, space.action.n[0], size=(steps, 1))
    return Episode(
        "test", seed, obs, actions, np.ones(steps, np.float32), "go to the red ball" if space.mission else ""
    )


def test_loss_mask_covers_actions_only_in_episodes(tok):
    ep = _episode(5, CONTROL)
    seq = tok.episode_sequence(CONTROL, ep)
    assert len(seq) == 5 * tok.step_tokens(CONTROL) == 5 * (3 + 1 + 1)
    targets = seq.tokens[seq.loss_mask]
    np.testing.assert_array_equal(tok.decode_discrete(targets), ep.actions[:, 0])
    # Observations and separators are never targets.
    lo, hi = tok.ranges()["continuous"]
    obs = (seq.tokens >= lo) & (seq.tokens < hi)
    assert obs.sum() == 15 and not (seq.loss_mask & obs).any()
    assert not seq.loss_mask[seq.tokens == tok.sep_id].any()
    # Every action follows a separator.
    assert (seq.tokens[np.flatnonzero(seq.loss_mask) - 1] == tok.sep_id).all()


def test_babyai_window_mission_patches_and_local_positions(tok):
    ep = _episode(4, BABYAI)
    seq = tok.episode_sequence(BABYAI, ep, start=1, stop=3)
    mission = tok.encode_text(ep.mission)
    assert seq.tokens[: len(mission)].tolist() == mission and not seq.loss_mask[: len(mission)].any()
    assert len(seq) == len(mission) + 2 * tok.step_tokens(BABYAI) == len(mission) + 2 * 4
    grid = seq.patches["grid"]
    assert grid.shape == (2, 49 * 20) and (grid.sum(1) == 49 * 3).all()  # one-hot: 3 channels per cell
    assert (seq.tokens[seq.patch_at["grid"]] == tok.placeholder["grid"]).all()
    assert seq.local_pos[seq.patch_at["grid"]].tolist() == [1, 1]
    assert not seq.local_pos[seq.loss_mask].any()  # actions are outside observations
    np.testing.assert_array_equal(tok.decode_discrete(seq.tokens[seq.loss_mask]), ep.actions[1:3, 0])
    # A demonstration prompt comes first and keeps its own action targets.
    prompted = tok.episode_sequence(BABYAI, ep, 2, 4, prompt=(_episode(3, BABYAI, 1), 0, 3))
    assert prompted.loss_mask.sum() == 3 + 2
    tok.check_space(BABYAI)
    with pytest.raises(DataError, match="n_discrete"):
        tok.check_space(
            TaskSpace([FieldSpec("s", "continuous", [2])], FieldSpec("action", "discrete", [1], n=[99]))
        )


def test_caption_vqa_text_masks_and_collate(tok):
    image = np.zeros((40, 40, 3), dtype=np.uint8)
    cap = tok.caption_sequence(image, "a blue square")
    n_patches = (32 // 8) ** 2
    assert cap.patches["image"].shape == (n_patches, 3 * 8 * 8)
    assert not cap.loss_mask[: n_patches + 1].any() and cap.loss_mask[n_patches + 1 :].all()
    assert cap.tokens[-1] == tok.eos_id
    vqa = tok.vqa_sequence(image, "what color is it", "red")
    assert tok.decode_text(vqa.tokens[vqa.loss_mask][:-1]) == "red"
    text = tok.text_sequence("go to the red ball")
    assert text.loss_mask.all()
    batch = tok.collate([cap, text, vqa])
    b, t = batch["tokens"].shape
    assert b == 3 and t == max(len(cap), len(text), len(vqa))
    assert batch["image_patches"].shape == (2 * n_patches, 192)
    flat = batch["tokens"].reshape(-1)[batch["image_patch_at"]]
    assert (flat == tok.placeholder["image"]).all()
    assert not batch["loss_mask"][batch["attention_mask"] == 0].any()
    with pytest.raises(DataError, match="context"):
        tok.collate([cap], max_length=5)


def test_continuous_action_decodes_clipped(tok):
    space = TaskSpace(
        [FieldSpec("state", "continuous", [3])], FieldSpec("action", "continuous", [1], low=[-2], high=[2])
    )
    tokens = tok.encode_action(space, np.array([1.3]))
    assert tok.decode_action(space, tokens)[0] == pytest.approx(1.3, rel=0.01)
    assert tok.decode_action(space, tok.encode_action(space, np.array([50.0])))[0] == 2.0
    assert tok.action_choices(space) == [tok.ranges()["continuous"]]


def test_processor_windows_fit_context_and_window_steps(tok):
    import random

    from omnifuse.data.episodes.processor import GatoProcessor

    ep = _episode(50, CONTROL)
    ep.space = CONTROL
    per_step = tok.step_tokens(CONTROL)
    proc = GatoProcessor(tok, context_length=64, prompt_prob=0.0)
    seq = proc.sequence({"kind": "episode", "episode": ep, "demos": [ep]}, random.Random(0))
    assert len(seq) == (64 // per_step) * per_step  # as many whole steps as fit
    short = GatoProcessor(tok, context_length=64, prompt_prob=0.0, window_steps=2)
    seq = short.sequence({"kind": "episode", "episode": ep, "demos": [ep]}, random.Random(0))
    assert len(seq) == 2 * per_step and seq.loss_mask.sum() == 2
    prompted = GatoProcessor(tok, context_length=64, prompt_prob=1.0, prompt_steps=3, window_steps=2)
    other = _episode(10, CONTROL, seed=1)
    seq = prompted.sequence({"kind": "episode", "episode": ep, "demos": [ep, other]}, random.Random(0))
    assert len(seq) == (3 + 2) * per_step  # the demonstration's last 3 steps, then the window
    np.testing.assert_array_equal(tok.decode_discrete(seq.tokens[seq.loss_mask][:3]), other.actions[-3:, 0])
    with pytest.raises(ValueError, match="window_steps"):
        GatoProcessor(tok, window_steps=0)
