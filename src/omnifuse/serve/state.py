"""What the routers share: the predictor, the index, the cache, the batcher, metrics, readiness.

One `ServeState` per app. Routers receive it when they are built (`build(state)`), so a router
is testable alone: give it a state with a stand-in predictor and mount it on a bare FastAPI app.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import numpy as np

from omnifuse.serve.batching import DynamicBatcher
from omnifuse.serve.cache import EmbeddingCache, content_key
from omnifuse.serve.config import ServeConfig
from omnifuse.serve.errors import RequestError
from omnifuse.serve.metrics import ServeMetrics


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
        self.tasks: dict[str, Callable[[Any, Any, list[Any]], list[Any]]] = {"embed": _embed_task}
        """Batched task name -> `run(predictor, key, items)` -> one result per item; routers add theirs."""
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

    # ---- what the model can do --------------------------------------------------------------
    @property
    def capabilities(self) -> frozenset[str]:
        """The loaded model's capabilities, from its kind's spec (`omnifuse.models.registry`)."""
        from omnifuse.serve.capabilities import capabilities_of

        return capabilities_of(self.predictor.model_type)

    def can(self, capability: str) -> bool:
        return capability in self.capabilities

    def require(self, endpoint: str, *any_of: str) -> None:
        """A 503 while loading; a 400 naming what the model offers when it can do none of `any_of`."""
        from omnifuse.serve.capabilities import missing_capability_message

        self.check_ready()
        if not any(self.can(c) for c in any_of):
            raise RequestError(
                400,
                missing_capability_message(endpoint, any_of, self.predictor.model_type, self.capabilities),
            )

    def check_ready(self) -> None:
        if not self.ready.is_set():
            raise RequestError(
                503,
                "the model is still loading; retry shortly"
                if not self.load_error
                else "the model failed to load",
                {"Retry-After": "2"},
            )

    def check_modality(self, modality: str) -> None:
        if modality not in self.predictor.modalities:
            raise RequestError(
                400, f"this model takes {self.predictor.modalities}; it cannot embed {modality}"
            )

    # ---- running the model ------------------------------------------------------------------
    def add_task(self, name: str, run: Callable[[Any, Any, list[Any]], list[Any]]) -> None:
        """Register a batched task: `run(predictor, key, items)` runs in the batcher's thread."""
        if name in self.tasks and self.tasks[name] is not run:
            raise ValueError(f"batched task '{name}' is already registered")
        self.tasks[name] = run

    def run_batch(self, task: tuple[str, Any], items: list[Any]) -> list[Any]:
        """Runs in the batcher's thread: one forward pass over items of one task `(name, key)`;
        items of one batch share the key (e.g. the modality)."""
        name, key = task
        if name not in self.tasks:
            raise ValueError(f"unknown task {task}")
        return self.tasks[name](self.predictor, key, items)

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
            results = await self.batcher.wait(futures, self.config.timeout_s, lambda: disconnected(request))
            for i, row in zip(missing, results):
                rows[i] = row
                self.cache.put(keys[i], row)
        return np.stack(rows)  # (N, E)

    async def submit(self, request, task: tuple[str, Any], items: list[Any]) -> list[Any]:
        """Any other task through the batcher (one forward pass per batch of items of one task)."""
        futures = self.batcher.submit(task, items, self.config.timeout_s)
        return await self.batcher.wait(futures, self.config.timeout_s, lambda: disconnected(request))


def _embed_task(predictor, modality: str, items: list[Any]) -> list[Any]:
    return list(predictor.embed(modality, items))  # (B, E) rows


async def disconnected(request) -> bool:
    """Resolves when the client disconnects (the body has been read already)."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return True
