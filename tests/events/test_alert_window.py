"""Window maths of the alert evaluator: the SQL over real spend rows (SQLite and
PostgreSQL) against a plain Python reference."""

from __future__ import annotations

import math
import random
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tollhouse.events.alert_window import (
    WindowStats,
    breached,
    budget_use,
    metric_value,
    nearest_rank,
    quantile,
    threshold_of,
    window_stats,
)
from tollhouse.store import SqlStore, open_store
from tollhouse.store.base import KeyRecord, SpendRow

NOW = 1_800_000_000.0


@pytest.fixture(params=["sqlite", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[SqlStore]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/w.db"
    else:
        url = request.getfixturevalue("postgres_url")
    s = open_store(url)
    assert isinstance(s, SqlStore)
    await s.open()
    try:
        yield s
    finally:
        await s.close()


_n = 0


def row(at: float, **kw: object) -> SpendRow:
    global _n
    _n += 1
    return SpendRow(
        id=f"gen-{_n}-{random.random()}",
        key_hash="k",
        model="m",
        provider="p",
        upstream_model="m",
        created_at=at,
        **kw,  # type: ignore[arg-type]
    )


def test_nearest_rank() -> None:
    assert [nearest_rank(n) for n in (1, 2, 19, 20, 21, 100, 101)] == [1, 2, 19, 19, 20, 95, 96]
    assert nearest_rank(10, 0.5) == 5 and nearest_rank(10, 1.0) == 10
    assert quantile([5.0, 1.0, 3.0]) == 5.0
    assert quantile([float(v) for v in range(1, 101)]) == 95.0
    with pytest.raises(ValueError):
        nearest_rank(0)


def test_metric_values_thresholds_and_no_data() -> None:
    stats = WindowStats(
        requests=10, errors=3, cancelled=2, cost_micros=1_500_000, tokens=70, latency_ms=250.0
    )
    assert metric_value("requests", stats) == 10.0
    assert metric_value("error_rate", stats) == 3 / 8  # abandoned requests are left out
    assert metric_value("cost", stats) == 1.5
    assert metric_value("tokens", stats) == 70.0
    assert metric_value("latency", stats) == 250.0
    empty = WindowStats()
    assert metric_value("error_rate", empty) is None and metric_value("latency", empty) is None
    assert metric_value("requests", empty) == 0.0
    assert threshold_of({"metric": "latency", "threshold_ms": 3000}) == 3000.0
    assert threshold_of({"metric": "cost", "threshold": 2.5}) == 2.5
    assert breached(0.5, 0.5) and not breached(0.49, 0.5) and not breached(None, 0.0)
    with pytest.raises(ValueError):
        metric_value("budget", stats)


async def test_window_stats_match_the_reference(store: SqlStore) -> None:
    rng = random.Random(7)
    rows = []
    for _ in range(300):
        at = NOW - rng.uniform(0, 120)
        streamed = rng.random() < 0.3
        rows.append(
            row(
                at,
                status=rng.choice([200, 200, 200, 201, 429, 500, 502, 499]),
                cancelled=rng.random() < 0.05,
                latency_ms=rng.uniform(10, 5000),
                ttft_ms=rng.uniform(1, 300) if streamed else None,
                streamed=streamed,
                cost_micros=rng.randint(0, 5000),
                prompt_tokens=rng.randint(0, 500),
                completion_tokens=rng.randint(0, 500),
            )
        )
    rows.append(row(NOW, status=500))  # at the end of the window: outside
    rows.append(row(NOW - 120.5, status=500))  # before it: outside
    await store.insert_spend(rows)
    for window in (10, 30, 60, 120):
        since = NOW - window
        inside = [r for r in rows if since <= r.created_at < NOW]
        answered = [r for r in inside if not r.cancelled]
        latencies = [
            r.ttft_ms if r.streamed and r.ttft_ms is not None else r.latency_ms for r in answered
        ]
        got = await window_stats(store, "default", since, NOW)
        assert got.requests == len(inside)
        assert got.cancelled == len(inside) - len(answered)
        assert got.errors == sum(1 for r in answered if not 200 <= r.status < 300)
        assert got.cost_micros == sum(r.cost_micros for r in inside)
        assert got.tokens == sum(r.prompt_tokens + r.completion_tokens for r in inside)
        assert got.latency_ms is not None
        assert math.isclose(got.latency_ms, quantile(latencies))


async def test_an_empty_window_has_no_latency_or_error_rate(store: SqlStore) -> None:
    await store.insert_spend([row(NOW - 100, status=500, latency_ms=9000.0)])
    got = await window_stats(store, "default", NOW - 50, NOW)
    assert got == WindowStats()
    older = await window_stats(store, "default", NOW - 200, NOW)
    assert older.requests == 1 and older.error_rate == 1.0
    await store.insert_spend([row(NOW - 10, status=499, cancelled=True, latency_ms=1.0)])
    recent = await window_stats(store, "default", NOW - 20, NOW)
    assert recent.requests == 1 and recent.error_rate is None and recent.latency_ms is None


async def test_budget_use_is_the_most_used_key_in_its_window(store: SqlStore) -> None:
    assert await budget_use(store, "default", NOW) is None
    now = time.time()

    def key(h: str, limit: int | None, reset: str | None) -> KeyRecord:
        return KeyRecord(
            hash=h,
            name=f"name-{h}",
            label=h,
            created_at=now,
            updated_at=now,
            limit_micros=limit,
            limit_reset=reset,  # type: ignore[arg-type]
        )

    for k in (key("a", 10_000_000, "daily"), key("b", 4_000_000, None), key("c", None, None)):
        await store.create_key(k)
    two_days_ago = now - 2 * 86_400
    await store.insert_spend(
        [
            SpendRow(f"a1-{now}", "a", "m", "p", "m", now - 1, cost_micros=6_000_000),
            SpendRow(f"a2-{now}", "a", "m", "p", "m", two_days_ago, cost_micros=9_000_000),
            SpendRow(f"b1-{now}", "b", "m", "p", "m", two_days_ago, cost_micros=2_000_000),
            SpendRow(f"c1-{now}", "c", "m", "p", "m", now - 1, cost_micros=99_000_000),
        ]
    )
    use = await budget_use(store, "default", now)
    assert use is not None
    # a: 6 of 10 today (yesterday's 9 are another window); b: 2 of 4 all time; c: no limit
    assert (use.key_name, use.fraction, use.period) == ("name-a", 0.6, "daily")
    assert (use.spent_micros, use.limit_micros) == (6_000_000, 10_000_000)
