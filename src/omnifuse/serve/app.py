"""The FastAPI app: /v1/embed, /v1/classify, /v1/search, health, readiness, metrics, the page.

Request path: body limit (streamed) -> API key -> parse + validate -> decode images in a worker
thread (header checks first) -> embedding cache -> dynamic batcher (one worker thread runs the
model) -> response. Health, readiness and metrics never touch the model, so they answer while
the queue is full. Errors are `{"error": message}` with a 4xx status; anything unexpected is a
generic 500 (logged server-side, never a stack trace or a path in the response).
"""

from __future__ import annotations

import asyncio
import io
import logging
import threading
from collections.abc import Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import fastapi
import numpy as np
from fastapi import Request  # module level: FastAPI resolves the handlers' annotations

from omnifuse._optional import require
from omnifuse.serve.batching import ClientDisconnected, DynamicBatcher
from omnifuse.serve.cache import EmbeddingCache, content_key
from omnifuse.serve.config import ServeConfig
from omnifuse.serve.errors import RequestError
from omnifuse.serve.metrics import MetricsMiddleware, ServeMetrics
from omnifuse.serve.security import check_api_key, check_bind

logger = logging.getLogger("omnifuse.serve")
STATIC_DIR = Path(__file__).parent / "static"
THUMBNAIL_MAX = 512


class ServeState:
    """What the handlers share: predictor, index, cache, batcher, metrics, readiness."""

    def __init__(self, config: ServeConfig, predictor=None, index=None):
        self.config = config
        self.predictor = predictor
        self.index = index
        self.metrics = ServeMetrics()
        self.cache = EmbeddingCache(
            config.cache_size,
            on_hit=lambda m: self.metrics.cache_hits.labels(m).inc(),
            on_miss=lambda m: self.metrics.cache_misses.labels(m).inc(),
        )
        self.batcher = DynamicBatcher(
            self.run_batch, config.max_batch, config.max_wait_ms / 1000.0, config.queue_size, self.metrics
        )
        self.ready = threading.Event()
        self.load_error: str | None = None
        self.lifespans = 0

    def load(self) -> None:
        """Load the model (and index) from `config` unless they were passed in; then ready."""
        from omnifuse.serve.index import VectorIndex

        if self.predictor is None:
            from omnifuse import runtime

            cfg = self.config
            self.predictor = runtime.load(
                cfg.model_dir, backend=cfg.backend, batch_size=cfg.max_batch, threads=cfg.threads
            )
        if self.index is None and self.config.index_dir:
            self.index = VectorIndex.load(self.config.index_dir, self.predictor.fingerprint)
        elif self.index is not None and self.index.info.fingerprint != self.predictor.fingerprint:
            raise ValueError("the index was built with a different model; rebuild it with this model")
        self.ready.set()

    def run_batch(self, task: tuple[str, Any], items: list[Any]) -> list[Any]:
        """Runs in the batcher's thread: one forward pass over items of one task."""
        kind, modality = task
        if kind == "embed":
            return list(self.predictor.embed(modality, items))  # (B, E) rows
        if kind == "classify":  # trained head; items are dicts modality -> value
            inputs = {m: [item[m] for item in items] for m in modality}
            return self.predictor.classify(inputs)
        raise ValueError(f"unknown task {task}")

    def check_ready(self) -> None:
        if not self.ready.is_set():
            raise RequestError(
                503,
                "the model is still loading; retry shortly"
                if not self.load_error
                else "the model failed to load",
                {"Retry-After": "2"},
            )

    async def embed(
        self, request, modality: str, values: list[Any], contents: list[bytes | str]
    ) -> np.ndarray:
        """Cached embeddings for one modality: hits from the LRU cache, misses through the batcher."""
        fingerprint = self.predictor.fingerprint
        keys = [content_key(fingerprint, modality, c) for c in contents]
        rows: list[np.ndarray | None] = [self.cache.get(k, modality) for k in keys]
        missing = [i for i, row in enumerate(rows) if row is None]
        if missing:
            futures = self.batcher.submit(
                ("embed", modality), [values[i] for i in missing], self.config.timeout_s
            )
            results = await self.batcher.wait(futures, self.config.timeout_s, lambda: _disconnected(request))
            for i, row in zip(missing, results):
                rows[i] = row
                self.cache.put(keys[i], row)
        return np.stack(rows)  # (N, E)


async def _disconnected(request) -> bool:
    """Resolves when the client disconnects (the body has been read already)."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return True


def create_app(
    config: ServeConfig,
    predictor=None,
    index=None,
    on_fatal: Callable[[str], None] | None = None,
):
    """The FastAPI app. Without `predictor`, the model loads in the background (/readyz: 503 until then)."""
    from fastapi import FastAPI
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import FileResponse, JSONResponse, Response
    from fastapi.staticfiles import StaticFiles
    from starlette.concurrency import run_in_threadpool
    from starlette.exceptions import HTTPException as StarletteHTTPException

    from omnifuse.runtime.base import DEFAULT_TEMPLATES, zero_shot_probs
    from omnifuse.serve import schemas as s
    from omnifuse.serve.inputs import format_validation_error, load_images, load_media, parse_request
    from omnifuse.serve.limits import BodyLimitMiddleware, check_texts

    if predictor is None and not config.model_dir:
        raise ValueError("give a model directory (ServeConfig.model_dir) or a predictor")
    state = ServeState(config, predictor, index)
    limits = config.limits

    @asynccontextmanager
    async def lifespan(app):
        state.lifespans += 1  # test clients may nest lifespans: the last one out drains
        state.batcher.start()

        async def load():
            try:
                await asyncio.to_thread(state.load)
                logger.info("model loaded; ready")
            except Exception as err:  # the message names the problem; no traceback to clients
                state.load_error = str(err)
                logger.error("cannot load the model: %s", err)
                if on_fatal:
                    on_fatal(str(err))

        loader = asyncio.create_task(load())
        try:
            yield
        finally:
            # uvicorn has stopped accepting and waited for in-flight requests: drain the batcher
            loader.cancel()
            state.lifespans -= 1
            if state.lifespans == 0:
                await asyncio.to_thread(state.batcher.close, config.graceful_timeout_s)

    app = FastAPI(
        title="omnifuse",
        version="1",
        description="Embeddings, zero-shot classification and vector search over an omnifuse model.",
        lifespan=lifespan,
        responses={},
    )
    app.state.serve = state

    # ---- errors -----------------------------------------------------------------------------
    def error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
        return JSONResponse({"error": message}, status_code=status, headers=headers)

    @app.exception_handler(RequestError)
    async def _request_error(request, err: RequestError):
        return error(err.status, err.message, err.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request, err):
        detail = err.detail if isinstance(err.detail, str) else "bad request"
        return error(err.status_code, detail, getattr(err, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request, err):
        return error(422, format_validation_error(list(err.errors())))

    @app.exception_handler(ClientDisconnected)
    async def _gone(request, err):
        return Response(status_code=499)

    @app.exception_handler(Exception)
    async def _internal(request, err):
        logger.error("unhandled error on %s", request.url.path, exc_info=err)
        return error(500, "internal server error")

    async def auth(request: Request) -> None:
        check_api_key(config.api_key, request.headers)

    deps = [fastapi.Depends(auth)]

    # ---- public routes ----------------------------------------------------------------------
    @app.get("/healthz", tags=["ops"])
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["ops"], responses={503: {"model": s.ErrorResponse}})
    async def readyz():
        if state.load_error:
            return error(503, "the model failed to load")
        if not state.ready.is_set():
            return error(503, "the model is still loading")
        return {
            "status": "ready",
            "model_type": state.predictor.model_type,
            "fingerprint": state.predictor.fingerprint,
            "modalities": state.predictor.modalities,
            "index_items": len(state.index) if state.index else 0,
        }

    @app.get("/metrics", tags=["ops"], response_class=Response)
    async def metrics():
        body, ctype = state.metrics.render()
        return Response(body, media_type=ctype)

    @app.get("/", include_in_schema=False)
    async def page():
        return FileResponse(STATIC_DIR / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    # ---- model routes -----------------------------------------------------------------------
    async def images_of(parsed) -> tuple[list[bytes], list[Any]]:
        loaded = await load_images(parsed, limits)
        return [b for b, _ in loaded], [img for _, img in loaded]

    def check_modality(modality: str) -> None:
        if modality not in state.predictor.modalities:
            raise RequestError(
                400, f"this model takes {state.predictor.modalities}; it cannot embed {modality}"
            )

    @app.post(
        "/v1/embed",
        tags=["model"],
        dependencies=deps,
        response_model=s.EmbedResponse,
        responses=s.ERROR_RESPONSES,
        openapi_extra=s.request_body(s.EmbedRequest, s.EMBED_FORM),
    )
    async def embed(request: Request):
        """Embed texts and/or images (JSON with base64 images, or a multipart upload)."""
        state.check_ready()
        parsed = await parse_request(request, s.EmbedRequest, limits, set(s.EMBED_FORM))
        if state.predictor.model_type != "dual_encoder":
            raise RequestError(
                400, f"embeddings come from a dual encoder; this model is a {state.predictor.model_type}"
            )
        out = s.EmbedResponse(dim=0, fingerprint=state.predictor.fingerprint)
        if parsed.texts:
            check_modality("text")
            out.text = (await state.embed(request, "text", parsed.texts, parsed.texts)).tolist()
        if parsed.images or parsed.image_urls:
            check_modality("image")
            contents, images = await images_of(parsed)
            out.image = (await state.embed(request, "image", images, contents)).tolist()
        for modality in sorted(parsed.media):
            check_modality(modality)
            contents, clips = await load_media(parsed, modality, limits)
            setattr(out, modality, (await state.embed(request, modality, clips, contents)).tolist())
        out.dim = len((out.text or out.image or out.audio or out.video)[0])
        return out

    @app.post(
        "/v1/classify",
        tags=["model"],
        dependencies=deps,
        response_model=s.ClassifyResponse,
        responses=s.ERROR_RESPONSES,
        openapi_extra=s.request_body(s.ClassifyRequest, s.CLASSIFY_FORM),
    )
    async def classify(request: Request):
        """Zero-shot over the given labels (dual encoder), or the trained head (classifier)."""
        state.check_ready()
        parsed = await parse_request(request, s.ClassifyRequest, limits, set(s.CLASSIFY_FORM))
        predictor = state.predictor
        modalities = [
            m for m, has in (("image", parsed.images or parsed.image_urls), ("text", parsed.texts)) if has
        ] + sorted(parsed.media)
        for m in modalities:
            check_modality(m)
        if parsed.labels:
            if predictor.model_type != "dual_encoder" or "text" not in predictor.modalities:
                raise RequestError(400, "zero-shot labels need a dual encoder with a text tower")
            if len(modalities) != 1:
                raise RequestError(
                    400,
                    "zero-shot classifies one modality at a time: send texts, images, audio or videos, not a mix",
                )
            labels = check_texts(parsed.labels, limits, "labels")
            templates = parsed.templates or list(DEFAULT_TEMPLATES)
            if not templates or any("{}" not in t for t in templates):
                raise RequestError(422, "every template needs a '{}' placeholder for the label")
            if len(labels) > limits.max_labels:
                raise RequestError(413, f"too many labels: {len(labels)}; the limit is {limits.max_labels}")
            prompts = [t.format(label) for label in labels for t in templates]
            if len(prompts) > config.queue_size:
                raise RequestError(
                    413, f"labels x templates = {len(prompts)} prompts; the limit is {config.queue_size}"
                )
            check_texts(prompts, limits, "prompts")
            (modality,) = modalities
            if modality == "image":
                contents, values = await images_of(parsed)
            elif modality in parsed.media:
                contents, values = await load_media(parsed, modality, limits)
            else:
                contents = values = parsed.texts
            items = await state.embed(request, modality, values, contents)  # (N, E)
            prompt_emb = await state.embed(request, "text", prompts, prompts)  # (C * T, E)
            probs = zero_shot_probs(items, prompt_emb, len(labels), predictor._logit_scale())  # (N, C)
            k = min(parsed.top_k or len(labels), len(labels))
            order = np.argsort(-probs, axis=1)[:, :k]
            results = [
                [s.LabelScoreOut(label=labels[j], score=float(row[j])) for j in idx]
                for row, idx in zip(probs, order)
            ]
            return s.ClassifyResponse(modality=modality, results=results)
        if not predictor.class_names:
            raise RequestError(
                422, "zero-shot classification needs 'labels' (this model has no trained head)"
            )
        inputs: dict[str, list[Any]] = {}
        if parsed.texts:
            inputs["text"] = parsed.texts
        if parsed.images or parsed.image_urls:
            inputs["image"] = (await images_of(parsed))[1]
        if len({len(v) for v in inputs.values()}) != 1:
            raise RequestError(400, "a fusion classifier needs as many texts as images (one pair per item)")
        n = len(next(iter(inputs.values())))
        task = ("classify", tuple(sorted(inputs)))
        futures = state.batcher.submit(
            task, [{m: v[i] for m, v in inputs.items()} for i in range(n)], config.timeout_s
        )
        scored = await state.batcher.wait(futures, config.timeout_s, lambda: _disconnected(request))
        k = parsed.top_k or len(predictor.class_names)
        results = [[s.LabelScoreOut(label=x.label, score=x.score) for x in row[:k]] for row in scored]
        return s.ClassifyResponse(modality="+".join(sorted(inputs)), results=results)

    @app.post(
        "/v1/search",
        tags=["model"],
        dependencies=deps,
        response_model=s.SearchResponse,
        responses=s.ERROR_RESPONSES,
        openapi_extra=s.request_body(s.SearchRequest, s.SEARCH_FORM),
    )
    async def search(request: Request):
        """The k nearest index items to one text or image query."""
        state.check_ready()
        if state.index is None:
            raise RequestError(404, "no index is loaded; start the server with --index DIR")
        parsed = await parse_request(request, s.SearchRequest, limits, set(s.SEARCH_FORM))
        if parsed.n_items != 1:
            raise RequestError(400, f"search takes exactly one query (text or image), got {parsed.n_items}")
        if parsed.k > limits.max_k:
            raise RequestError(413, f"k={parsed.k} is over the limit of {limits.max_k}")
        if parsed.texts:
            check_modality("text")
            modality, query = "text", await state.embed(request, "text", parsed.texts, parsed.texts)
        else:
            check_modality("image")
            contents, images = await images_of(parsed)
            modality, query = "image", await state.embed(request, "image", images, contents)
        (hits,) = await run_in_threadpool(state.index.search, query, parsed.k)
        results = []
        for hit in hits:
            meta = dict(hit.metadata)
            image = meta.pop("image", None)  # a server path: replaced by the thumbnail URL
            if isinstance(image, str):
                meta["image_name"] = Path(image).name
            thumb = f"/v1/items/{hit.id}/thumbnail" if image else None
            results.append(s.SearchHitOut(id=hit.id, score=hit.score, metadata=meta, thumbnail=thumb))
        return s.SearchResponse(modality=modality, results=results)

    @app.get(
        "/v1/items/{item_id}/thumbnail",
        tags=["model"],
        dependencies=deps,
        response_class=Response,
        responses={**s.ERROR_RESPONSES, 200: {"content": {"image/png": {}}}},
    )
    async def thumbnail(item_id: str, size: int = fastapi.Query(128, ge=8, le=THUMBNAIL_MAX)):
        """A PNG thumbnail of an index item's image (only files registered in the index)."""
        state.check_ready()
        path = state.index.image_path(item_id) if state.index is not None else None
        if path is None:
            raise RequestError(404, f"no image for item {item_id[:100]!r}")

        def render() -> bytes:
            from omnifuse.serve.limits import open_image

            img = open_image(path.read_bytes(), limits, f"item {item_id}")
            img.thumbnail((size, size))
            buf = io.BytesIO()
            img.save(buf, format="PNG")
            return buf.getvalue()

        return Response(
            await run_in_threadpool(render),
            media_type="image/png",
            headers={"Cache-Control": "private, max-age=3600"},
        )

    app.add_middleware(BodyLimitMiddleware, max_bytes=limits.max_body_bytes)
    app.add_middleware(MetricsMiddleware, metrics=state.metrics)
    return app


def run_server(config: ServeConfig, log_level: str = "info") -> int:
    """Serve until SIGTERM / SIGINT; then stop accepting, finish in-flight requests, drain, exit 0."""
    import contextlib
    import signal

    uvicorn = require("uvicorn", "serve", "the HTTP server")
    from PIL import Image

    check_bind(config.host, config.api_key)
    # decompression-bomb guard for every PIL decode in this process (the explicit header check
    # in open_image comes first; PIL raises on images over twice this size)
    Image.MAX_IMAGE_PIXELS = config.limits.max_image_pixels
    fatal: list[str] = []

    class Server(uvicorn.Server):
        """uvicorn re-raises SIGTERM after a graceful shutdown (exit status -15); we exit 0."""

        @contextlib.contextmanager
        def capture_signals(self):
            if threading.current_thread() is not threading.main_thread():
                yield
                return
            previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
            try:
                yield
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)

        def _on_signal(self, sig, frame) -> None:
            if self.should_exit and sig == signal.SIGINT:
                self.force_exit = True
            self.should_exit = True

    def on_fatal(message: str) -> None:
        fatal.append(message)
        server.should_exit = True

    app = create_app(config, on_fatal=on_fatal)
    server = Server(
        uvicorn.Config(
            app,
            host=config.host,
            port=config.port,
            log_level=log_level,
            timeout_graceful_shutdown=config.graceful_timeout_s,
            access_log=False,
        )
    )
    server.run()
    if fatal:
        raise ValueError(f"cannot serve: {fatal[0]}")
    return 0
