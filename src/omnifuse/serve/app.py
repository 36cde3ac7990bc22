"""The FastAPI app: the routers of `omnifuse.serve.routers`, error handlers, limits, lifespan.

Request path: body limit (streamed) -> API key -> readiness and the router's capability ->
parse + validate -> decode images in a worker thread (header checks first) -> embedding cache
-> dynamic batcher (one worker thread runs the model) -> response. Health, readiness and metrics
never touch the model, so they answer while the queue is full. Errors are `{"error": message}`
with a 4xx status; anything unexpected is a generic 500 (logged server-side, never a stack
trace or a path in the response).

The endpoints live in `omnifuse/serve/routers/` (one module per router); a new one registers
itself with `register_router` (see `omnifuse.serve.routers.registry`).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Iterable
from contextlib import asynccontextmanager

import fastapi
from fastapi import Request  # module level: FastAPI resolves the handlers' annotations

from omnifuse._optional import require
from omnifuse.serve.batching import ClientDisconnected
from omnifuse.serve.config import ServeConfig
from omnifuse.serve.errors import RequestError
from omnifuse.serve.metrics import MetricsMiddleware
from omnifuse.serve.security import check_api_key, check_bind
from omnifuse.serve.state import ServeState

logger = logging.getLogger("omnifuse.serve")


def install_error_handlers(app) -> None:
    """Every error is `{"error": message}`: RequestError and HTTP errors with their 4xx status,
    validation errors 422, a client gone 499, anything else a generic 500 (logged here)."""
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse, Response
    from starlette.exceptions import HTTPException as StarletteHTTPException

    from omnifuse.serve.inputs import format_validation_error

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


def include_routers(app, state: ServeState, routers: Iterable | None = None) -> None:
    """Mount `routers` (default: every registered one) with their API-key and capability checks."""
    from omnifuse.serve.routers import ROUTERS

    async def auth(request: Request) -> None:
        check_api_key(state.config.api_key, request.headers)

    for router in ROUTERS.values() if routers is None else routers:
        deps = [fastapi.Depends(auth)] if router.auth else []
        if router.requires:
            deps.append(fastapi.Depends(_capability_check(state, router.requires)))
        app.include_router(router.build(state), dependencies=deps)


def _capability_check(state: ServeState, requires: tuple[str, ...]):
    async def check(request: Request) -> None:
        state.require(request.url.path, *requires)

    return check


def create_app(
    config: ServeConfig,
    predictor=None,
    index=None,
    on_fatal: Callable[[str], None] | None = None,
    routers: Iterable | None = None,
):
    """The FastAPI app. Without `predictor`, the model loads in the background (/readyz: 503 until then).

    `routers`: the `ServeRouter`s to mount (default: every one registered in
    `omnifuse.serve.routers`).
    """
    from fastapi import FastAPI

    from omnifuse.serve.limits import BodyLimitMiddleware

    if predictor is None and not config.model_dir:
        raise ValueError("give a model directory (ServeConfig.model_dir) or a predictor")
    state = ServeState(config, predictor, index)

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
    install_error_handlers(app)
    include_routers(app, state, routers)
    app.add_middleware(BodyLimitMiddleware, max_bytes=config.limits.max_body_bytes)
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
