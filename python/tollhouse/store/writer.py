"""The background spend writer: the request path hands rows over, batches go to the store.

``submit`` is synchronous and O(1): it appends to an in-memory queue and never awaits
the store.  A task writes batches every ``interval`` seconds (or as soon as a full batch
is waiting).  Rows stay queued until the store has accepted them, so a failing store is
retried with exponential backoff without losing anything; inserts are idempotent on the
row id, so a batch whose commit outcome is unknown is safely written again.  The queue
is bounded: past ``max_queue`` rows new ones are dropped, counted in ``dropped`` and
logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections import deque

from tollhouse.store.base import SpendRow, Store

log = logging.getLogger(__name__)

_DROP_LOG_EVERY = 10.0  # seconds between overflow warnings


class SpendWriter:
    def __init__(
        self,
        store: Store,
        *,
        batch: int = 256,
        interval: float = 0.2,
        max_queue: int = 100_000,
        min_backoff: float = 0.1,
        max_backoff: float = 5.0,
        stop_timeout: float = 10.0,
    ) -> None:
        if batch < 1 or max_queue < 1 or interval <= 0:
            raise ValueError("batch and max_queue must be >= 1 and interval > 0")
        self._store = store
        self.batch = batch
        self.interval = interval
        self.max_queue = max_queue
        self.min_backoff = min_backoff
        self.max_backoff = max_backoff
        self.stop_timeout = stop_timeout
        self._queue: deque[SpendRow] = deque()
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._write_lock = asyncio.Lock()
        self.written = 0
        self.dropped = 0
        self.failures = 0
        self.last_error: str | None = None
        self._dropped_logged = 0
        self._drop_logged_at = 0.0

    @property
    def pending(self) -> int:
        """Rows accepted by ``submit`` and not yet committed to the store."""
        return len(self._queue)

    def stats(self) -> dict[str, int]:
        """Cumulative counts for metrics: rows ``written``, ``dropped`` (queue full),
        failed batch ``failures``, and the current ``queue_depth``."""
        return {
            "written": self.written,
            "dropped": self.dropped,
            "failures": self.failures,
            "queue_depth": len(self._queue),
        }

    def find_pending(self, generation_id: str) -> SpendRow | None:
        """A queued row not yet written (lets ``/v1/generation`` answer at once)."""
        for row in reversed(self._queue):
            if row.id == generation_id:
                return row
        return None

    def submit(self, row: SpendRow) -> None:
        """Queue a row for the store; never blocks, never raises on a full queue."""
        if len(self._queue) >= self.max_queue:
            self.dropped += 1
            self._log_drops()
            return
        self._queue.append(row)
        if len(self._queue) >= self.batch:
            self._wake.set()

    def _log_drops(self) -> None:
        now = time.monotonic()
        if self._dropped_logged == 0 or now - self._drop_logged_at >= _DROP_LOG_EVERY:
            log.error(
                "spend queue full (%d rows): dropped %d spend rows so far",
                self.max_queue,
                self.dropped,
            )
            self._dropped_logged = self.dropped
            self._drop_logged_at = now

    async def start(self) -> None:
        if self._task is None:
            self._stopping.clear()
            self._task = asyncio.create_task(self._run(), name="tollhouse-spend-writer")

    async def stop(self) -> None:
        """Stop the loop, then write everything queued (retrying up to ``stop_timeout``).

        The loop ends on a flag, not on a cancel: a store driver may turn a cancellation
        that lands mid-query into an ordinary error, which would otherwise be retried
        forever.  A cancel is only the fallback for a loop stuck in a store call.
        """
        self._stopping.set()
        self._wake.set()
        task, self._task = self._task, None
        if task is not None:
            await _finish(task, self.stop_timeout)
        deadline = time.monotonic() + self.stop_timeout
        backoff = self.min_backoff
        while self._queue:
            if await self._write_batch():
                continue
            if time.monotonic() + backoff > deadline:
                log.error(
                    "store unavailable at shutdown: %d spend rows not written (%s)",
                    len(self._queue),
                    self.last_error,
                )
                return
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, self.max_backoff)

    async def flush(self) -> None:
        """Write everything queued now; raises the store's error if a batch fails."""
        while self._queue:
            if not await self._write_batch():
                raise RuntimeError(f"spend flush failed: {self.last_error}")

    async def _run(self) -> None:
        backoff = self.min_backoff
        while not self._stopping.is_set():
            if len(self._queue) < self.batch:
                await _wait(self._wake, self.interval)
            self._wake.clear()
            while self._queue and not self._stopping.is_set():
                if not await self._write_batch():
                    # Only a stop cuts the backoff short; new rows do not.
                    await _wait(self._stopping, backoff)
                    backoff = min(backoff * 2, self.max_backoff)
                    break
                backoff = self.min_backoff

    async def _write_batch(self) -> bool:
        """Write the oldest batch; on success drop it from the queue.  Returns success."""
        async with self._write_lock:
            rows = list(itertools.islice(self._queue, self.batch))
            if not rows:
                return True
            try:
                await self._store.insert_spend(rows)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.failures += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.warning(
                    "spend write of %d rows failed (%s); %d rows kept for retry",
                    len(rows),
                    self.last_error,
                    len(self._queue),
                )
                return False
            for _ in rows:
                self._queue.popleft()
            self.written += len(rows)
            self.last_error = None
            return True


async def _wait(event: asyncio.Event, seconds: float) -> None:
    """Wait for ``event`` at most ``seconds`` (in this task: no inner task to lose a cancel)."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await event.wait()


async def _finish(task: asyncio.Task[None], grace: float) -> None:
    """Let a stopping loop end by itself within ``grace`` seconds, else cancel it.

    Never swallows a cancellation of the caller.
    """
    done, _ = await asyncio.wait({task}, timeout=grace)
    if not done:
        task.cancel()
        await asyncio.wait({task}, timeout=1.0)
    if task.done() and not task.cancelled() and task.exception() is not None:
        log.error("spend writer loop failed: %r", task.exception())
