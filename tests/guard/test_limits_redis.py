"""The limits stage over a real redis-server: fail_mode, recovery, replica-wide alerts."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from tests.guard.test_limits import USD, ask, key
from tests.support.redis import RedisServer

from tollhouse.counters.memory import MemoryCounters
from tollhouse.counters.redis import RedisCounters
from tollhouse.errors import Unavailable
from tollhouse.events.alerts import RedisOnceGate
from tollhouse.events.types import Event
from tollhouse.guard.limits import Limiter
from tollhouse.guard.limits_config import LimitsConfig


async def wait_for(cond: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.05)


async def test_fail_closed_then_recovers_without_restart(redis_server: RedisServer) -> None:
    lim = Limiter(RedisCounters(redis_server.url, timeout=0.5), fail_mode="closed")
    await lim.start()
    try:
        k = key(limit_micros=USD)
        a = await lim.admit(ask(k))
        await lim.settle(a, cost_micros=10, tokens=1)
        assert lim.health() == {
            "backend": "redis",
            "ok": True,
            "fail_mode": "closed",
            "mode": "normal",
        }
        redis_server.stop()
        with pytest.raises(Unavailable) as err:
            await lim.admit(ask(k))
        assert err.value.status == 503
        assert lim.health()["mode"] == "fail_closed"
        # A request with no ceiling does not need the counters at all.
        assert (await lim.admit(ask(key()))).reservation is None
        redis_server.start()
        await wait_for(lambda: not lim.degraded)
        b = await lim.admit(ask(k))
        assert b.backend is lim.counters
        await lim.settle(b, cost_micros=10, tokens=1)
    finally:
        await lim.stop()


async def test_fail_open_admits_locally_and_replays_settles(redis_server: RedisServer) -> None:
    counters = RedisCounters(redis_server.url, timeout=0.5)
    lim = Limiter(counters, fail_mode="open", config=LimitsConfig(max_wait_ms=0))
    await lim.start()
    try:
        k = key(limit_micros=USD, rpm=2)
        before = await lim.admit(ask(k))
        redis_server.stop()
        during = await lim.admit(ask(k))
        assert isinstance(during.backend, MemoryCounters)
        assert lim.stats["fail_open"] == 1 and lim.health()["mode"] == "fail_open"
        await lim.settle(before, cost_micros=250_000, tokens=5)  # Redis down: queued
        await lim.settle(during, cost_micros=1, tokens=1)  # settles where it was made
        redis_server.start()  # an empty Redis (no persistence in tests)
        await wait_for(lambda: not lim.degraded and not lim._pending)
        charge = before.reservation.charges[0]  # type: ignore[union-attr]
        (level,) = await counters.levels([charge], now_ms=int(time.time() * 1000))
        assert level.used == 250_000  # the queued settle reached Redis after recovery
    finally:
        await lim.stop()


async def test_alerts_fire_once_across_replicas(redis_url: str) -> None:
    events: list[Event] = []
    replicas = []
    for _ in range(3):
        counters = RedisCounters(redis_url, prefix=f"al{id(events)}:")
        gate = RedisOnceGate(counters.client, prefix=f"al{id(events)}:once:")
        replicas.append(Limiter(counters, emit=events.append, gate=gate))
    k = key(hash=f"rep{id(events)}", limit_micros=USD, limit_reset="daily")

    async def spend(lim: Limiter) -> None:
        a = await lim.admit(ask(k, worst=100_000))
        await lim.settle(a, cost_micros=100_000, tokens=1)

    await asyncio.gather(*(spend(replicas[i % 3]) for i in range(9)))  # 90 % in total
    assert [e.type for e in events] == ["budget.alert"]
    for lim in replicas:
        await lim.stop()
