"""The server's micro-batcher: concurrent requests share one predictor call, behind a bounded queue.

Each request puts its items on a queue and awaits futures; one worker thread takes up to ``max_batch`` items,
waiting at most ``wait_ms`` for more after the first, and runs ONE batched predictor call. At most ``max_queue``
items are queued or running (:class:`QueueFull` past it); jobs whose client went away are skipped.
"""

from __future__ import annotations

import asyncio
import logging
import math
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from fintune.analyze import AnalyzeItem
from fintune.errors import FintuneError

MAX_QUEUE = 1024
log = logging.getLogger("fintune.serve")


class QueueFull(Exception):
    """The batcher holds ``max_queue`` items already; ``retry_after`` is a guess (seconds) of when it frees up."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"server busy: request queue is full, retry in {retry_after} s")
        self.retry_after = retry_after


class _Job:
    __slots__ = ("cancelled", "explain", "future", "item", "loop")

    def __init__(self, item: AnalyzeItem, explain: bool, future: asyncio.Future, loop: asyncio.AbstractEventLoop):
        self.item, self.explain, self.future, self.loop = item, explain, future, loop
        self.cancelled = False  # set when the client went away: the worker skips the job


_STOP = object()


def _resolve(job: _Job, value: Any, error: BaseException | None) -> None:
    def apply() -> None:
        if job.future.done():  # the client went away and the request was cancelled
            return
        if error is not None:
            job.future.set_exception(error)
        else:
            job.future.set_result(value)

    job.loop.call_soon_threadsafe(apply)


class DynamicBatcher:
    """Collects concurrent requests into batches for one worker thread that owns the model.

    Args:
        predict: ``(prepared_items, explain) -> predictions`` (one batched forward).
        prepare: ``item -> prepared item``; raising :class:`FintuneError` fails only that request.
        max_batch: most items per forward; ``1`` is one-at-a-time serving.
        wait_ms: after the first item, how long to wait for more before running the batch.
        max_queue: most items queued or running at once; past it :meth:`enqueue` raises :class:`QueueFull`.
    """

    def __init__(self, predict: Callable[[list[Any], bool], list[Any]], prepare: Callable[[AnalyzeItem], Any],
                 max_batch: int = 32, wait_ms: float = 5.0, max_queue: int = MAX_QUEUE) -> None:
        if max_batch < 1:
            raise FintuneError(f"--max-batch {max_batch}: must be at least 1")
        if wait_ms < 0 or not math.isfinite(wait_ms):
            raise FintuneError(f"--wait-ms {wait_ms}: must be a finite number >= 0")
        if max_queue < 1:
            raise FintuneError(f"--max-queue {max_queue}: must be at least 1")
        self.max_queue = max_queue
        self.cancelled = 0  # items dropped because their client disconnected
        self.rejected = 0  # items refused with 503 (queue full)
        self._batch_seconds = 0.0
        self._predict, self._prepare = predict, prepare
        self.max_batch, self.wait_s = max_batch, wait_ms / 1000.0
        self._queue: queue.Queue = queue.Queue()
        self._lock = threading.Lock()
        self._closed = False
        self._thread = threading.Thread(target=self._worker, name="fintune-batcher", daemon=True)
        self.batches = 0
        self.items = 0
        self.max_seen = 0
        self.in_flight = 0  # items submitted and not answered yet

    def start(self) -> DynamicBatcher:
        """Start the worker thread."""
        self._thread.start()
        return self

    def enqueue(self, items: list[AnalyzeItem], explain: bool = False) -> list[_Job]:
        """Queue all ``items`` (or none: :class:`QueueFull` when they do not fit); await each job's ``future``."""
        loop = asyncio.get_running_loop()
        with self._lock:
            if self._closed:
                raise RuntimeError("server is shutting down")
            if self.in_flight + len(items) > self.max_queue:
                self.rejected += len(items)
                raise QueueFull(self.retry_after())
            jobs = [_Job(item, explain, loop.create_future(), loop) for item in items]
            self.in_flight += len(jobs)
            for job in jobs:
                job.future.add_done_callback(self._finished)
                self._queue.put(job)
        return jobs

    def _finished(self, _: asyncio.Future) -> None:
        with self._lock:
            self.in_flight -= 1

    def cancel(self, jobs: list[_Job]) -> None:
        """Drop jobs whose client went away: the worker skips any not started yet."""
        for job in jobs:
            if not job.future.done():
                job.cancelled = True
                job.future.cancel()
                with self._lock:
                    self.cancelled += 1

    def retry_after(self) -> int:
        """Seconds until the queue has likely drained (at least 1), from the last batch's duration."""
        batches = math.ceil(self.in_flight / self.max_batch)
        return max(1, math.ceil(batches * max(self._batch_seconds, self.wait_s)))

    async def submit(self, item: AnalyzeItem, explain: bool = False) -> Any:
        """Queue one item and wait for its prediction (errors of this item are raised here)."""
        job = self.enqueue([item], explain)[0]
        try:
            return await job.future
        except asyncio.CancelledError:
            self.cancel([job])
            raise

    def close(self, timeout: float | None = None) -> None:
        """Stop taking work, finish everything already queued, and join the worker."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._queue.put(_STOP)
        self._thread.join(timeout)

    def stats(self) -> dict[str, Any]:
        """Batches run, items served and in flight, mean and largest batch size."""
        return {"batches": self.batches, "items": self.items, "in_flight": self.in_flight,
                "max_batch_seen": self.max_seen, "max_queue": self.max_queue, "cancelled": self.cancelled,
                "rejected_queue_full": self.rejected,
                "mean_batch": round(self.items / self.batches, 3) if self.batches else None,
                "max_batch": self.max_batch, "wait_ms": self.wait_s * 1000.0}

    def _collect(self, first: _Job) -> tuple[list[_Job], bool]:
        batch, stop = [first], False
        deadline = time.monotonic() + self.wait_s
        while len(batch) < self.max_batch:
            remaining = deadline - time.monotonic()
            try:
                job = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if job is _STOP:
                stop = True
                break
            batch.append(job)
        return batch, stop

    def _worker(self) -> None:
        stop = False
        while not stop:
            first = self._queue.get()
            if first is _STOP:
                break
            batch, stop = self._collect(first)
            for explain in (False, True):
                jobs = [j for j in batch if j.explain == explain]
                if jobs:
                    self._run(jobs, explain)

    def _run(self, jobs: list[_Job], explain: bool) -> None:
        ready, prepared = [], []
        for job in jobs:
            if job.cancelled:  # its client disconnected while it waited: no model work for it
                continue
            try:
                prepared.append(self._prepare(job.item))
                ready.append(job)
            except FintuneError as exc:
                _resolve(job, None, exc)
            except Exception as exc:  # a bug for one input must not take the batch down
                _resolve(job, None, exc)
        if not ready:
            return
        t0 = time.perf_counter()
        try:
            preds = self._predict(prepared, explain)
        except Exception as exc:
            log.exception("batch of %d failed", len(ready))
            for job in ready:
                _resolve(job, None, exc)
            return
        self._batch_seconds = time.perf_counter() - t0
        self.batches += 1
        self.items += len(ready)
        self.max_seen = max(self.max_seen, len(ready))
        for job, pred in zip(ready, preds, strict=True):
            _resolve(job, pred, None)
