"""SpendWriter: batching off the request path, retries, bounded queue, flush on stop."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import pytest

from tollhouse.errors import Unavailable
from tollhouse.store import SpendRow, SqlStore
from tollhouse.store.writer import SpendWriter


def row(i: int, cost: int = 1) -> SpendRow:
    return SpendRow(
        id=f"gen-{i}",
        key_hash="a" * 64,
        model="m",
        provider="p",
        upstream_model="m",
        created_at=time.time(),
        cost_micros=cost,
    )


class Flaky:
    """A real store whose ``insert_spend`` fails while ``down`` is set (in-process fake)."""

    def __init__(self, store: SqlStore) -> None:
        self.store = store
        self.down = False
        self.calls: list[int] = []

    async def insert_spend(self, rows: list[SpendRow]) -> None:
        self.calls.append(len(rows))
        if self.down:
            raise Unavailable("store unavailable (test)")
        await self.store.insert_spend(rows)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


async def wait_until(cond: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not await cond():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def test_rows_reach_the_store_within_the_interval(store: SqlStore) -> None:
    writer = SpendWriter(store, interval=0.05)
    await writer.start()
    try:
        for i in range(10):
            writer.submit(row(i, cost=10))
        assert writer.pending == 10

        async def written() -> bool:
            return await store.key_spend_since("a" * 64, 0) == 100

        await wait_until(written, timeout=2)
        assert writer.pending == 0 and writer.written == 10
    finally:
        await writer.stop()


async def test_a_full_batch_is_written_without_waiting_for_the_interval(store: SqlStore) -> None:
    flaky = Flaky(store)
    writer = SpendWriter(flaky, batch=50, interval=30)  # type: ignore[arg-type]
    await writer.start()
    try:
        await asyncio.sleep(0)
        for i in range(120):
            writer.submit(row(i))

        async def two_batches() -> bool:
            return writer.written >= 100

        await wait_until(two_batches, timeout=5)
        assert flaky.calls[:2] == [50, 50]
    finally:
        await writer.stop()
    assert await store.key_spend_since("a" * 64, 0) == 120
    assert writer.pending == 0


async def test_a_failing_store_is_retried_and_nothing_is_lost(store: SqlStore) -> None:
    flaky = Flaky(store)
    flaky.down = True
    writer = SpendWriter(flaky, interval=0.02, min_backoff=0.02, max_backoff=0.05)  # type: ignore[arg-type]
    await writer.start()
    try:
        for i in range(30):
            writer.submit(row(i))

        async def failed_a_few_times() -> bool:
            return writer.failures >= 3

        await wait_until(failed_a_few_times)
        assert writer.pending == 30 and writer.written == 0
        assert writer.last_error is not None and "Unavailable" in writer.last_error
        flaky.down = False

        async def all_written() -> bool:
            return writer.pending == 0

        await wait_until(all_written)
    finally:
        await writer.stop()
    assert await store.key_spend_since("a" * 64, 0) == 30
    assert writer.last_error is None
    stats = writer.stats()
    assert stats["written"] == 30 and stats["failures"] >= 3 and stats["queue_depth"] == 0


async def test_overflow_is_counted_and_logged(
    store: SqlStore, caplog: pytest.LogCaptureFixture
) -> None:
    writer = SpendWriter(store, max_queue=5)  # not started: nothing drains
    with caplog.at_level(logging.ERROR, logger="tollhouse.store.writer"):
        for i in range(8):
            writer.submit(row(i))
    assert writer.pending == 5 and writer.dropped == 3
    assert writer.stats() == {"written": 0, "dropped": 3, "failures": 0, "queue_depth": 5}
    assert any("dropped 1 spend rows" in r.getMessage() for r in caplog.records)
    await writer.stop()
    assert await store.key_spend_since("a" * 64, 0) == 5


async def test_stop_flushes_everything(store: SqlStore) -> None:
    writer = SpendWriter(store, batch=7, interval=60)
    await writer.start()
    for i in range(100):
        writer.submit(row(i))
    await writer.stop()
    assert writer.pending == 0
    assert await store.key_spend_since("a" * 64, 0) == 100


async def test_stop_gives_up_on_a_dead_store_and_says_so(
    store: SqlStore, caplog: pytest.LogCaptureFixture
) -> None:
    flaky = Flaky(store)
    flaky.down = True
    writer = SpendWriter(flaky, min_backoff=0.01, stop_timeout=0.2)  # type: ignore[arg-type]
    writer.submit(row(1))
    with caplog.at_level(logging.ERROR, logger="tollhouse.store.writer"):
        started = time.monotonic()
        await writer.stop()
    assert time.monotonic() - started < 2
    assert writer.pending == 1
    assert any("1 spend rows not written" in r.getMessage() for r in caplog.records)


async def test_flush_raises_when_the_store_fails(store: SqlStore) -> None:
    flaky = Flaky(store)
    writer = SpendWriter(flaky)  # type: ignore[arg-type]
    writer.submit(row(1))
    flaky.down = True
    with pytest.raises(RuntimeError, match="Unavailable"):
        await writer.flush()
    flaky.down = False
    await writer.flush()
    assert writer.pending == 0


def test_bad_settings_are_rejected(tmp_path: object) -> None:
    with pytest.raises(ValueError):
        SpendWriter(None, batch=0)  # type: ignore[arg-type]


class CancelToError:
    """A store whose insert turns a cancellation into an error, as a driver may when the
    connection is torn down mid-query (in-process fake)."""

    def __init__(self, store: SqlStore) -> None:
        self.store = store
        self.started = asyncio.Event()

    async def insert_spend(self, rows: list[SpendRow]) -> None:
        self.started.set()
        try:
            await asyncio.sleep(0.2)
        except asyncio.CancelledError:
            raise Unavailable("connection closed while cancelling") from None
        await self.store.insert_spend(rows)


async def test_stop_returns_even_if_the_store_swallows_the_cancel(store: SqlStore) -> None:
    fake = CancelToError(store)
    writer = SpendWriter(fake, interval=0.01, stop_timeout=2)  # type: ignore[arg-type]
    await writer.start()
    writer.submit(row(1))
    await asyncio.wait_for(fake.started.wait(), 5)
    started = time.monotonic()
    await asyncio.wait_for(writer.stop(), timeout=10)
    assert time.monotonic() - started < 3
    assert writer.pending == 0
    assert await store.key_spend_since("a" * 64, 0) == 1


async def test_stop_never_hangs_when_it_races_the_interval_timer(store: SqlStore) -> None:
    for i in range(100):
        writer = SpendWriter(store, interval=0.001)
        await writer.start()
        await asyncio.sleep(0.001 * (i % 4))
        await asyncio.wait_for(writer.stop(), timeout=5)
