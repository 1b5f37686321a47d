import asyncio

import orjson
import pytest
from redis.asyncio import Redis
from tests.support.receiver import Receiver

from tollhouse.config import Secret
from tollhouse.events.alerts import MemoryOnceGate, OnceTracker, RedisOnceGate
from tollhouse.events.config import WebhookEndpoint
from tollhouse.events.dispatcher import WebhookDispatcher
from tollhouse.events.types import Event

LIMIT = 5_000_000  # $5.00


async def test_alert_at_80_and_exceeded_at_100_each_once() -> None:
    t = OnceTracker()
    assert await t.observe("key:k1", "2026-02-18", 3_999_999, LIMIT) == []
    (alert,) = await t.observe("key:k1", "2026-02-18", 4_120_000, LIMIT, key_name="my-key")
    assert alert.type == "budget.alert" and alert.key_name == "my-key"
    assert alert.data == {
        "scope": "key:k1",
        "window": "2026-02-18",
        "currentSpend": 4.12,
        "limit": 5.0,
        "dailyLimit": 5.0,
        "percentUsed": 82.4,
        "period": "daily",
    }
    assert await t.observe("key:k1", "2026-02-18", 4_500_000, LIMIT) == []
    (exceeded,) = await t.observe("key:k1", "2026-02-18", LIMIT, LIMIT)
    assert exceeded.type == "budget.exceeded"
    assert await t.observe("key:k1", "2026-02-18", LIMIT * 2, LIMIT) == []
    # a new window and another scope start over
    assert [e.type for e in await t.observe("key:k1", "2026-02-19", 4_000_000, LIMIT)] == [
        "budget.alert"
    ]
    assert [e.type for e in await t.observe("team:t", "2026-02-18", 6_000_000, LIMIT)] == [
        "budget.alert",
        "budget.exceeded",
    ]


async def test_exact_threshold_in_integers_and_non_daily_periods() -> None:
    t = OnceTracker()
    assert await t.observe("s", "w", 799_999, 1_000_000) == []
    (ev,) = await t.observe("s", "2026-W08", 800_000, 1_000_000, period="weekly")
    assert "dailyLimit" not in ev.data and ev.data["period"] == "weekly"
    assert await t.observe("s", "w", 1, 0) == []  # no limit, no alert


async def test_fires_once_under_concurrency_in_memory() -> None:
    seen: list[Event] = []
    t = OnceTracker(emit=seen.append)
    results = await asyncio.gather(
        *(t.observe("key:k", "d", 4_000_000 + i * 10_000, LIMIT) for i in range(200))
    )
    fired = [e.type for batch in results for e in batch]
    assert sorted(fired) == ["budget.alert", "budget.exceeded"]
    assert [e.type for e in seen] == fired


async def test_memory_gate_is_bounded() -> None:
    gate = MemoryOnceGate(max_keys=3)
    assert [await gate.first(k) for k in "abcd"] == [True] * 4
    assert await gate.first("d") is False
    assert await gate.first("a") is True  # the oldest key was evicted


async def test_redis_gate_fires_once_across_replicas(redis_url: str) -> None:
    replicas = [Redis.from_url(redis_url) for _ in range(3)]
    try:
        await replicas[0].flushdb()
        trackers = [OnceTracker.redis(r, ttl_s=60) for r in replicas]
        results = await asyncio.gather(
            *(trackers[i % 3].observe("key:k", "d1", 4_500_000, LIMIT) for i in range(60))
        )
        assert sum(len(batch) for batch in results) == 1
        ttl = await replicas[1].ttl("tollhouse:once:budget.alert|key:k|d1")
        assert 0 < ttl <= 60
        assert await RedisOnceGate(replicas[2]).first("budget.alert|key:k|d1") is False
        assert await RedisOnceGate(replicas[2]).first("budget.alert|key:k|d2") is True
    finally:
        for r in replicas:
            await r.aclose()


async def test_alerts_reach_a_receiver_once() -> None:
    async with Receiver() as rx:
        d = WebhookDispatcher(
            [WebhookEndpoint(url=rx.url, secret=Secret("k"), events=frozenset({"budget.alert"}))],
            allow_private=["127.0.0.1"],
        )
        await d.start()
        t = OnceTracker(emit=d.emit)
        await asyncio.gather(*(t.observe("key:k", "d", 4_200_000, LIMIT) for _ in range(50)))
        await t.observe("key:k", "d", 5_100_000, LIMIT)  # exceeded: filtered out
        await d.stop(2.0)
    assert [orjson.loads(r.body)["event"] for r in rx.requests] == ["budget.alert"]


def test_alert_ratio_must_be_a_fraction() -> None:
    with pytest.raises(ValueError, match="alert_bp"):
        OnceTracker(alert_bp=10_000)
