"""Request bodies -> validated inputs: JSON (base64 images) or multipart uploads.

Every problem becomes a `RequestError` whose message names the field and the limit: wrong
content type (415), malformed JSON or non-UTF-8 bodies (400), unknown or ill-typed fields
(422), too many items or too long texts (413). Images are decoded in a worker thread with the
header checks of `omnifuse.serve.limits.open_image`.

Multipart text fields are decoded by Starlette (UTF-8, falling back to Latin-1); a text sent as
a file part, and every JSON body, must be valid UTF-8.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from dataclasses import dataclass, field
from typing import Any

from PIL import Image
from pydantic import BaseModel, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.requests import Request

from omnifuse.serve.config import Limits
from omnifuse.serve.errors import RequestError
from omnifuse.serve.limits import check_texts, decode_utf8, open_image, open_media
from omnifuse.serve.security import check_url_allowed, fetch_url


@dataclass
class RawImage:
    data: bytes
    what: str
    """Names the input in error messages, e.g. "images[2]"."""


@dataclass
class ParsedRequest:
    texts: list[str] = field(default_factory=list)
    images: list[RawImage] = field(default_factory=list)
    image_urls: list[str] = field(default_factory=list)
    media: dict[str, list[RawImage]] = field(default_factory=dict)
    """Encoded audio / video uploads by modality (decoded by `load_media`)."""
    labels: list[str] = field(default_factory=list)
    templates: list[str] | None = None
    top_k: int | None = None
    k: int = 10

    @property
    def n_items(self) -> int:
        return len(self.texts) + len(self.images) + len(self.image_urls) + sum(map(len, self.media.values()))


def format_validation_error(err: ValidationError | list) -> str:
    errors = err.errors() if isinstance(err, ValidationError) else err
    parts = []
    for e in errors[:5]:
        loc = ".".join(str(x)[:64] for x in e.get("loc", ()) if x != "body") or "body"
        msg = e.get("msg", "invalid")
        if e.get("type") == "extra_forbidden":
            msg = "unknown field"
        parts.append(f"{loc}: {msg}")
    more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
    return "invalid request: " + "; ".join(parts) + more


def _b64(value: str, what: str) -> bytes:
    if value.startswith("data:"):
        value = value.partition(",")[2]  # data URL: data:image/png;base64,....
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise RequestError(400, f"{what} is not valid base64") from None


MAX_NUMBER_CHARS = 64
"""A JSON number literal longer than this is refused (no field here needs more)."""
MAX_KEY_CHARS = 256
"""A JSON object key longer than this is refused (every field name here is short)."""


def _number_too_long(literal: str) -> RequestError:
    return RequestError(
        422,
        f"a number literal of {len(literal)} characters; the limit is {MAX_NUMBER_CHARS} ({literal[:20]}...)",
    )


def _parse_int(literal: str) -> int:
    if len(literal) > MAX_NUMBER_CHARS:
        raise _number_too_long(literal)
    return int(literal)


def _parse_float(literal: str) -> float:
    if len(literal) > MAX_NUMBER_CHARS:
        raise _number_too_long(literal)
    value = float(literal)
    if not math.isfinite(value):
        raise RequestError(422, f"the number {literal} is out of range (a double overflows to infinity)")
    return value


def _parse_constant(name: str):
    raise RequestError(400, f"malformed JSON: {name} is not a JSON value (RFC 8259 has no NaN or Infinity)")


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if len(key) > MAX_KEY_CHARS:
            raise RequestError(
                422, f"a JSON key of {len(key)} characters ({key[:20]!r}...); the limit is {MAX_KEY_CHARS}"
            )
        if key in out:
            raise RequestError(400, f"duplicate key {key!r} in a JSON object; give each field once")
        out[key] = value
    return out


def _check_strings(payload: Any) -> None:
    """Every string (keys included) must be encodable: JSON's \\u escapes can spell lone
    UTF-16 surrogates, which no text can hold. Iterative: the payload may be deeply nested."""
    stack = [(payload, "body")]
    while stack:
        value, where = stack.pop()
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError as err:
                raise RequestError(
                    400,
                    f"{where} holds a lone UTF-16 surrogate (\\u{ord(value[err.start]):04x}); send valid Unicode",
                ) from None
        elif isinstance(value, dict):
            stack.extend((k, where) for k in value)
            stack.extend((v, f"{k}" if where == "body" else f"{where}.{k}") for k, v in value.items())
        elif isinstance(value, list):
            stack.extend((v, f"{where}[{i}]") for i, v in enumerate(value))


def parse_json(body: bytes) -> Any:
    """A request body -> its JSON value; every parser-level problem is a 4xx `RequestError`.

    Refused: an empty body, invalid UTF-8, malformed JSON, nesting deeper than the parser's
    recursion limit (400, never a RecursionError), NaN / Infinity literals (not JSON), number
    literals over `MAX_NUMBER_CHARS` or out of a double's range, duplicate keys (which one would
    win is parser-specific), keys over `MAX_KEY_CHARS`, lone surrogates in strings.
    """
    if not body.strip():
        raise RequestError(400, "empty request body; send a JSON object")
    text = decode_utf8(body, "request body")
    try:
        return _check(
            json.loads(
                text,
                object_pairs_hook=_object,
                parse_int=_parse_int,
                parse_float=_parse_float,
                parse_constant=_parse_constant,
            )
        )
    except json.JSONDecodeError as err:
        raise RequestError(
            400, f"malformed JSON: {err.msg} at line {err.lineno} column {err.colno}"
        ) from None
    except RecursionError:
        raise RequestError(
            400, "malformed JSON: nested too deeply (arrays or objects inside each other)"
        ) from None


def _check(payload: Any) -> Any:
    _check_strings(payload)
    return payload


async def _json(request: Request, model: type[BaseModel]) -> BaseModel:
    payload = parse_json(await request.body())
    if not isinstance(payload, dict):
        raise RequestError(422, f"the JSON body must be an object, got {type(payload).__name__}")
    try:
        return model.model_validate(payload)
    except ValidationError as err:
        raise RequestError(422, format_validation_error(err)) from None


def _int(value, name: str) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise RequestError(422, f"{name} must be an integer, got {str(value)[:50]!r}") from None
    if number < 1:
        raise RequestError(422, f"{name} must be >= 1, got {number}")
    return number


async def _form(request: Request, limits: Limits, allowed: set[str]) -> ParsedRequest:
    form = await request.form(
        max_files=limits.max_items + 1,
        max_fields=limits.max_items + limits.max_labels + 8,
        max_part_size=limits.max_body_bytes,
    )
    try:
        unknown = sorted(set(form.keys()) - allowed)
        if unknown:
            raise RequestError(422, f"unknown form field(s) {unknown}; expected {sorted(allowed)}")
        out = ParsedRequest()
        for i, value in enumerate(form.getlist("text")):
            if isinstance(value, UploadFile):
                value = decode_utf8(await value.read(), f"text[{i}]")
            out.texts.append(value)
        for i, value in enumerate(form.getlist("image")):
            if not isinstance(value, UploadFile):
                raise RequestError(422, f"image[{i}] must be a file upload, not a text field")
            out.images.append(RawImage(await value.read(), f"image[{i}] ({value.filename or 'upload'})"))
        for modality in ("audio", "video"):
            for i, value in enumerate(form.getlist(modality)):
                if not isinstance(value, UploadFile):
                    raise RequestError(422, f"{modality}[{i}] must be a file upload, not a text field")
                what = f"{modality}[{i}] ({value.filename or 'upload'})"
                out.media.setdefault(modality, []).append(RawImage(await value.read(), what))
        for value in form.getlist("labels"):
            if isinstance(value, UploadFile):
                raise RequestError(422, "labels must be text fields")
            out.labels.extend(label.strip() for label in value.split(",") if label.strip())
        if form.get("k") is not None:
            out.k = _int(form.get("k"), "k")
        if form.get("top_k") is not None:
            out.top_k = _int(form.get("top_k"), "top_k")
        return out
    finally:
        await form.close()


async def parse_request(
    request: Request, model: type[BaseModel], limits: Limits, form_fields: set[str]
) -> ParsedRequest:
    """JSON or multipart body -> `ParsedRequest` (not yet decoded images), limits checked."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == "application/json":
        body = await _json(request, model)
        data = body.model_dump()
        if "text" in data:  # a search: one query
            out = ParsedRequest(k=data["k"])
            if data["text"] is not None:
                out.texts.append(data["text"])
            if data["image"] is not None:
                out.images.append(RawImage(_b64(data["image"], "image"), "image"))
            if data["image_url"] is not None:
                out.image_urls.append(data["image_url"])
        else:
            out = ParsedRequest(
                texts=data["texts"],
                images=[
                    RawImage(_b64(v, f"images[{i}]"), f"images[{i}]") for i, v in enumerate(data["images"])
                ],
                image_urls=data["image_urls"],
                media={
                    m: [RawImage(_b64(v, f"{key}[{i}]"), f"{key}[{i}]") for i, v in enumerate(data[key])]
                    for m, key in (("audio", "audios"), ("video", "videos"))
                    if data.get(key)
                },
                labels=data.get("labels", []),
                templates=data.get("templates"),
                top_k=data.get("top_k"),
            )
    elif ctype == "multipart/form-data":
        out = await _form(request, limits, form_fields)
    else:
        raise RequestError(
            415,
            f"unsupported content type {ctype or '(none)'!r}; send application/json or multipart/form-data",
        )
    if out.n_items == 0:
        raise RequestError(400, "no inputs: give texts, images, audio or videos")
    if out.n_items > limits.max_items:
        raise RequestError(
            413, f"too many items in one request: {out.n_items}; the limit is {limits.max_items}"
        )
    check_texts(out.texts, limits, "texts")
    return out


def _load_one(raw: RawImage | str, limits: Limits) -> tuple[bytes, Image.Image]:
    if isinstance(raw, str):
        data = fetch_url(raw, limits.allow_url_prefixes, limits.max_body_bytes, limits.url_timeout_s)
        return data, open_image(data, limits, "image_url")
    return raw.data, open_image(raw.data, limits, raw.what)


async def load_images(parsed: ParsedRequest, limits: Limits) -> list[tuple[bytes, Image.Image]]:
    """Fetch allowed URLs and decode every image off the event loop: (encoded bytes, RGB image)."""
    for url in parsed.image_urls:  # refuse before any fetching
        check_url_allowed(url, limits.allow_url_prefixes)
    sources: list[RawImage | str] = [*parsed.images, *parsed.image_urls]
    return await run_in_threadpool(lambda: [_load_one(s, limits) for s in sources])


async def load_media(parsed: ParsedRequest, modality: str, limits: Limits) -> tuple[list[bytes], list]:
    """Decode the request's audio or video uploads off the event loop: (encoded bytes, clips)."""
    raws = parsed.media.get(modality, [])
    clips = await run_in_threadpool(lambda: [open_media(modality, r.data, limits, r.what) for r in raws])
    return [r.data for r in raws], clips
