"""Per-modality decoding and validation of raw values.

`load_image` turns a path, encoded bytes, a numpy array or a PIL image into an RGB PIL image;
`check_text` validates a text or a list of paraphrases. Both raise `CorruptSampleError` naming
the source (file and line, or shard and key) and the reason, so a reader can hand the error to
a `CorruptSamplePolicy`.

`DECODERS` maps a modality name to its decoder; audio and video decoders register here later
(`register_decoder`), and `decode_value(modality, value, source)` dispatches.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from omnifuse.data.sample import CorruptSampleError, DataError

#: Modalities whose raw values are file paths (resolved against a manifest's directory).
FILE_MODALITIES: tuple[str, ...] = ("audio", "image", "video")


def _fail(source: str, reason: str) -> CorruptSampleError:
    return CorruptSampleError(f"{source}: {reason}" if source else reason)


def _array_to_image(arr: np.ndarray, source: str) -> Image.Image:
    """(H, W) or (H, W, C) with C in {1, 3, 4}; uint8 in [0, 255] or float in [0, 1]."""
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[-1] in (3, 4))):
        raise _fail(source, f"image array must be (H, W), (H, W, 3) or (H, W, 4), got shape {arr.shape}")
    if arr.size == 0:
        raise _fail(source, f"empty image array of shape {arr.shape}")
    if np.issubdtype(arr.dtype, np.floating):
        if not np.isfinite(arr).all() or arr.min() < 0.0 or arr.max() > 1.0:
            raise _fail(source, "float image array must hold finite values in [0, 1]")
        arr = np.round(arr * 255.0).astype(np.uint8)
    elif arr.dtype != np.uint8:
        raise _fail(source, f"image array must be uint8 or float in [0, 1], got dtype {arr.dtype}")
    return Image.fromarray(np.ascontiguousarray(arr)).convert("RGB")


def _to_rgb(img: Image.Image) -> Image.Image:
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")  # avoids PIL's palette-transparency warning
    return img.convert("RGB")


def _decode_encoded(fp: Any, source: str, what: str) -> Image.Image:
    try:
        with Image.open(fp) as img:
            img.load()  # force a full decode: catches truncated files, not just bad headers
            return _to_rgb(img)
    except Exception as err:  # PIL raises OSError, SyntaxError, ValueError, struct.error ...
        raise _fail(source, f"cannot decode image {what}: {err}") from err


def load_image(value: Any, source: str = "") -> Image.Image:
    """Return an RGB PIL image from a path, encoded bytes, a numpy array or a PIL image.

    Arrays may be (H, W, 3) / (H, W, 4) uint8, or (H, W) / (H, W, 3) float in [0, 1].
    Raises `CorruptSampleError` naming `source` and the reason (missing file, unreadable or
    truncated image, unsupported array); the reason names the path where there is one, and
    with no `source` the message is the bare reason, ready for `CorruptSamplePolicy.report`.

    >>> load_image(np.zeros((2, 3, 3), dtype=np.uint8)).size
    (3, 2)
    """
    if isinstance(value, Image.Image):
        try:
            value.load()
            return _to_rgb(value)
        except Exception as err:
            raise _fail(source, f"cannot decode image: {err}") from err
    if isinstance(value, (str, os.PathLike)):
        path = Path(value).expanduser()
        if not path.is_file():
            raise _fail(source, f"image file not found: {path}")
        return _decode_encoded(path, source, str(path))
    if isinstance(value, (bytes, bytearray, memoryview)):
        data = bytes(value)
        if not data:
            raise _fail(source, "empty image bytes")
        return _decode_encoded(io.BytesIO(data), source, f"({len(data)} bytes)")
    if isinstance(value, np.ndarray):
        return _array_to_image(value, source)
    raise _fail(
        source,
        f"cannot load an image from {type(value).__name__}; "
        "expected a path, bytes, a numpy array or a PIL image",
    )


def check_text(value: Any, source: str = "") -> str | list[str]:
    """Validate a text, or a list of paraphrases (empty ones are dropped).

    Raises `CorruptSampleError` naming `source` for missing, empty or whitespace-only text,
    a non-string value, or a list with no non-empty string left. With no `source` the
    error message is the bare reason, ready for `CorruptSamplePolicy.report`.

    >>> check_text(["a cat", " ", "a kitten"])
    ['a cat', 'a kitten']
    """
    if value is None:
        raise _fail(source, "missing text")
    if isinstance(value, str):
        if not value.strip():
            raise _fail(source, "empty text")
        return value
    if isinstance(value, (list, tuple)):
        bad = [type(v).__name__ for v in value if not isinstance(v, str)]
        if bad:
            raise _fail(source, f"text list must hold strings only, found {bad[0]}")
        texts = [v for v in value if v.strip()]
        if not texts:
            raise _fail(source, "empty text (no non-empty paraphrase)")
        return texts
    raise _fail(source, f"text must be a string or a list of strings, got {type(value).__name__}")


Decoder = Callable[[Any, str], Any]


def load_images(value: Any, source: str = "") -> Image.Image | list[Image.Image]:
    """`load_image`, or a list of images for a list value (several images in one sample)."""
    if isinstance(value, (list, tuple)):
        if not value:
            raise _fail(source, "empty list of images")
        return [load_image(v, source) for v in value]
    return load_image(value, source)


#: modality -> decoder(value, source); raises CorruptSampleError on a bad value.
DECODERS: dict[str, Decoder] = {"image": load_images, "text": check_text}


def register_decoder(modality: str, decoder: Decoder) -> None:
    """Add (or replace) the decoder of a modality, e.g. an audio loader."""
    DECODERS[modality] = decoder


def decode_value(modality: str, value: Any, source: str = "") -> Any:
    """Decode `value` with the decoder registered for `modality`."""
    if modality not in DECODERS:
        raise DataError(f"no decoder for modality '{modality}'; known: {sorted(DECODERS)}")
    return DECODERS[modality](value, source)
