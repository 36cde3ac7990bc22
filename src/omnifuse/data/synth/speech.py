"""Spoken captions for the shapes world: real synthesized speech from espeak-ng.

espeak-ng (formant synthesis; https://github.com/espeak-ng/espeak-ng) comes with its voice
data in the `espeakng-loader` wheel (`pip install 'omnifuse[audio]'`); we drive the shared
library through ctypes: `espeak_Initialize` in synchronous retrieval mode, a synth callback
that collects the 16-bit samples, `espeak_SetVoiceByName` / `espeak_SetParameter` for voice,
rate and pitch, `espeak_Synth` per utterance. The 22,050 Hz output is resampled (windowed
sinc) to `SpeechSettings.sample_rate`, optionally mixed with white noise at a chosen SNR,
and written as 16-bit PCM wav.

`synthesize(text, voice, rate, pitch)` works on its own; `render_speech` is the shapes-world
renderer registered as `audio` (`SynthConfig(modalities=["image", "audio"])`): it speaks the
scene's caption with a voice, speed and pitch drawn from the sample's own random stream.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any

import numpy as np
import torch

from omnifuse._optional import require
from omnifuse.data.audio import resample, write_audio
from omnifuse.data.synth.config import SpeechSettings, SynthConfig
from omnifuse.data.synth.renderers import register_renderer
from omnifuse.data.synth.scene import Scene
from omnifuse.data.synth.text import canonical_caption

# espeak_ng / speak_lib.h constants
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_POS_CHARACTER = 1
_ESPEAK_CHARS_UTF8 = 1
_ESPEAK_RATE, _ESPEAK_VOLUME, _ESPEAK_PITCH, _ESPEAK_RANGE = 1, 2, 3, 4
_EE_OK = 0

_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)


class SpeechError(ValueError):
    """espeak-ng failed (library missing, unknown voice, synthesis error)."""


class _Espeak:
    """The espeak-ng library, initialised once per process.

    espeak-ng keeps global state across utterances (e.g. the pitch-flutter phase in its wave
    generator), so an utterance depends on what the process said before; `generate` therefore
    speaks each chunk of samples in a fresh process, and a process forked after the library was
    loaded loads a private copy of it (fresh state).
    """

    _instance: _Espeak | None = None
    _pid: int | None = None
    _lock = threading.Lock()

    def __init__(self, private_copy: bool = False) -> None:
        loader = require("espeakng_loader", "audio", "speech synthesis (espeak-ng)")
        path = loader.get_library_path()
        if private_copy:  # the library mapped before a fork carries the parent's state: load a copy
            copy = Path(tempfile.mkdtemp(prefix="omnifuse-espeak-")) / f"libespeak-ng-{os.getpid()}.so"
            shutil.copyfile(path, copy)
            path = str(copy)
        lib = ctypes.CDLL(path)
        if private_copy:
            shutil.rmtree(Path(path).parent, ignore_errors=True)  # the mapping outlives the file
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_Synth.argtypes = [
            ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
            ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p,
        ]  # fmt: skip
        data_dir = str(Path(loader.get_data_path()).parent)  # the directory holding espeak-ng-data
        rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, data_dir.encode(), 0)
        if rate <= 0:
            raise SpeechError(f"espeak_Initialize failed (returned {rate}); data directory {data_dir}")
        self.lib = lib
        self.sample_rate = int(rate)
        self._chunks: list[np.ndarray] = []
        self._callback = _CALLBACK(self._collect)  # keep a reference: C holds the pointer
        lib.espeak_SetSynthCallback(self._callback)

    def _collect(self, wav, n: int, events) -> int:
        if n > 0 and wav:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
        return 0  # 0: continue synthesis

    @classmethod
    def get(cls) -> _Espeak:
        with cls._lock:
            if cls._instance is None or cls._pid != os.getpid():  # a forked worker initialises its own
                cls._instance, cls._pid = cls(private_copy=cls._instance is not None), os.getpid()
            return cls._instance

    def synth(self, text: str, voice: str, rate: int, pitch: int, seed: int = 0) -> np.ndarray:
        lib = self.lib
        if lib.espeak_SetVoiceByName(voice.encode()) != _EE_OK:
            raise SpeechError(f"espeak-ng has no voice {voice!r}; try e.g. 'en-us', 'en+f3', 'en-gb'")
        lib.espeak_SetParameter(_ESPEAK_RATE, int(rate), 0)
        lib.espeak_SetParameter(_ESPEAK_PITCH, int(pitch), 0)
        lib.espeak_ng_SetRandSeed(ctypes.c_long(seed))  # espeak-ng jitters timing and noise at random
        self._chunks = []
        data = text.encode("utf-8") + b"\0"
        buf = ctypes.create_string_buffer(data)
        err = lib.espeak_Synth(buf, len(data), 0, _POS_CHARACTER, 0, _ESPEAK_CHARS_UTF8, None, None)
        if err != _EE_OK:
            raise SpeechError(f"espeak_Synth failed with error {err} for text {text!r}")
        samples = np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.int16)
        self._chunks = []
        return samples.astype(np.float32) / 32768.0  # (S,) at self.sample_rate


def synthesize(
    text: str,
    voice: str = "en-us",
    rate: int = 175,
    pitch: int = 50,
    sample_rate: int = 16_000,
    snr_db: float | None = None,
    rng: np.random.Generator | None = None,
    seed: int = 0,
) -> np.ndarray:
    """Speak `text` with espeak-ng: mono float32 (S,) at `sample_rate`.

    espeak-ng's pitch flutter runs on across utterances, so repeated calls in one process
    differ by a few samples; a fresh process gives the same audio for the same calls.

    rate: words per minute (espeak-ng: 80-450); pitch: 0-100 (50 normal); snr_db: add white
    noise at this signal-to-noise ratio (None: clean), drawn from `rng`; seed: espeak-ng's own
    random jitter.
    """
    if not text.strip():
        raise ValueError("cannot synthesize empty text")
    engine = _Espeak.get()
    with _Espeak._lock:
        wave = engine.synth(text, voice, rate, pitch, seed)
    if wave.size == 0:
        raise SpeechError(f"espeak-ng produced no audio for {text!r} with voice {voice!r}")
    if sample_rate != engine.sample_rate:
        with torch.no_grad():
            wave = resample(torch.from_numpy(wave), engine.sample_rate, sample_rate).numpy()
    if snr_db is not None:
        rng = rng or np.random.default_rng(0)
        signal_rms = float(np.sqrt(np.mean(wave**2)))
        noise = rng.standard_normal(wave.shape).astype(np.float32)
        wave = wave + noise * (signal_rms / 10 ** (snr_db / 20))
    peak = float(np.abs(wave).max())
    if peak > 0.99:  # keep 16-bit PCM from clipping
        wave = wave * (0.99 / peak)
    return wave.astype(np.float32)


# ---- the shapes-world renderer ----------------------------------------------------------------
def short_caption(scene: Scene) -> str:
    """Color and shape of every object in reading order: "a red circle and a blue square"."""
    names = [f"a {o.color} {o.shape}" for o in scene.objects]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


@register_renderer("audio")
def render_speech(
    scene: Scene, sample_id: str, out_dir: Path, rng: np.random.Generator, config: SynthConfig
) -> dict[str, Any]:
    """Speak the scene's caption to `audio/<id>.wav`; manifest fields `audio` and `speech` (what was said, how)."""
    s: SpeechSettings = getattr(config, "speech", None) or SpeechSettings()
    text = canonical_caption(scene) if s.caption == "canonical" else short_caption(scene)
    voice = s.voices[int(rng.integers(len(s.voices)))]
    rate = int(rng.integers(s.rate[0], s.rate[1] + 1))
    pitch = int(rng.integers(s.pitch[0], s.pitch[1] + 1))
    snr = float(rng.uniform(*s.snr_db)) if s.snr_db is not None else None
    wave = synthesize(text, voice, rate, pitch, s.sample_rate, snr, rng, seed=int(rng.integers(2**31)))
    rel = f"audio/{sample_id}.wav"
    path = out_dir / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    write_audio(path, wave, s.sample_rate, subtype="PCM_16")
    info = {
        "text": text,
        "voice": voice,
        "rate": rate,
        "pitch": pitch,
        "seconds": round(len(wave) / s.sample_rate, 3),
    }
    if snr is not None:
        info["snr_db"] = round(snr, 2)
    return {"audio": rel, "speech": info}
