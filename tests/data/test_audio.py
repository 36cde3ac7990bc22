"""Audio loading, resampling, log-mel features, corrupt files, and espeak-ng spoken captions."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from omnifuse.data.audio import (
    AudioClip,
    AudioProcessor,
    AudioSettings,
    load_audio,
    mel_filterbank,
    resample,
    write_audio,
)
from omnifuse.data.decode import decode_value
from omnifuse.data.loader import Collator
from omnifuse.data.processors import Processor
from omnifuse.data.sample import CorruptSampleError, CorruptSamplePolicy, Sample


def sine(freq: float, rate: int, seconds: float = 1.0, channels: int = 1) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    wave = 0.5 * np.sin(2 * np.pi * freq * t).astype(np.float32)
    return np.stack([wave] * channels) if channels > 1 else wave


def dominant_frequency(wave: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(wave * np.hanning(len(wave))))
    return float(np.fft.rfftfreq(len(wave), 1 / rate)[spectrum.argmax()])


@pytest.mark.parametrize("ext", ["wav", "flac", "ogg"])
def test_round_trip_formats(tmp_path, ext):
    wave = sine(440, 16_000, 0.5, channels=2)
    path = write_audio(tmp_path / f"a.{ext}", wave, 16_000)
    clip = load_audio(path)
    assert clip.sample_rate == 16_000 and clip.waveform.shape[0] == 2
    assert abs(clip.waveform.shape[1] - 8000) <= (0 if ext != "ogg" else 1024)
    assert abs(dominant_frequency(clip.waveform[0], 16_000) - 440) < 5
    if ext != "ogg":  # lossless
        np.testing.assert_allclose(clip.waveform[:, :8000], wave, atol=1e-3)
    assert isinstance(decode_value("audio", str(path)), AudioClip)  # registered decoder
    assert load_audio(path.read_bytes()).sample_rate == 16_000  # encoded bytes too


def test_resampling_keeps_the_frequency_and_removes_aliases():
    x = torch.from_numpy(sine(1000, 44_100, 1.0))
    y = resample(x, 44_100, 16_000)
    assert y.shape == (16_000,)
    assert abs(dominant_frequency(y.numpy(), 16_000) - 1000) < 2
    ref = 0.5 * np.sin(2 * np.pi * 1000 * np.arange(16_000) / 16_000)
    np.testing.assert_allclose(y.numpy()[200:-200], ref[200:-200], atol=1e-3)
    # 10 kHz is above the new Nyquist rate (8 kHz): a band-limited resampler removes it, not folds it to 6 kHz
    alias = resample(torch.from_numpy(sine(10_000, 44_100, 1.0)), 44_100, 16_000)
    assert alias[200:-200].abs().max() < 0.01
    up = resample(y, 16_000, 22_050)  # and back up, batched
    assert up.shape == (22_050,)
    assert resample(torch.stack([x, x]), 44_100, 16_000).shape == (2, 16_000)


def test_mel_filterbank_shape_and_coverage():
    fb = mel_filterbank(16_000, 400, 40)
    assert fb.shape == (201, 40) and (fb >= 0).all()
    assert (fb.sum(0) > 0).all()  # no empty filter
    centres = fb.argmax(0)
    assert (centres[1:] >= centres[:-1]).all()  # increasing frequency


def test_processor_log_mel_batch_mask_and_settings(tmp_path):
    proc = AudioProcessor(n_mels=32, max_seconds=1.0, mean=-5.0, std=4.0)
    long = (sine(440, 44_100, 1.5, channels=2), 44_100)  # stereo, 44.1 kHz, longer than max
    short = (sine(2000, 16_000, 0.3), 16_000)
    batch = proc([long, short])
    assert batch["audio"].shape == (2, 32, 100) and batch["audio"].dtype == torch.float32
    assert batch["audio_mask"].tolist()[0] == [1] * 100
    assert batch["audio_mask"][1].sum() == 30  # 0.3 s of 10 ms frames, the rest padding
    assert torch.isfinite(batch["audio"]).all()
    # the 2 kHz tone lands in a higher mel band than the 440 Hz one
    assert batch["audio"][1, :, :20].mean(1).argmax() > batch["audio"][0, :, :20].mean(1).argmax()
    # saved and loaded with the model: same settings, same features
    Processor({"audio": proc}).save(tmp_path)
    settings = json.loads((tmp_path / "processor.json").read_text())["audio"]
    assert {"sample_rate", "n_mels", "n_fft", "hop_length", "max_seconds", "mean", "std"} <= set(settings)
    loaded = Processor.load(tmp_path)["audio"]
    torch.testing.assert_close(loaded([long, short])["audio"], batch["audio"])


def test_fit_normalization_and_waveform_mode():
    proc = AudioProcessor(n_mels=16, max_seconds=0.5)
    mean, std = proc.fit_normalization([(sine(f, 16_000, 0.5), 16_000) for f in (300, 900)])
    feats = proc([(sine(300, 16_000, 0.5), 16_000), (sine(900, 16_000, 0.5), 16_000)])["audio"]
    assert abs(float(feats.mean())) < 0.2 and 0.5 < float(feats.std()) < 2.0
    wave = AudioProcessor(features="waveform", max_seconds=0.5)([(sine(300, 8_000, 0.25), 8_000)])
    assert wave["audio"].shape == (1, 8000) and wave["audio_mask"].sum() == 4000


def test_corrupt_audio_is_rejected_with_a_clear_error(tmp_path):
    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(b"this is not a wav file" * 10)
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    silent = write_audio(tmp_path / "zero.wav", np.zeros(0, np.float32), 16_000)
    nan = tmp_path / "nan.wav"
    write_audio(nan, np.array([0.1, np.nan, 0.2], np.float32), 16_000, subtype="FLOAT")
    with pytest.raises(CorruptSampleError, match="cannot decode audio .*garbage.wav"):
        load_audio(garbage)
    with pytest.raises(CorruptSampleError, match="empty audio file"):
        load_audio(empty)
    with pytest.raises(CorruptSampleError, match="no samples"):
        load_audio(silent)
    with pytest.raises(CorruptSampleError, match="NaN or Inf"):
        load_audio(nan)
    with pytest.raises(CorruptSampleError, match="NaN or Inf"):
        load_audio((np.array([np.inf, 0.0], np.float32), 16_000))
    with pytest.raises(CorruptSampleError, match="not found"):
        load_audio(tmp_path / "missing.wav")
    with pytest.raises(CorruptSampleError, match="empty audio bytes"):
        load_audio(b"")
    with pytest.raises(ValueError, match="n_mels=300 exceeds"):
        AudioSettings(n_mels=300)

    # the collator skips and counts them under the corrupt-sample policy, like bad images
    good = write_audio(tmp_path / "good.wav", sine(440, 16_000, 0.2), 16_000)
    samples = [
        Sample({"audio": str(p)}, meta={"source": f"m.jsonl:{i}"}) for i, p in enumerate([good, garbage, nan])
    ]
    policy = CorruptSamplePolicy()
    collate = Collator(Processor({"audio": AudioProcessor(max_seconds=0.2)}), ["audio"], policy=policy)
    batch = collate(list(enumerate(samples)))
    assert batch["index"].tolist() == [0] and batch["audio"].shape[0] == 1
    assert policy.skipped == 2 and "m.jsonl:1" in policy.summary()
    strict = Collator(
        Processor({"audio": AudioProcessor()}), ["audio"], policy=CorruptSamplePolicy(strict=True)
    )
    with pytest.raises(CorruptSampleError, match="m.jsonl:1.*cannot decode audio"):
        strict(list(enumerate(samples)))


def test_speech_synthesis_is_real_audio_of_the_expected_duration():
    from omnifuse.data.synth.speech import SpeechError, synthesize

    short = synthesize("a red circle", voice="en-us", rate=175)
    long = synthesize(
        "a large red circle at the top left and a small blue square at the bottom", voice="en-us", rate=175
    )
    for wave in (short, long):
        assert wave.dtype == np.float32 and np.isfinite(wave).all()
        assert np.sqrt(np.mean(wave**2)) > 0.02  # not silence
    ratio = (len(long) / len(short)) / (16 / 3)  # 16 words vs 3
    assert 0.5 < ratio < 1.5, ratio
    assert 0.4 < len(short) / 16_000 < 2.0
    fast = synthesize("a red circle and a blue square", voice="en+f3", rate=300, pitch=80)
    slow = synthesize("a red circle and a blue square", voice="en+f3", rate=120, pitch=20)
    assert len(slow) > 1.5 * len(fast)
    noisy = synthesize("a red circle", snr_db=0.0, rng=np.random.default_rng(0))
    n = min(len(noisy), len(short))  # espeak-ng's pitch flutter shifts a repeat by a few samples
    assert np.sqrt(np.mean((noisy[:n] - short[:n]) ** 2)) > 0.5 * np.sqrt(np.mean(short**2))
    with pytest.raises(SpeechError, match="no voice"):
        synthesize("a red circle", voice="no-such-voice")


def test_shapes_world_with_spoken_captions(tmp_path):
    from omnifuse.data.readers import read_manifest
    from omnifuse.data.synth import SynthConfig, generate

    config = SynthConfig(
        n=6, seed=0, image_size=32, modalities=["image", "audio"], speech={"caption": "short"}
    )
    generate(config, tmp_path, progress=False, workers=1)
    rows = [json.loads(line) for line in (tmp_path / "train.jsonl").read_text().splitlines()]
    assert all(r["audio"].startswith("audio/") for r in rows)
    assert len({r["speech"]["voice"] for r in rows}) > 1  # several voices
    samples = read_manifest(tmp_path / "train.jsonl", columns={"audio": "audio", "text": "text"})
    clip = load_audio(samples[0].inputs["audio"])
    assert clip.sample_rate == 16_000 and abs(clip.seconds - rows[0]["speech"]["seconds"]) < 0.01
    # default: no audio, and synth.json as before
    generate(SynthConfig(n=3, seed=0, image_size=32), tmp_path / "plain", progress=False, workers=1)
    assert "audio" not in (tmp_path / "plain" / "train.jsonl").read_text().split("\n")[0]
    assert "speech" not in json.loads((tmp_path / "plain" / "synth.json").read_text())["config"]
    # deterministic: each chunk is spoken by a fresh process, whatever spoke before
    generate(config, tmp_path / "again", progress=False, workers=2)
    assert (tmp_path / "again" / rows[0]["audio"]).read_bytes() == (tmp_path / rows[0]["audio"]).read_bytes()
