"""Video: decoding (PyAV), TSN segment sampling and the `VideoProcessor`.

A raw video value is a video file path, encoded bytes (e.g. from a WebDataset shard), a `.npy`
file, a directory of frame images, a numpy array `(F, H, W, 3)` or an already decoded
`VideoClip`. `load_video` decodes it to a `VideoClip` (uint8 frames), refusing files whose
frames exceed a pixel cap before decoding anything. Undecodable input (garbage bytes, a
truncated file, no video stream) raises `CorruptSampleError`, so a `CorruptSamplePolicy`
skips and counts it like a corrupt image.

Frame sampling follows Temporal Segment Networks (Wang et al. 2016, "Temporal Segment
Networks: Towards Good Practices for Deep Action Recognition", arXiv:1608.00859): the clip is
split into F equal segments; evaluation takes the middle frame of each, training a random
frame per segment (drawn from the caller's seeded rng). Frames are then resized, cropped and
normalised exactly like images (`ImageSettings`), giving
``{"video": (B, F, 3, H, W) float, "video_mask": (B, F)}``; clips with fewer than F frames are
zero-padded and masked.
"""

from __future__ import annotations

import io
import math
import os
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from PIL import Image

from omnifuse._optional import require
from omnifuse.data.decode import load_image, register_decoder
from omnifuse.data.processor_base import SettingsProcessor, register_processor
from omnifuse.data.processors import ImageProcessor, ImageSettings
from omnifuse.data.sample import CorruptSampleError

#: Default cap on pixels per frame (width x height), checked from the stream header: Full HD.
DEFAULT_MAX_PIXELS = 1920 * 1080
#: Default cap on frames kept from one decoded clip; longer clips keep every k-th frame.
DEFAULT_MAX_DECODE_FRAMES = 512
#: Image files read, in name order, from a directory of frames.
FRAME_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


class VideoTooLargeError(CorruptSampleError):
    """A video's frames exceed the pixel cap; raised before any frame is decoded."""


@dataclass
class VideoClip:
    """Decoded frames of one video.

    frames: (T, H, W, 3) uint8 RGB.
    fps: frames per second from the container (None for arrays and frame folders).
    stride: every `stride`-th decoded frame was kept (1 unless the clip was longer than the cap).
    """

    frames: np.ndarray
    fps: float | None = None
    stride: int = 1

    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])

    @property
    def height(self) -> int:
        return int(self.frames.shape[1])

    @property
    def width(self) -> int:
        return int(self.frames.shape[2])


def _fail(source: str, reason: str, cls: type[CorruptSampleError] = CorruptSampleError) -> CorruptSampleError:
    return cls(f"{source}: {reason}" if source else reason)


def _check_pixels(width: int, height: int, max_pixels: int, what: str, source: str) -> None:
    if width * height > max_pixels:
        raise _fail(
            source,
            f"video {what} has {width}x{height} = {width * height} pixels per frame, over the cap "
            f"max_pixels={max_pixels}; downscale it first or raise the video processor's max_pixels",
            VideoTooLargeError,
        )


def _thin(frames: list[np.ndarray], stride: int, max_frames: int) -> tuple[list[np.ndarray], int]:
    """Halve the kept frames (doubling the stride) while more than `max_frames` are kept."""
    while len(frames) > max_frames:
        frames, stride = frames[::2], stride * 2
    return frames, stride


def _decode_container(fp: Any, what: str, source: str, max_pixels: int, max_frames: int) -> VideoClip:
    av = require("av", "video", "video decoding")
    try:
        container = av.open(fp, mode="r")
    except Exception as err:  # av.error.InvalidDataError, FileNotFoundError, EOFError ...
        raise _fail(source, f"cannot open video {what}: {err}") from err
    with container:
        if not container.streams.video:
            raise _fail(source, f"no video stream in {what}")
        stream = container.streams.video[0]
        width, height = stream.codec_context.width, stream.codec_context.height
        _check_pixels(width, height, max_pixels, what, source)  # from the header: nothing decoded yet
        declared = int(stream.frames or 0)
        stride = max(1, math.ceil(declared / max_frames)) if declared else 1
        frames: list[np.ndarray] = []
        count = 0
        try:
            for frame in container.decode(stream):
                if count == 0 and not width:  # some containers only know the size after decoding
                    _check_pixels(frame.width, frame.height, max_pixels, what, source)
                if count % stride == 0:
                    frames.append(frame.to_ndarray(format="rgb24"))  # (H, W, 3)
                    if len(frames) > 2 * max_frames:  # unknown length: keep memory bounded
                        frames, stride = _thin(frames, stride, max_frames)
                count += 1
        except VideoTooLargeError:
            raise
        except Exception as err:  # av.error.* on corrupt packets
            raise _fail(source, f"cannot decode video {what}: {err}") from err
        fps = float(stream.average_rate) if stream.average_rate else None
    if not frames:
        raise _fail(source, f"no decodable frame in video {what}")
    if declared and count < 0.9 * declared:
        raise _fail(source, f"truncated video {what}: the header declares {declared} frames, {count} decoded")
    frames, stride = _thin(frames, stride, max_frames)
    return VideoClip(np.stack(frames), fps, stride)


def _array_to_clip(arr: np.ndarray, what: str, source: str, max_pixels: int, max_frames: int) -> VideoClip:
    if arr.ndim == 3:
        arr = np.repeat(arr[..., None], 3, axis=-1)  # (F, H, W) grayscale -> RGB
    if arr.ndim != 4 or arr.shape[-1] != 3 or 0 in arr.shape:
        raise _fail(source, f"video array {what} must be (F, H, W, 3) or (F, H, W), got shape {arr.shape}")
    _check_pixels(arr.shape[2], arr.shape[1], max_pixels, what, source)
    if np.issubdtype(arr.dtype, np.floating):
        if not np.isfinite(arr).all() or arr.min() < 0.0 or arr.max() > 1.0:
            raise _fail(source, f"float video array {what} must hold finite values in [0, 1]")
        arr = np.round(arr * 255.0).astype(np.uint8)
    elif arr.dtype != np.uint8:
        raise _fail(source, f"video array {what} must be uint8 or float in [0, 1], got dtype {arr.dtype}")
    stride = max(1, math.ceil(arr.shape[0] / max_frames))
    return VideoClip(np.ascontiguousarray(arr[::stride]), None, stride)


def _frame_dir_to_clip(path: Path, source: str, max_pixels: int, max_frames: int) -> VideoClip:
    files = sorted(p for p in path.iterdir() if p.suffix.lower() in FRAME_EXTENSIONS and p.is_file())
    if not files:
        raise _fail(source, f"frame directory {path} holds no image ({', '.join(FRAME_EXTENSIONS)})")
    try:
        with Image.open(files[0]) as first:  # header only: the size, before decoding pixels
            size = first.size
    except Exception as err:
        raise _fail(source, f"cannot read frame {files[0]}: {err}") from err
    _check_pixels(size[0], size[1], max_pixels, f"frames in {path}", source)
    stride = max(1, math.ceil(len(files) / max_frames))
    frames = []
    for file in files[::stride]:
        img = load_image(file, source)
        if img.size != size:
            raise _fail(
                source, f"frame {file} is {img.size[0]}x{img.size[1]}, the first is {size[0]}x{size[1]}"
            )
        frames.append(np.asarray(img, dtype=np.uint8))
    return VideoClip(np.stack(frames), None, stride)


def load_video(
    value: Any,
    source: str = "",
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_frames: int = DEFAULT_MAX_DECODE_FRAMES,
) -> VideoClip:
    """Decode a video file, bytes, `.npy` file, frame directory or array into a `VideoClip`.

    Frames over `max_pixels` (width x height, read from the stream header before decoding)
    raise `VideoTooLargeError`; unreadable input raises `CorruptSampleError` naming `source`
    and the reason. Clips longer than `max_frames` keep every k-th frame.

    >>> load_video(np.zeros((4, 2, 3, 3), dtype=np.uint8)).frames.shape
    (4, 2, 3, 3)
    """
    if isinstance(value, VideoClip):
        _check_pixels(value.width, value.height, max_pixels, "clip", source)
        return value
    if isinstance(value, np.ndarray):
        return _array_to_clip(value, "", source, max_pixels, max_frames)
    if isinstance(value, (str, os.PathLike)):
        path = Path(value).expanduser()
        if path.is_dir():
            return _frame_dir_to_clip(path, source, max_pixels, max_frames)
        if not path.is_file():
            raise _fail(source, f"video file not found: {path}")
        if path.stat().st_size == 0:
            raise _fail(source, f"empty video file: {path}")
        if path.suffix.lower() == ".npy":
            try:
                arr = np.load(path, allow_pickle=False)
            except Exception as err:
                raise _fail(source, f"cannot read video array {path}: {err}") from err
            return _array_to_clip(arr, str(path), source, max_pixels, max_frames)
        return _decode_container(str(path), str(path), source, max_pixels, max_frames)
    if isinstance(value, (bytes, bytearray, memoryview)):
        data = bytes(value)
        if not data:
            raise _fail(source, "empty video bytes")
        if data[:6] == b"\x93NUMPY":  # a .npy file's bytes (e.g. from a shard)
            try:
                arr = np.load(io.BytesIO(data), allow_pickle=False)
            except Exception as err:
                raise _fail(source, f"cannot read video array ({len(data)} bytes): {err}") from err
            return _array_to_clip(arr, f"({len(data)} bytes)", source, max_pixels, max_frames)
        return _decode_container(io.BytesIO(data), f"({len(data)} bytes)", source, max_pixels, max_frames)
    raise _fail(
        source,
        f"cannot load a video from {type(value).__name__}; expected a path (file or frame directory), "
        "bytes, a numpy array (F, H, W, 3) or a VideoClip",
    )


def segment_indices(total: int, num_frames: int, rng: random.Random | None = None) -> list[int]:
    """TSN sampling: split `total` frames into `num_frames` segments, one index per segment.

    With no `rng`: the middle frame of each segment (evaluation); with one: a random frame
    per segment (training). A clip of at most `num_frames` frames gives all its frames.

    >>> segment_indices(16, 4)
    [2, 6, 10, 14]
    """
    if total <= num_frames:
        return list(range(total))
    bounds = [i * total // num_frames for i in range(num_frames + 1)]
    if rng is None:
        return [int(total * (i + 0.5) / num_frames) for i in range(num_frames)]
    return [lo + rng.randrange(hi - lo) for lo, hi in zip(bounds[:-1], bounds[1:])]


@dataclass
class VideoSettings:
    """Everything video preprocessing needs; saved in `processor.json`."""

    num_frames: int = 8
    """Frames per clip (F): TSN segments; shorter clips are padded and masked."""
    train_sampling: Literal["random", "uniform"] = "random"
    """Training frame choice per segment: `random` (TSN) or `uniform` (the middle, as in evaluation)."""
    image: ImageSettings = field(default_factory=lambda: ImageSettings(size=32))
    """Per-frame resize, crop and normalisation (as for images; augmentations apply to a whole clip)."""
    max_pixels: int = DEFAULT_MAX_PIXELS
    """Refuse videos whose frames have more pixels (width x height), checked before decoding."""
    max_decode_frames: int = DEFAULT_MAX_DECODE_FRAMES
    """Longer clips keep every k-th decoded frame, bounding memory."""

    def __post_init__(self) -> None:
        if isinstance(self.image, dict):
            self.image = ImageSettings(**self.image)
        if self.num_frames <= 0:
            raise ValueError(f"video num_frames must be positive, got {self.num_frames}")
        if self.train_sampling not in ("random", "uniform"):
            raise ValueError(
                f"video train_sampling must be 'random' or 'uniform', got {self.train_sampling!r}"
            )
        if self.max_pixels <= 0 or self.max_decode_frames < self.num_frames:
            raise ValueError(
                f"video max_pixels must be positive and max_decode_frames >= num_frames; got "
                f"{self.max_pixels} and {self.max_decode_frames} (num_frames {self.num_frames})"
            )


@register_processor("video")
class VideoProcessor(SettingsProcessor):
    """Raw videos -> `{"video": (B, F, 3, H, W), "video_mask": (B, F)}` (TSN sampling, image preprocessing).

    Frames are resized, cropped and normalised by an `ImageProcessor` with `settings.image`;
    train-time crops and flips, when enabled, are drawn once per clip so every frame moves alike.
    """

    modality = "video"
    settings_class = VideoSettings

    def __init__(self, settings: VideoSettings | None = None, **kwargs: Any):
        self.settings = settings or VideoSettings(**kwargs)
        self.frames = ImageProcessor(self.settings.image)

    def decode(self, value: Any, source: str = "") -> VideoClip:
        s = self.settings
        return load_video(value, source, max_pixels=s.max_pixels, max_frames=s.max_decode_frames)

    def _frame_pixels(self, frame: np.ndarray, view_seed: float | None) -> np.ndarray:
        size = self.settings.image.size
        if view_seed is None and frame.shape[:2] == (size, size):
            return frame
        img = Image.fromarray(frame)
        if view_seed is None:
            img = self.frames._eval_view(img)
        else:  # the same seed for every frame of a clip: one crop / flip for the whole clip
            img = self.frames._train_view(img, random.Random(view_seed))
        return np.asarray(img, dtype=np.uint8)

    def __call__(
        self, values: Sequence[Any], train: bool = False, rngs: Sequence[random.Random] | None = None
    ) -> dict[str, torch.Tensor]:
        s = self.settings
        n, f, size = len(values), s.num_frames, s.image.size
        pixels = np.zeros((n, f, size, size, 3), dtype=np.uint8)
        mask = torch.zeros(n, f, dtype=torch.long)
        for i, value in enumerate(values):
            clip = self.decode(value)
            rng = rngs[i] if (train and rngs) else None
            index = segment_indices(clip.num_frames, f, rng if s.train_sampling == "random" else None)
            augment = rng is not None and (s.image.train_random_resized_crop or s.image.train_hflip)
            view_seed = rng.random() if augment else None
            for j, t in enumerate(index):
                pixels[i, j] = self._frame_pixels(clip.frames[t], view_seed)
            mask[i, : len(index)] = 1
        video = self.frames.normalize(torch.from_numpy(pixels.reshape(n * f, size, size, 3)))
        video = video.view(n, f, 3, size, size) * mask.view(n, f, 1, 1, 1)  # (B, F, 3, H, W); padding is 0
        return {"video": video, "video_mask": mask}


register_decoder("video", load_video)
