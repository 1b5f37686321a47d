"""The limiter reports refusals, budget levels and the counters' health to ``METRICS``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from tests.support.prom import Samples, parse, sample

from tollhouse.counters import MemoryCounters
from tollhouse.errors import BudgetExceeded, RateLimited
from tollhouse.guard.guardrails import RequestScope
from tollhouse.guard.limits import Ask, Limiter
from tollhouse.guard.limits_config import LimitsConfig, ScopeLimits
from tollhouse.metrics import METRICS, MetricsSettings
from tollhouse.store.base import KeyRecord

USD = 1_000_000


@pytest.fixture(autouse=True)
def fresh_metrics() -> Iterator[None]:
    saved = METRICS.settings
    METRICS.reset()
    yield
    METRICS.reset()
    METRICS.settings = saved


def _key(**kw: Any) -> KeyRecord:
    base: dict[str, Any] = {"hash": "f00dfeed", "name": "billing-app", "label": "gk_ab...cd"}
    return KeyRecord(created_at=0.0, updated_at=0.0, **{**base, **kw})


def _ask(k: KeyRecord, team: str | None = None) -> Ask:
    scope = RequestScope(key_hash=k.hash, team=team)
    return Ask(scope, k, worst_micros=300_000, prompt_tokens=100, max_output_tokens=400)


def _scrape() -> Samples:
    return parse(METRICS.render().decode())


async def test_rate_limit_refusals_by_scope_without_key_names() -> None:
    lim = Limiter(MemoryCounters(), config=LimitsConfig(max_wait_ms=0))
    k = _key(rpm=1)
    await lim.admit(_ask(k))
    for _ in range(2):
        with pytest.raises(RateLimited):
            await lim.admit(_ask(k))
    s = _scrape()
    assert (
        sample(s, "tollhouse_rate_limit_rejections_total", scope="key", limit="rpm", name="") == 2
    )
    assert not any("f00dfeed" in str(key) or "billing-app" in str(key) for key in s)


async def test_budget_refusals_and_remaining_per_team() -> None:
    config = LimitsConfig(max_wait_ms=0, teams={"research": ScopeLimits(budget_micros=USD)})
    lim = Limiter(MemoryCounters(), config=config)
    k = _key(team="research")
    admitted = [await lim.admit(_ask(k, "research")) for _ in range(3)]
    with pytest.raises(BudgetExceeded):
        await lim.admit(_ask(k, "research"))
    for a in admitted:
        await lim.settle(a, cost_micros=250_000, tokens=10)
    s = _scrape()
    labels = {"scope": "team", "limit": "cost_budget", "name": "research"}
    assert sample(s, "tollhouse_rate_limit_rejections_total", **labels) == 1
    assert sample(s, "tollhouse_budget_remaining_usd", scope="team", name="research") == 0.25


async def test_key_budget_remaining_only_with_key_labels() -> None:
    lim = Limiter(MemoryCounters(), config=LimitsConfig(max_wait_ms=0))
    k = _key(limit_micros=2 * USD)
    await lim.settle(await lim.admit(_ask(k)), cost_micros=500_000, tokens=10)
    assert (
        "tollhouse_budget_remaining_usd",
        frozenset({("scope", "key"), ("name", "")}),
    ) not in _scrape()
    METRICS.settings = MetricsSettings(key_labels=True)
    await lim.settle(await lim.admit(_ask(k)), cost_micros=500_000, tokens=10)
    s = _scrape()
    assert sample(s, "tollhouse_budget_remaining_usd", scope="key", name="billing-app") == 1.0
