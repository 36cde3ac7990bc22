"""Request limits enforced before expensive work.

- `BodyLimitMiddleware`: a pure ASGI middleware that answers 413 from the Content-Length header
  before reading anything, and otherwise counts bytes as the body streams in, failing as soon
  as the limit is passed (chunked uploads included): a large body is never buffered whole.
- `open_image`: reads only the image header, checks the format against the allow-list and
  width * height against the pixel cap, and only then decodes the pixels (a decompression
  bomb is refused before it allocates anything; truncated files fail with a clear 400).
- `check_texts`: count, emptiness and length of texts.
"""

from __future__ import annotations

import io
import json
import re
import warnings

from PIL import Image

from omnifuse.serve.config import Limits
from omnifuse.serve.errors import RequestError


class BodyTooLarge(RequestError):
    def __init__(self, limit: int):
        super().__init__(413, f"request body is over the limit of {limit} bytes")


class BodyLimitMiddleware:
    """ASGI middleware: 413 for a body over `max_bytes`, enforced while reading."""

    def __init__(self, app, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    return await _send_error(send, 400, "malformed Content-Length header")
                if declared > self.max_bytes:
                    return await _send_error(
                        send, 413, f"request body is over the limit of {self.max_bytes} bytes"
                    )
        seen = 0

        async def limited_receive():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        return await self.app(scope, limited_receive, send)


async def _send_error(send, status: int, message: str) -> None:
    body = json.dumps({"error": message}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def open_image(data: bytes, limits: Limits, what: str = "image") -> Image.Image:
    """Encoded bytes -> RGB PIL image, checking format and pixel count before decoding."""
    if not data:
        raise RequestError(400, f"{what}: empty file")
    try:
        img = Image.open(io.BytesIO(data))  # reads the header only
    except Image.DecompressionBombError as err:  # PIL's own guard (Image.MAX_IMAGE_PIXELS), at open
        found = re.search(r"(\d+) pixels", str(err))
        size = f"has {found.group(1)} pixels" if found else "has too many pixels"
        raise RequestError(413, f"{what}: image {size}; the limit is {limits.max_image_pixels}") from None
    except Exception:
        raise RequestError(
            400, f"{what}: not a recognised image ({len(data)} bytes); send {', '.join(limits.image_formats)}"
        ) from None
    if img.format not in limits.image_formats:
        raise RequestError(
            415,
            f"{what}: image format {img.format} is not accepted; allowed: {', '.join(limits.image_formats)}",
        )
    width, height = img.size
    if width <= 0 or height <= 0:
        raise RequestError(400, f"{what}: image has no pixels ({width}x{height})")
    if width * height > limits.max_image_pixels:
        raise RequestError(
            413,
            f"{what}: image is {width}x{height} = {width * height} pixels; the limit is {limits.max_image_pixels}",
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img.load()  # the pixels: fails on truncated or corrupt data
        rgb = img.convert("RGB")
    except Exception:
        raise RequestError(
            400, f"{what}: cannot decode the {img.format} image (truncated or corrupt data)"
        ) from None
    finally:
        img.close()
    return rgb


def check_texts(texts: list, limits: Limits, what: str = "texts") -> list[str]:
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise RequestError(422, f"{what}[{i}] must be a string, got {type(text).__name__}")
        if not text.strip():
            raise RequestError(400, f"{what}[{i}] is empty")
        if len(text) > limits.max_text_chars:
            raise RequestError(
                413, f"{what}[{i}] has {len(text)} characters; the limit is {limits.max_text_chars}"
            )
    return texts


def decode_utf8(data: bytes, what: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise RequestError(400, f"{what} is not valid UTF-8 (byte {err.start})") from None


def open_media(modality: str, data: bytes, limits: Limits, what: str):
    """Encoded audio (wav/flac/ogg) or video bytes -> decoded clip, with the duration limit.

    Decoding errors become 400 with the reason; a clip over `max_media_seconds` is 413.
    """
    from omnifuse.data.sample import CorruptSampleError

    if not data:
        raise RequestError(400, f"{what}: empty file")
    try:
        if modality == "audio":
            from omnifuse.data.audio import load_audio

            clip = load_audio(data)
            seconds = clip.seconds
        else:
            from omnifuse.data.video import load_video

            clip = load_video(data, what, max_pixels=limits.max_image_pixels)
            seconds = clip.num_frames / clip.fps if clip.fps else 0.0
    except CorruptSampleError as err:
        raise RequestError(400, f"{what}: cannot decode {modality}: {err}") from None
    if seconds > limits.max_media_seconds:
        raise RequestError(
            413, f"{what}: {modality} is {seconds:.1f} s long; the limit is {limits.max_media_seconds:g} s"
        )
    return clip
