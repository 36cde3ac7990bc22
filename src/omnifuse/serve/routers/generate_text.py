"""`POST /v1/caption` and `POST /v1/answer`: text from images (models whose spec can `generate_text`).

JSON in (base64 images, the sampling controls of `omnifuse generate`). Out: JSON with one result
per image (`text`, `finish_reason`), or with `stream: true` server-sent events as the tokens are
decoded: `event: token` with `{"text": piece}` per piece, then `event: done` with the full
result (or `event: error`). Limits, each a 4xx: `max_new_tokens` above `limits.max_new_tokens`
(422), a prompt longer than the language model's context (422), more images than
`limits.max_items` (413). One generation runs at a time (it uses every thread).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from omnifuse.serve import schemas as s
from omnifuse.serve.errors import RequestError
from omnifuse.serve.inputs import ParsedRequest, RawImage, _b64, _json, load_images
from omnifuse.serve.limits import check_texts
from omnifuse.serve.routers.registry import register_router
from omnifuse.serve.state import ServeState


def sse(event: str, data: Any) -> str:
    """One server-sent event."""
    return f"event: {event}\ndata: {json.dumps(data)}\n\n"


def settings_of(body: s.DecodingFields, limit: int):
    from omnifuse.generation import GenerationError, GenerationSettings

    if body.max_new_tokens > limit:
        raise RequestError(
            422, f"max_new_tokens={body.max_new_tokens} is above the server's limit of {limit}"
        )
    try:
        return GenerationSettings(
            max_new_tokens=body.max_new_tokens,
            strategy=body.strategy,
            num_beams=body.num_beams,
            temperature=body.temperature,
            top_k=body.top_k,
            top_p=body.top_p,
            seed=body.seed,
        )
    except GenerationError as err:
        raise RequestError(422, str(err)) from None


def _response(out) -> s.GenerateTextResponse:
    results = [
        s.GeneratedText(text=t, finish_reason=r) for t, r in zip(out.texts, out.finish_reasons, strict=True)
    ]
    return s.GenerateTextResponse(results=results, tokens=out.new_tokens)


@register_router("generate_text", requires=("generate_text",))
def build(state: ServeState) -> APIRouter:
    from omnifuse.generation import GenerationError, stream_generate

    router = APIRouter(tags=["model"])
    limits = state.config.limits
    lock = asyncio.Lock()

    async def run(call, settings, stream: bool):
        """Run `call(streamer)` (JSON result) or stream it; bad input -> 422 before any event."""
        if not stream:
            try:
                async with lock:
                    return _response(await asyncio.to_thread(call, None))
            except GenerationError as err:
                raise RequestError(422, str(err)) from None
        await lock.acquire()
        loop = asyncio.get_running_loop()
        try:
            pieces = stream_generate(call, state.predictor.tokenizer, settings.stop)
            iterator = iter(pieces)
            try:  # the first piece: errors in the request (context length, ...) are still a 4xx
                first = await run_in_threadpool(next, iterator, None)
            except GenerationError as err:
                raise RequestError(422, str(err)) from None
        except BaseException:
            lock.release()
            raise

        def events() -> Iterator[str]:
            try:
                if first is not None:
                    yield sse("token", {"text": first})
                for piece in iterator:
                    yield sse("token", {"text": piece})
                yield sse("done", _response(pieces.output).model_dump())
            except Exception as err:  # noqa: BLE001 - reported to the client as an event
                yield sse("error", {"error": str(err)})
            finally:  # this generator runs in a worker thread: release on the event loop
                loop.call_soon_threadsafe(lock.release)

        return StreamingResponse(
            events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
        )

    @router.post(
        "/v1/caption",
        response_model=s.GenerateTextResponse,
        responses={**s.ERROR_RESPONSES, 200: {"content": {"text/event-stream": {}}}},
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": s.CaptionRequest.model_json_schema()}},
            }
        },
    )
    async def caption(request: Request):
        """A caption per image (greedy by default), or a stream of server-sent events for one image."""
        body = await _json(request, s.CaptionRequest)
        n = len(body.images) + len(body.image_urls)
        if n == 0:
            raise RequestError(400, "no images: give 'images' (base64) or 'image_urls'")
        if n > limits.max_items:
            raise RequestError(413, f"too many images in one request: {n}; the limit is {limits.max_items}")
        if body.stream and n != 1:
            raise RequestError(400, "streaming decodes one caption: send one image")
        settings = settings_of(body, limits.max_new_tokens)
        parsed = ParsedRequest(
            images=[RawImage(_b64(v, f"images[{i}]"), f"images[{i}]") for i, v in enumerate(body.images)],
            image_urls=body.image_urls,
        )
        images = [img for _, img in await load_images(parsed, limits)]
        predictor = state.predictor
        return await run(
            lambda streamer: predictor.caption(images, settings, streamer=streamer), settings, body.stream
        )

    @router.post(
        "/v1/answer",
        response_model=s.GenerateTextResponse,
        responses={**s.ERROR_RESPONSES, 200: {"content": {"text/event-stream": {}}}},
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": s.AnswerRequest.model_json_schema()}},
            }
        },
    )
    async def answer(request: Request):
        """An answer to a question about an image (free-form text), or a stream of events."""
        body = await _json(request, s.AnswerRequest)
        (question,) = check_texts([body.question], limits, "question")
        if not question.strip():
            raise RequestError(422, "the question is empty")
        settings = settings_of(body, limits.max_new_tokens)
        parsed = ParsedRequest(images=[RawImage(_b64(body.image, "image"), "image")])
        images = [img for _, img in await load_images(parsed, limits)]
        predictor = state.predictor
        return await run(
            lambda streamer: predictor.answer(images, [question], settings, streamer=streamer),
            settings,
            body.stream,
        )

    return router
