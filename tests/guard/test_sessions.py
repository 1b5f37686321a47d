"""Session breakers on both counter backends (memory and a real Redis): each breaker,
loop detection, cost spikes, and parallel requests of one session tripping exactly once."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tollhouse.counters import Counters, MemoryCounters
from tollhouse.counters.redis import RedisCounters
from tollhouse.errors import ConfigError, SessionKilled
from tollhouse.guard.presets import PRESETS
from tollhouse.guard.sessions import SessionLimits, Sessions

T0 = 1_800_000_000_000
STANDARD = PRESETS["standard"]


@pytest.fixture(params=["memory", "redis"])
async def pair(request: pytest.FixtureRequest) -> AsyncIterator[tuple[Counters, Counters]]:
    """One backend as two replicas see it (the same object for in-process memory)."""
    if request.param == "memory":
        m = MemoryCounters()
        yield m, m
        return
    url: str = request.getfixturevalue("redis_url")
    prefix = f"s{secrets.token_hex(4)}:"
    a, b = RedisCounters(url, prefix=prefix), RedisCounters(url, prefix=prefix)
    try:
        yield a, b
    finally:
        await a.close()
        await b.close()


@pytest.fixture
def counters(pair: tuple[Counters, Counters]) -> Counters:
    return pair[0]


class Events:
    def __init__(self) -> None:
        self.seen: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, event_type: str, data: dict[str, Any]) -> None:
        self.seen.append((event_type, data))


def sessions(counters: Counters, **limits: Any) -> Sessions:
    return Sessions(counters, SessionLimits.parse(limits))


async def test_request_breaker_trips_once_and_stays_dead(counters: Counters) -> None:
    s, ev = sessions(counters, max_requests=3), Events()
    for i in range(3):
        t = await s.admit("k", "sess", STANDARD, f"fp{i}", T0 + i, ev)
        assert t is not None
        await s.settle(t, 10, 5, T0 + i, ev)
    with pytest.raises(SessionKilled, match="requests"):
        await s.admit("k", "sess", STANDARD, "fp9", T0 + 10, ev)
    with pytest.raises(SessionKilled, match="stopped earlier"):
        await s.admit("k", "sess", STANDARD, "fpx", T0 + 11, ev)
    assert ev.seen == [("session.killed", {"sessionId": "sess", "reason": "requests"})]
    assert await s.admit("other-key", "sess", STANDARD, "fp", T0, ev) is not None


async def test_cost_and_token_breakers_trip_on_settle(counters: Counters) -> None:
    s, ev = sessions(counters, max_cost_usd=0.001, max_tokens=1000), Events()
    t = await s.admit("k", "a", STANDARD, None, T0, ev)
    assert t is not None
    await s.settle(t, 999, 10, T0, ev)
    t = await s.admit("k", "a", STANDARD, None, T0 + 1, ev)
    assert t is not None
    await s.settle(t, 1, 10, T0 + 1, ev)  # 1000 micro-dollars: the limit is reached
    assert ev.seen == [("session.killed", {"sessionId": "a", "reason": "cost"})]
    with pytest.raises(SessionKilled):
        await s.admit("k", "a", STANDARD, None, T0 + 2, ev)
    t = await s.admit("k", "b", STANDARD, None, T0, ev)
    assert t is not None
    await s.settle(t, 1, 1000, T0, ev)
    assert ev.seen[-1] == ("session.killed", {"sessionId": "b", "reason": "tokens"})
    with pytest.raises(SessionKilled):
        await s.admit("k", "b", STANDARD, None, T0 + 3, ev)


async def test_duration_breaker(counters: Counters) -> None:
    s, ev = sessions(counters, max_duration_s=2), Events()
    assert await s.admit("k", "d", STANDARD, None, T0, ev) is not None
    assert await s.admit("k", "d", STANDARD, None, T0 + 1900, ev) is not None
    with pytest.raises(SessionKilled, match="duration"):
        await s.admit("k", "d", STANDARD, None, T0 + 2100, ev)
    assert [e[1]["reason"] for e in ev.seen] == ["duration"]


async def test_loop_detector_counts_fingerprints_in_a_window(counters: Counters) -> None:
    s, ev = sessions(counters, loop={"window_s": 10, "max_repeats": 3}), Events()
    for i in range(3):
        assert await s.admit("k", "l", STANDARD, "same", T0 + i, ev) is not None
        assert await s.admit("k", "l", STANDARD, f"other{i}", T0 + i, ev) is not None
    with pytest.raises(SessionKilled, match="loop"):
        await s.admit("k", "l", STANDARD, "same", T0 + 5, ev)
    assert ev.seen == [("loop.detected", {"sessionId": "l", "reason": "loop"})]
    # repeats spread wider than the window are not a loop
    for i in range(6):
        assert await s.admit("k", "slow", STANDARD, "same", T0 + i * 11_000, ev) is not None
    # the relaxed preset does no loop detection (nor sessions at all in the pipeline)
    for i in range(6):
        assert await s.admit("k", "r", PRESETS["relaxed"], "same", T0 + i, ev) is not None


async def test_cost_spike(counters: Counters) -> None:
    s, ev = sessions(counters, loop={"spike_factor": 10, "spike_min_requests": 3}), Events()
    for i in range(3):
        t = await s.admit("k", "sp", STANDARD, f"f{i}", T0 + i, ev)
        assert t is not None
        await s.settle(t, 100, 10, T0 + i, ev)
    t = await s.admit("k", "sp", STANDARD, "f3", T0 + 3, ev)
    assert t is not None
    await s.settle(t, 900, 10, T0 + 3, ev)  # 9x the average: not a spike
    assert ev.seen == []
    t = await s.admit("k", "sp", STANDARD, "f4", T0 + 4, ev)
    assert t is not None
    await s.settle(t, 5000, 10, T0 + 4, ev)  # average 300 -> 16x
    assert ev.seen == [("loop.detected", {"sessionId": "sp", "reason": "cost_spike"})]
    with pytest.raises(SessionKilled):
        await s.admit("k", "sp", STANDARD, "f5", T0 + 5, ev)


async def test_strict_preset_halves_the_limits(counters: Counters) -> None:
    s, ev = sessions(counters, max_requests=4), Events()
    strict = PRESETS["strict"]
    assert s.limits_for(strict).max_requests == 2
    for i in range(2):
        assert await s.admit("k", "st", strict, f"f{i}", T0 + i, ev) is not None
    with pytest.raises(SessionKilled):
        await s.admit("k", "st", strict, "f9", T0 + 3, ev)


async def test_parallel_requests_trip_exactly_once(pair: tuple[Counters, Counters]) -> None:
    # Two replicas (two Sessions objects, two Redis connections) and one session.
    a, b = sessions(pair[0], max_requests=5), sessions(pair[1], max_requests=5)
    ev = Events()

    async def one(i: int) -> bool:
        try:
            await (a if i % 2 else b).admit("k", "par", STANDARD, f"fp{i}", T0 + i, ev)
            return True
        except SessionKilled:
            return False

    results = await asyncio.gather(*(one(i) for i in range(40)))
    assert sum(results) == 5
    assert ev.seen == [("session.killed", {"sessionId": "par", "reason": "requests"})]


def test_config_errors() -> None:
    for bad in (
        {"max_requests": 0},
        {"max_cost_usd": "1"},
        {"bogus": 1},
        {"loop": {"window_s": 0}},
        {"loop": {"spike_factor": 1}},
        {"loop": {"nope": 1}},
        "x",
    ):
        with pytest.raises(ConfigError):
            SessionLimits.parse(bad)
    lim = SessionLimits.parse({"max_cost_usd": 1.5, "max_duration_s": 0.5})
    assert lim.max_cost_micros == 1_500_000 and lim.max_duration_ms == 500
