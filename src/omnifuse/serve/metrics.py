"""Prometheus metrics on a per-app `CollectorRegistry` (two apps in one process never clash).

Also the ASGI middleware that counts requests by route template and status and times them.
"""

from __future__ import annotations

import time

from omnifuse._optional import require

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class ServeMetrics:
    """requests by route/status, latency, batch sizes, queue depth, rejections, cache hits/misses."""

    def __init__(self):
        prom = require("prometheus_client", "serve", "the server's /metrics")
        self._prom = prom
        self.registry = prom.CollectorRegistry()
        r = self.registry
        self.requests = prom.Counter(
            "omnifuse_requests",
            "HTTP requests by route and status",
            ["route", "method", "status"],
            registry=r,
        )
        self.latency = prom.Histogram(
            "omnifuse_request_latency_seconds",
            "HTTP request latency",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_size = prom.Histogram(
            "omnifuse_batch_size", "Items per model forward pass", ["task"], buckets=BATCH_BUCKETS, registry=r
        )
        self.queue_depth = prom.Gauge("omnifuse_queue_depth", "Items waiting for the batcher", registry=r)
        self.rejections = prom.Counter(
            "omnifuse_rejections", "Requests refused by reason", ["reason"], registry=r
        )
        self.cache_hits = prom.Counter(
            "omnifuse_cache_hits", "Embedding cache hits", ["modality"], registry=r
        )
        self.cache_misses = prom.Counter(
            "omnifuse_cache_misses", "Embedding cache misses", ["modality"], registry=r
        )

    def render(self) -> tuple[bytes, str]:
        return self._prom.generate_latest(self.registry), self._prom.CONTENT_TYPE_LATEST


class MetricsMiddleware:
    """Counts and times every HTTP request under its route template (unmatched: 'unmatched')."""

    def __init__(self, app, metrics: ServeMetrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start = time.perf_counter()
        status = {"code": 500}

        async def send_wrapper(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", None) or "unmatched"
            self.metrics.requests.labels(path, scope.get("method", "?"), str(status["code"])).inc()
            self.metrics.latency.labels(path).observe(time.perf_counter() - start)
