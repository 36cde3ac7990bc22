"""Audio: loading (soundfile), band-limited resampling and log-mel features, all in torch.

- `load_audio` reads wav / flac / ogg (anything libsndfile reads) from a path or bytes, or
  takes an `AudioClip` / `(array, sample_rate)`; it rejects unreadable, empty and non-finite
  audio with a `CorruptSampleError`, so the corrupt-sample policy skips and counts it like a
  bad image. It is registered as the `audio` decoder of `omnifuse.data.decode`.
- `resample` is a windowed-sinc polyphase resampler (J. O. Smith, "Digital Audio Resampling",
  https://ccrma.stanford.edu/~jos/resample/; the same Hann-windowed sinc interpolation as
  torchaudio's `sinc_interp_hann`), band-limited to the lower of the two Nyquist rates.
- `AudioProcessor` mixes down to mono, resamples to the model's rate, crops or pads to
  `max_seconds` and computes normalised log-mel spectrograms (torch.stft + a triangular mel
  filterbank on the HTK mel scale), or passes the waveform through for raw-audio models
  (wav2vec2, HuBERT). Its settings go into `processor.json`.
"""

from __future__ import annotations

import functools
import io
import math
import os
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F

from omnifuse._optional import require
from omnifuse.data.decode import register_decoder
from omnifuse.data.processor_base import SettingsProcessor, register_processor
from omnifuse.data.sample import CorruptSampleError

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".aiff", ".aif", ".au")


@dataclass
class AudioClip:
    """Decoded audio at its native rate: `waveform` (C, S) float32 in [-1, 1], `sample_rate` in Hz."""

    waveform: np.ndarray
    sample_rate: int

    @property
    def seconds(self) -> float:
        return self.waveform.shape[-1] / self.sample_rate


def _fail(source: str, reason: str) -> CorruptSampleError:
    return CorruptSampleError(f"{source}: {reason}" if source else reason)


def _check_clip(waveform: np.ndarray, sample_rate: int, source: str, what: str) -> AudioClip:
    if waveform.ndim == 1:
        waveform = waveform[None]
    if waveform.ndim != 2:
        raise _fail(
            source, f"audio {what} must be (samples,) or (channels, samples); got shape {waveform.shape}"
        )
    if not isinstance(sample_rate, (int, np.integer)) or sample_rate <= 0:
        raise _fail(source, f"audio {what} has an invalid sample rate {sample_rate!r}")
    if waveform.shape[-1] == 0 or waveform.shape[0] == 0:
        raise _fail(source, f"empty audio {what} (no samples)")
    waveform = np.asarray(waveform, dtype=np.float32)
    if not np.isfinite(waveform).all():
        raise _fail(source, f"audio {what} contains NaN or Inf samples")
    return AudioClip(np.ascontiguousarray(waveform), int(sample_rate))


def _read(fp: Any, source: str, what: str) -> AudioClip:
    sf = require("soundfile", "audio", "reading audio files")
    try:
        data, rate = sf.read(fp, dtype="float32", always_2d=True)  # (S, C)
    except Exception as err:  # libsndfile raises LibsndfileError / RuntimeError / TypeError
        raise _fail(source, f"cannot decode audio {what}: {err}") from err
    return _check_clip(data.T, rate, source, what)


def load_audio(value: Any, source: str = "") -> AudioClip:
    """An `AudioClip` from a path, encoded bytes, an `AudioClip` or an `(array, sample_rate)` pair.

    Raises `CorruptSampleError` naming `source` and the reason: missing file, undecodable
    bytes, no samples, NaN / Inf samples, bad shape or sample rate.
    """
    if isinstance(value, AudioClip):
        return _check_clip(value.waveform, value.sample_rate, source, "clip")
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], np.ndarray):
        return _check_clip(value[0], value[1], source, "array")
    if isinstance(value, (str, os.PathLike)):
        path = Path(value).expanduser()
        if not path.is_file():
            raise _fail(source, f"audio file not found: {path}")
        if path.stat().st_size == 0:
            raise _fail(source, f"empty audio file: {path}")
        return _read(str(path), source, str(path))
    if isinstance(value, (bytes, bytearray, memoryview)):
        data = bytes(value)
        if not data:
            raise _fail(source, "empty audio bytes")
        return _read(io.BytesIO(data), source, f"({len(data)} bytes)")
    raise _fail(
        source,
        f"cannot load audio from {type(value).__name__}; expected a path, bytes, an AudioClip "
        "or an (array, sample_rate) pair",
    )


register_decoder("audio", load_audio)


# ---- resampling -------------------------------------------------------------------------------
@functools.lru_cache(maxsize=16)
def sinc_resample_kernel(
    orig: int, new: int, lowpass_width: int = 16, rolloff: float = 0.945
) -> tuple[torch.Tensor, int]:
    """Polyphase Hann-windowed sinc kernels (new, 1, K) for rates reduced to `orig`:`new`; and the half width.

    The cutoff is `rolloff` times the lower Nyquist rate; `lowpass_width` zero crossings of the
    sinc on each side trade sharpness against cost.
    """
    base = min(orig, new) * rolloff
    width = math.ceil(lowpass_width * orig / base)
    idx = torch.arange(-width, width + orig, dtype=torch.float64)[None] / orig  # (1, K)
    t = torch.arange(0, -new, -1, dtype=torch.float64)[:, None] / new + idx  # (new, K)
    t = (t * base).clamp(-lowpass_width, lowpass_width)
    window = torch.cos(t * math.pi / lowpass_width / 2) ** 2
    t = t * math.pi
    sinc = torch.where(t == 0, torch.ones_like(t), torch.sin(t) / t)
    kernels = sinc * window * (base / orig)
    return kernels[:, None].float(), width  # (new, 1, K)


def resample(waveform: torch.Tensor, orig_rate: int, new_rate: int, lowpass_width: int = 16) -> torch.Tensor:
    """Resample (..., S) from `orig_rate` to `new_rate` Hz with a band-limited windowed-sinc filter."""
    if orig_rate <= 0 or new_rate <= 0:
        raise ValueError(f"sample rates must be positive; got {orig_rate} -> {new_rate}")
    if orig_rate == new_rate:
        return waveform
    g = math.gcd(orig_rate, new_rate)
    orig, new = orig_rate // g, new_rate // g
    kernels, width = sinc_resample_kernel(orig, new, lowpass_width)  # (new, 1, K)
    shape = waveform.shape
    x = F.pad(waveform.reshape(-1, shape[-1]).float(), (width, width + orig))  # (N, S + 2 width + orig)
    frames = x.unfold(-1, kernels.shape[-1], orig)  # (N, n_frames, K): one window per `orig` inputs
    y = frames @ kernels[:, 0].T.to(x.device)  # (N, n_frames, new): one output per phase
    y = y.reshape(x.shape[0], -1)  # (N, new * n_frames), phases interleaved in time order
    length = math.ceil(new * shape[-1] / orig)
    return y[:, :length].reshape(*shape[:-1], length)


# ---- log-mel features -------------------------------------------------------------------------
def hz_to_mel(f: torch.Tensor | float) -> torch.Tensor:
    return 2595.0 * torch.log10(1.0 + torch.as_tensor(f, dtype=torch.float64) / 700.0)


def mel_to_hz(m: torch.Tensor) -> torch.Tensor:
    return 700.0 * (10.0 ** (m / 2595.0) - 1.0)


def mel_filterbank(
    sample_rate: int, n_fft: int, n_mels: int, f_min: float = 0.0, f_max: float | None = None
) -> torch.Tensor:
    """Triangular filters on the HTK mel scale, (n_fft // 2 + 1, n_mels), each of unit area (Slaney norm)."""
    f_max = f_max or sample_rate / 2
    freqs = torch.linspace(0, sample_rate / 2, n_fft // 2 + 1, dtype=torch.float64)  # (F,)
    hz = mel_to_hz(
        torch.linspace(float(hz_to_mel(f_min)), float(hz_to_mel(f_max)), n_mels + 2, dtype=torch.float64)
    )
    lower, centre, upper = hz[:-2], hz[1:-1], hz[2:]  # (M,)
    up = (freqs[:, None] - lower) / (centre - lower)  # (F, M)
    down = (upper - freqs[:, None]) / (upper - centre)
    fb = torch.clamp(torch.minimum(up, down), min=0.0)
    fb = fb * (2.0 / (upper - lower))  # equal area per filter
    return fb.float()


@dataclass
class AudioSettings:
    """Everything audio preprocessing needs; saved in `processor.json`."""

    sample_rate: int = 16_000
    """The model's rate; inputs at other rates are resampled (windowed sinc)."""
    features: Literal["log_mel", "waveform"] = "log_mel"
    """`log_mel`: (B, n_mels, T) spectrograms (AST, Whisper, CLAP); `waveform`: (B, S) raw audio (wav2vec2, HuBERT)."""
    n_mels: int = 64
    n_fft: int = 400
    """FFT size (also the Hann window length): 25 ms at 16 kHz."""
    hop_length: int = 160
    """Frame hop in samples: 10 ms at 16 kHz."""
    f_min: float = 0.0
    f_max: float | None = None
    max_seconds: float = 4.0
    """Longer clips are cropped (randomly in training with `train_random_crop`, else from the start)."""
    pad_to_max: bool = True
    """Pad every clip to `max_seconds` (fixed frame count: AST and Whisper need one); else to the longest in the batch."""
    mean: float | None = None
    """Log-mel normalisation: (x - mean) / std. None: fitted on training clips by `fit_normalization`."""
    std: float | None = None
    train_random_crop: bool = False
    """Train-time random crop of clips longer than `max_seconds`."""

    def __post_init__(self) -> None:
        if self.sample_rate <= 0:
            raise ValueError(f"audio sample_rate must be positive, got {self.sample_rate}")
        if self.max_seconds <= 0:
            raise ValueError(f"audio max_seconds must be positive, got {self.max_seconds}")
        if self.features not in ("log_mel", "waveform"):
            raise ValueError(f"audio features must be 'log_mel' or 'waveform', got {self.features!r}")
        if self.n_mels <= 0 or self.hop_length <= 0 or self.n_fft <= 0:
            raise ValueError("audio n_mels, n_fft and hop_length must be positive")
        if self.n_mels > self.n_fft // 2 + 1:
            raise ValueError(
                f"audio n_mels={self.n_mels} exceeds the {self.n_fft // 2 + 1} FFT bins of n_fft={self.n_fft}"
            )
        if self.std is not None and self.std <= 0:
            raise ValueError(f"audio std must be positive, got {self.std}")

    @property
    def max_samples(self) -> int:
        return round(self.max_seconds * self.sample_rate)

    @property
    def max_frames(self) -> int:
        """Frames of a `max_seconds` clip (the last, half-empty STFT frame is dropped, as in Whisper)."""
        return self.max_samples // self.hop_length


@register_processor("audio")
class AudioProcessor(SettingsProcessor):
    """Audio clips -> `{"audio": (B, n_mels, T), "audio_mask": (B, T)}` (or `(B, S)` waveforms).

    Steps: mono mixdown (mean over channels), windowed-sinc resampling to `sample_rate`, crop
    or zero-pad to `max_seconds`, then log-mel: power STFT (Hann window) -> mel filterbank ->
    natural log (floor 1e-10) -> (x - mean) / std. `audio_mask` marks frames (or samples)
    that hold real audio, 0 for padding.
    """

    modality = "audio"
    settings_class = AudioSettings

    def __init__(self, settings: AudioSettings | None = None, **kwargs: Any):
        self.settings = settings or AudioSettings(**kwargs)
        s = self.settings
        self._fb = mel_filterbank(s.sample_rate, s.n_fft, s.n_mels, s.f_min, s.f_max)  # (F, M)
        self._window = torch.hann_window(s.n_fft, periodic=True)

    # ---- pieces ---------------------------------------------------------------------------
    def waveform(self, value: Any, rng: random.Random | None = None) -> torch.Tensor:
        """One clip -> mono (S,) float at the model's rate, cropped to `max_seconds`."""
        clip = value if isinstance(value, AudioClip) else load_audio(value)
        s = self.settings
        mono = torch.from_numpy(clip.waveform).mean(0)  # (S,)
        mono = resample(mono, clip.sample_rate, s.sample_rate)
        if mono.shape[0] > s.max_samples:
            start = rng.randint(0, mono.shape[0] - s.max_samples) if (rng and s.train_random_crop) else 0
            mono = mono[start : start + s.max_samples]
        return mono

    def log_mel(self, waves: torch.Tensor) -> torch.Tensor:
        """(B, S) -> unnormalised log-mel (B, n_mels, S // hop_length)."""
        s = self.settings
        frames = waves.shape[-1] // s.hop_length
        pad_mode = "reflect" if waves.shape[-1] > s.n_fft // 2 else "constant"
        spec = torch.stft(
            waves,
            s.n_fft,
            hop_length=s.hop_length,
            window=self._window,
            center=True,
            pad_mode=pad_mode,
            return_complex=True,
        )  # (B, F, frames + 1)
        power = spec[..., :frames].abs().pow(2)  # (B, F, T)
        mel = torch.einsum("bft,fm->bmt", power, self._fb)  # (B, M, T)
        return mel.clamp_min(1e-10).log()

    def fit_normalization(self, values: Sequence[Any], max_clips: int = 64) -> tuple[float, float]:
        """Set `mean`/`std` of the log-mel features from (up to `max_clips` of) `values`; returns them."""
        if self.settings.features != "log_mel":
            return 0.0, 1.0
        feats = []
        for v in list(values)[:max_clips]:
            wave = self.waveform(v)
            feats.append(self.log_mel(wave[None])[0].flatten())
        if not feats:
            raise ValueError("fit_normalization needs at least one audio clip")
        x = torch.cat(feats)
        self.settings.mean, self.settings.std = float(x.mean()), float(x.std().clamp_min(1e-5))
        return self.settings.mean, self.settings.std

    # ---- batch ----------------------------------------------------------------------------
    def __call__(
        self, values: Sequence[Any], train: bool = False, rngs: Sequence[random.Random] | None = None
    ) -> dict[str, torch.Tensor]:
        s = self.settings
        waves = [self.waveform(v, rngs[i] if (train and rngs) else None) for i, v in enumerate(values)]
        lengths = torch.tensor([w.shape[0] for w in waves])  # (B,)
        total = s.max_samples if s.pad_to_max else int(lengths.max())
        batch = torch.zeros(len(waves), total)  # (B, S)
        for i, w in enumerate(waves):
            batch[i, : w.shape[0]] = w
        if s.features == "waveform":
            mask = (torch.arange(total)[None] < lengths[:, None]).long()  # (B, S)
            return {"audio": batch, "audio_mask": mask}
        feats = self.log_mel(batch)  # (B, M, T)
        mean = 0.0 if s.mean is None else s.mean
        std = 1.0 if s.std is None else s.std
        feats = (feats - mean) / std
        frames = feats.shape[-1]
        n_real = (lengths + s.hop_length - 1) // s.hop_length  # frames touching real audio
        mask = (torch.arange(frames)[None] < n_real[:, None].clamp(min=1)).long()  # (B, T)
        return {"audio": feats, "audio_mask": mask}


def write_audio(
    path: str | os.PathLike, waveform: np.ndarray, sample_rate: int, subtype: str | None = None
) -> Path:
    """Write (S,) or (C, S) float audio; the format follows the extension (.wav, .flac, .ogg)."""
    sf = require("soundfile", "audio", "writing audio files")
    path = Path(path)
    data = np.asarray(waveform, dtype=np.float32)
    data = data.T if data.ndim == 2 else data  # soundfile wants (S, C)
    sf.write(str(path), data, sample_rate, subtype=subtype)
    return path
