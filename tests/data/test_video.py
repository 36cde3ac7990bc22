"""Video decoding, TSN sampling, VideoProcessor and the moving-shapes clips of the synth world."""

from __future__ import annotations

import json
import random
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from omnifuse.data.loader import Collator
from omnifuse.data.processors import ImageSettings, Processor
from omnifuse.data.sample import CorruptSampleError, CorruptSamplePolicy, Sample
from omnifuse.data.video import (
    VideoClip,
    VideoProcessor,
    VideoSettings,
    VideoTooLargeError,
    load_video,
    segment_indices,
)

av = pytest.importorskip("av")


@pytest.fixture(scope="module")
def clips_dir(tmp_path_factory) -> Path:
    from omnifuse.data.synth import SynthConfig, generate

    out = tmp_path_factory.mktemp("clips")
    cfg = SynthConfig(n=12, seed=3, modalities=["video"], max_objects=2, video_frames=8, video_size=32)
    generate(cfg, out, progress=False, workers=1)
    return out


def rows(directory: Path, split: str = "train") -> list[dict]:
    return [json.loads(line) for line in (directory / f"{split}.jsonl").read_text().splitlines()]


def counting_clip(n: int, size: int = 8) -> np.ndarray:
    """Frame t is flat gray level 4 * t, so a processed frame tells which frame it was."""
    return np.stack([np.full((size, size, 3), 4 * t, dtype=np.uint8) for t in range(n)])


# ---- synthetic clips ---------------------------------------------------------------------------
def test_synth_clips_are_mp4_with_motion_captions(clips_dir):
    row = rows(clips_dir)[0]
    assert row["video"].endswith(".mp4") and (clips_dir / row["video"]).is_file()
    directions = [m["direction"] for m in row["motion"]]
    assert all(d in {"up", "down", "left", "right"} for d in directions)
    canonical = row["video_captions"][0]
    for m in row["motion"]:
        assert f"a {m['object']} moves {m['direction']}" in canonical
    assert "image" not in row  # video only: no image files asked for


def test_synth_mp4_round_trip_matches_rendered_frames(clips_dir):
    from omnifuse.data.synth import SynthConfig, make_scene, sample_rng
    from omnifuse.data.synth.motion import render_frames, sample_tracks

    cfg = SynthConfig(n=12, seed=3, modalities=["video"], max_objects=2)
    _, scene = make_scene(cfg, 0)
    tracks = sample_tracks(scene, sample_rng(3, 0, zlib.crc32(b"video")), 32)
    expected = render_frames(tracks, 32, 8)
    clip = load_video(clips_dir / rows(clips_dir)[0]["video"])
    assert clip.frames.shape == (8, 32, 32, 3) and clip.frames.dtype == np.uint8
    assert clip.fps == pytest.approx(8.0)
    err = np.abs(clip.frames.astype(int) - expected.astype(int))
    assert err.mean() < 2.0  # near-lossless H.264 4:4:4


def test_synth_clips_are_deterministic(clips_dir, tmp_path):
    from omnifuse.data.synth import SynthConfig, generate

    cfg = SynthConfig(n=12, seed=3, modalities=["video"], max_objects=2, video_frames=8, video_size=32)
    generate(cfg, tmp_path, progress=False, workers=1)
    assert (tmp_path / "train.jsonl").read_text() == (clips_dir / "train.jsonl").read_text()
    for row in rows(clips_dir)[:3]:
        assert (tmp_path / row["video"]).read_bytes() == (clips_dir / row["video"]).read_bytes()


def test_direction_is_not_given_away_by_the_middle_frame():
    from omnifuse.data.synth import SynthConfig, make_scene
    from omnifuse.data.synth.motion import sample_tracks

    cfg = SynthConfig(n=400, seed=0, max_objects=1)
    mids = {}
    for i in range(400):
        _, scene = make_scene(cfg, i)
        t = sample_tracks(scene, np.random.default_rng(i), 32)[0]
        mids.setdefault(t.direction, []).append(t.at(0.5))
    means = np.array([np.mean(v, axis=0) for v in mids.values()])  # (4, 2) mean midpoint per direction
    assert len(mids) == 4 and np.ptp(means, axis=0).max() < 2.0  # pixels: the same box for all


def test_synth_default_has_no_video_and_npy_format(tmp_path):
    from omnifuse.data.synth import SynthConfig, generate

    generate(SynthConfig(n=3, seed=0, image_size=24), tmp_path / "img", progress=False)
    assert "video" not in rows(tmp_path / "img")[0]
    generate(
        SynthConfig(n=3, seed=0, modalities=["video"], video_format="npy"), tmp_path / "npy", progress=False
    )
    row = rows(tmp_path / "npy")[0]
    assert row["video"].endswith(".npy")
    assert load_video(tmp_path / "npy" / row["video"]).frames.shape == (8, 32, 32, 3)
    with pytest.raises(ValueError, match="video_format"):
        SynthConfig(video_format="avi")


# ---- decoding ----------------------------------------------------------------------------------
def test_load_video_from_array_frame_dir_npy_and_bytes(clips_dir, tmp_path):
    arr = counting_clip(5)
    assert load_video(arr).frames.shape == (5, 8, 8, 3)
    assert load_video(arr.astype(np.float32) / 255.0).frames.dtype == np.uint8
    frames = tmp_path / "frames"
    frames.mkdir()
    for t, frame in enumerate(arr):
        Image.fromarray(frame).save(frames / f"{t:03d}.png")
    np.testing.assert_array_equal(load_video(frames).frames, arr)
    np.save(tmp_path / "clip.npy", arr)
    np.testing.assert_array_equal(load_video(tmp_path / "clip.npy").frames, arr)
    mp4 = clips_dir / rows(clips_dir)[0]["video"]
    np.testing.assert_array_equal(load_video(mp4.read_bytes()).frames, load_video(mp4).frames)


def test_long_clips_keep_every_kth_frame():
    clip = load_video(counting_clip(40), max_frames=16)
    assert clip.stride == 3 and clip.num_frames == 14
    assert clip.frames[1, 0, 0, 0] == 4 * 3


@pytest.mark.parametrize(
    "make, reason",
    [
        (lambda p: p.write_bytes(b"this is not a video at all" * 20), "cannot open video"),
        (lambda p: p.write_bytes(b""), "empty video file"),
    ],
)
def test_corrupt_files_raise_corrupt_sample_error(tmp_path, make, reason):
    path = tmp_path / "bad.mp4"
    make(path)
    with pytest.raises(CorruptSampleError, match=reason):
        load_video(path)


def test_truncated_mp4_raises(clips_dir):
    data = (clips_dir / rows(clips_dir)[0]["video"]).read_bytes()
    with pytest.raises(CorruptSampleError, match="video"):
        load_video(data[: len(data) // 2], source="shard-0:000000")


def test_file_without_video_stream_raises(tmp_path):
    path = tmp_path / "silence.wav"
    with av.open(str(path), mode="w", format="wav") as container:
        stream = container.add_stream("pcm_s16le", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 800), dtype=np.int16), format="s16", layout="mono")
        frame.sample_rate = 8000
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    with pytest.raises(CorruptSampleError, match="no video stream"):
        load_video(path)


def test_missing_file_and_bad_array_name_the_problem(tmp_path):
    with pytest.raises(CorruptSampleError, match="not found"):
        load_video(tmp_path / "nope.mp4", source="train.jsonl:3")
    with pytest.raises(CorruptSampleError, match=r"\(F, H, W, 3\)"):
        load_video(np.zeros((2, 4, 4, 5), dtype=np.uint8))


def test_pixel_cap_refuses_before_decoding(clips_dir):
    path = clips_dir / rows(clips_dir)[0]["video"]
    proc = VideoProcessor(VideoSettings(max_pixels=32 * 31))
    with pytest.raises(VideoTooLargeError, match=r"32x32 = 1024 pixels.*max_pixels=992"):
        proc.decode(path)
    with pytest.raises(VideoTooLargeError, match="max_pixels"):
        proc([counting_clip(3, size=40)])
    assert isinstance(VideoTooLargeError("x"), CorruptSampleError)  # the loader skips and counts it


# ---- sampling and processing -------------------------------------------------------------------
def test_segment_indices_tsn():
    assert segment_indices(16, 4) == [2, 6, 10, 14]
    assert segment_indices(3, 8) == [0, 1, 2]
    a = segment_indices(100, 8, random.Random(0))
    assert a == segment_indices(100, 8, random.Random(0))
    assert all(i * 100 // 8 <= t < (i + 1) * 100 // 8 for i, t in enumerate(a))
    assert len({tuple(segment_indices(100, 8, random.Random(s))) for s in range(5)}) > 1


def picked_frames(batch: dict[str, torch.Tensor], proc: VideoProcessor) -> list[list[int]]:
    """Recover the frame indices from `counting_clip` values after normalisation."""
    s = proc.settings.image
    red = batch["video"][:, :, 0, 0, 0] * s.std[0] + s.mean[0]  # (B, F) in [0, 1]
    out = (red * 255 / 4).round().long()
    return [row[m.bool()].tolist() for row, m in zip(out, batch["video_mask"])]


def test_processor_shapes_masks_and_padding(clips_dir):
    proc = VideoProcessor(VideoSettings(num_frames=4, image=ImageSettings(size=16)))
    mp4 = clips_dir / rows(clips_dir)[0]["video"]
    batch = proc([str(mp4), counting_clip(2)])
    assert batch["video"].shape == (2, 4, 3, 16, 16) and batch["video"].dtype == torch.float32
    assert batch["video_mask"].tolist() == [[1, 1, 1, 1], [1, 1, 0, 0]]
    assert batch["video"][1, 2:].abs().sum() == 0  # padded frames are zeros
    assert picked_frames(batch, proc)[1] == [0, 1]


def test_uniform_eval_and_seeded_random_train_sampling():
    proc = VideoProcessor(VideoSettings(num_frames=4, image=ImageSettings(size=8)))
    clip = counting_clip(32)
    ev = picked_frames(proc([clip]), proc)[0]
    assert ev == [4, 12, 20, 28]  # middle of each segment
    assert picked_frames(proc([clip], train=True), proc)[0] == ev  # no rngs: evaluation sampling
    train = [picked_frames(proc([clip], train=True, rngs=[random.Random(s)]), proc)[0] for s in (1, 1, 2)]
    assert train[0] == train[1] and train[0] != train[2]
    assert all(8 * i <= t < 8 * (i + 1) for i, t in enumerate(train[2]))
    uniform = VideoProcessor(
        VideoSettings(num_frames=4, train_sampling="uniform", image=ImageSettings(size=8))
    )
    assert picked_frames(uniform([clip], train=True, rngs=[random.Random(1)]), uniform)[0] == ev


def test_processor_settings_round_trip_processor_json(tmp_path):
    proc = VideoProcessor(VideoSettings(num_frames=6, train_sampling="uniform", image=ImageSettings(size=24)))
    Processor({"video": proc}).save(tmp_path)
    saved = json.loads((tmp_path / "processor.json").read_text())["video"]
    assert saved["kind"] == "video" and saved["num_frames"] == 6 and saved["image"]["size"] == 24
    loaded = Processor.load(tmp_path)["video"]
    assert isinstance(loaded, VideoProcessor) and loaded.settings == proc.settings


def test_recipe_processor_section_parses_video_settings():
    from omnifuse.train.config import ProcessorConfig
    from omnifuse.utils.config import ConfigError, from_dict

    cfg = from_dict(ProcessorConfig, {"video": {"num_frames": 4, "image": {"size": 16}}})
    assert cfg.video.num_frames == 4 and cfg.video.image.size == 16
    with pytest.raises(ConfigError, match="train_sampling"):
        from_dict(ProcessorConfig, {"video": {"train_sampling": "dense"}})


def test_collator_skips_and_counts_corrupt_videos(clips_dir, tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00" * 300)
    good = str(clips_dir / rows(clips_dir)[0]["video"])
    samples = [
        Sample({"video": good}, meta={"source": "m.jsonl:1"}),
        Sample({"video": str(bad)}, meta={"source": "m.jsonl:2"}),
        Sample({"video": counting_clip(3)}, meta={"source": "m.jsonl:3"}),
    ]
    policy = CorruptSamplePolicy()
    proc = Processor({"video": VideoProcessor(VideoSettings(num_frames=4, image=ImageSettings(size=16)))})
    batch = Collator(proc, ["video"], train=True, seed=0, policy=policy)(list(enumerate(samples)))
    assert batch["index"].tolist() == [0, 2] and batch["video"].shape == (2, 4, 3, 16, 16)
    assert policy.skipped == 1 and "m.jsonl:2" in policy.examples[0]
    with pytest.raises(CorruptSampleError, match="strict"):
        Collator(proc, ["video"], policy=CorruptSamplePolicy(strict=True))(list(enumerate(samples)))


def test_video_clip_passes_through():
    clip = VideoClip(counting_clip(3))
    assert load_video(clip) is clip


def test_direction_pairs_share_objects_and_differ_in_one_direction(tmp_path):
    from omnifuse.data.synth import SynthConfig, generate

    cfg = SynthConfig(n=10, seed=0, modalities=["video"], video_direction_pairs=True, video_format="npy")
    generate(cfg, tmp_path, progress=False)
    train = rows(tmp_path)
    for a, b in zip(train[0::2], train[1::2]):
        assert a["objects"] == b["objects"]
        assert [m["object"] for m in a["motion"]] == [m["object"] for m in b["motion"]]
        changed = [x != y for x, y in zip(a["motion"], b["motion"])]
        assert sum(changed) == 1
    with pytest.raises(ValueError, match="choose one"):
        SynthConfig(video_direction_pairs=True, minimal_pairs=True)
