"""Dynamic batching: requests from many clients are queued and run together, off the event loop.

One worker thread takes up to `max_batch` queued items of the same task (e.g. ("embed",
"image")), waiting at most `max_wait_s` after the oldest one arrived for more to come, and runs
them in one forward pass (the idea of Clipper, Crankshaw et al. NSDI 2017, and of Triton's
dynamic batcher). The queue is bounded: a request that does not fit is refused at once (429),
so overload never turns into unbounded latency or memory. Each item carries a deadline: one
still queued past it is dropped (the request gets 503); a request whose client disconnected
cancels its items, and cancelled items are skipped before they reach the model.

`close()` stops accepting work and drains the queue (graceful shutdown): everything already
accepted is still run.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Hashable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from omnifuse.serve.errors import RequestError

logger = logging.getLogger("omnifuse.serve")

RunBatch = Callable[[Hashable, list[Any]], Sequence[Any]]
"""run_batch(task, items) -> one result per item, in order."""


class ClientDisconnected(Exception):
    """The client went away; its queued work was cancelled."""


@dataclass
class Job:
    task: Hashable
    item: Any
    deadline: float
    enqueued: float = field(default_factory=time.monotonic)
    future: Future = field(default_factory=Future)


class DynamicBatcher:
    """Bounded queue + one worker thread running batches of up to `max_batch` items of one task."""

    def __init__(
        self,
        run_batch: RunBatch,
        max_batch: int = 32,
        max_wait_s: float = 0.005,
        queue_size: int = 256,
        metrics=None,
    ):
        self.run_batch = run_batch
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.queue_size = queue_size
        self.metrics = metrics
        self._pending: deque[Job] = deque()
        self._cond = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name="omnifuse-batcher", daemon=True)
        self.batches_run = 0

    # ---- lifecycle ------------------------------------------------------------------------
    def start(self) -> DynamicBatcher:
        """Start the worker (again, after a `close`); a no-op while it runs."""
        with self._cond:
            if self._thread.is_alive():
                return self
            self._closed = False
            if self._thread.ident is not None:  # ran before: threads start once
                self._thread = threading.Thread(target=self._loop, name="omnifuse-batcher", daemon=True)
            self._thread.start()
        return self

    def close(self, timeout_s: float | None = 30.0) -> None:
        """Stop accepting; run everything already queued; join the worker."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout_s)

    @property
    def depth(self) -> int:
        return len(self._pending)

    # ---- producer side --------------------------------------------------------------------
    def submit(self, task: Hashable, items: Sequence[Any], timeout_s: float) -> list[Future]:
        """Queue all `items` of a request, or none: 429 when they do not fit, 503 when closing."""
        now = time.monotonic()
        with self._cond:
            if self._closed:
                self._reject("shutting_down")
                raise RequestError(503, "the server is shutting down", {"Retry-After": "1"})
            if len(self._pending) + len(items) > self.queue_size:
                self._reject("queue_full")
                raise RequestError(
                    429,
                    f"server busy: the queue is full ({self.queue_size} items); retry shortly",
                    {"Retry-After": "1"},
                )
            jobs = [Job(task, item, deadline=now + timeout_s, enqueued=now) for item in items]
            self._pending.extend(jobs)
            self._set_depth()
            self._cond.notify_all()
        return [job.future for job in jobs]

    async def wait(
        self,
        futures: list[Future],
        timeout_s: float,
        disconnected: Callable[[], Awaitable[Any]] | None = None,
    ) -> list[Any]:
        """Await results; 503 past the deadline; cancels the items if `disconnected` finishes first."""
        if not futures:
            return []
        results = asyncio.ensure_future(asyncio.gather(*(asyncio.wrap_future(f) for f in futures)))
        watcher = asyncio.ensure_future(disconnected()) if disconnected else None
        waiting = {results} | ({watcher} if watcher else set())
        try:
            done, _ = await asyncio.wait(waiting, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if watcher is not None:
                watcher.cancel()
        if results in done:
            return results.result()
        results.cancel()
        for f in futures:
            f.cancel()  # no effect on items already running
        if watcher is not None and watcher in done:
            self._reject("client_disconnected")
            raise ClientDisconnected()
        self._reject("deadline")
        raise RequestError(
            503, f"request timed out after {timeout_s:g} s in the queue; the server is overloaded"
        )

    # ---- worker side ----------------------------------------------------------------------
    def _reject(self, reason: str) -> None:
        if self.metrics is not None:
            self.metrics.rejections.labels(reason).inc()

    def _set_depth(self) -> None:
        if self.metrics is not None:
            self.metrics.queue_depth.set(len(self._pending))

    def _count(self, task: Hashable) -> int:
        return sum(1 for job in self._pending if job.task == task)

    def _take_batch(self) -> list[Job] | None:
        with self._cond:
            while not self._pending and not self._closed:
                self._cond.wait()
            if not self._pending:
                return None  # closed and drained
            first = self._pending[0]
            flush_at = first.enqueued + self.max_wait_s
            while not self._closed and self._count(first.task) < self.max_batch:
                remaining = flush_at - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            batch, rest = [], deque()
            while self._pending:
                job = self._pending.popleft()
                (batch if job.task == first.task and len(batch) < self.max_batch else rest).append(job)
            self._pending = rest
            self._set_depth()
            return batch

    def _loop(self) -> None:
        while True:
            batch = self._take_batch()
            if batch is None:
                return
            now = time.monotonic()
            live = []
            for job in batch:
                if not job.future.set_running_or_notify_cancel():
                    continue  # cancelled: the client went away or gave up
                if now > job.deadline:
                    job.future.set_exception(RequestError(503, "request timed out in the queue"))
                    continue
                live.append(job)
            if not live:
                continue
            task = live[0].task
            if self.metrics is not None:
                self.metrics.batch_size.labels(
                    ":".join(map(str, task)) if isinstance(task, tuple) else str(task)
                ).observe(len(live))
            try:
                results = self.run_batch(task, [job.item for job in live])
                if len(results) != len(live):
                    raise RuntimeError(f"run_batch returned {len(results)} results for {len(live)} items")
            except BaseException as err:  # handed to the waiting requests; the worker carries on
                logger.exception("batch of %d items for %s failed", len(live), task)
                for job in live:
                    job.future.set_exception(err)
                continue
            self.batches_run += 1
            for job, result in zip(live, results):
                job.future.set_result(result)
