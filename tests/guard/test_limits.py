"""The budgets-and-limits stage in process (memory counters, an injectable clock)."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime
from typing import Any

import pytest

from tollhouse.counters import MemoryCounters
from tollhouse.errors import BudgetExceeded, ConfigError, ModelNotAllowed, RateLimited
from tollhouse.events.types import Event
from tollhouse.guard import guardrails
from tollhouse.guard.guardrails import Guardrail, RequestScope
from tollhouse.guard.limits import Admission, Ask, Limiter
from tollhouse.guard.limits_config import LimitsConfig, ScopeLimits, parse_limits
from tollhouse.store.base import KeyRecord

USD = 1_000_000


class Clock:
    def __init__(self, iso: str = "2026-11-23T10:00:00") -> None:
        self.t = datetime.fromisoformat(iso).replace(tzinfo=UTC).timestamp()

    def __call__(self) -> float:
        return self.t

    def set(self, iso: str) -> None:
        self.t = datetime.fromisoformat(iso).replace(tzinfo=UTC).timestamp()


def key(**kw: Any) -> KeyRecord:
    base: dict[str, Any] = {
        "hash": "h1",
        "name": "ci",
        "label": "gk_ab...cd",
        "created_at": 0.0,
        "updated_at": 0.0,
    }
    base.update(kw)
    return KeyRecord(**base)


def ask(k: KeyRecord | None, worst: int = 300_000, **scope: Any) -> Ask:
    scope.setdefault("team", k.team if k else None)
    s = RequestScope(key_hash=k.hash if k else None, **scope)
    return Ask(s, k, worst_micros=worst, prompt_tokens=100, max_output_tokens=400)


def limiter(clock: Clock, events: list[Event] | None = None, **kw: Any) -> Limiter:
    cfg = kw.pop("config", LimitsConfig(max_wait_ms=0))
    return Limiter(
        MemoryCounters(),
        config=cfg,
        clock=clock,
        emit=events.append if events is not None else None,
        **kw,
    )


async def test_key_budget_reserves_worst_case_and_settles_true_cost() -> None:
    clock = Clock()
    lim = limiter(clock)
    k = key(limit_micros=USD, limit_reset="daily")
    admitted = [await lim.admit(ask(k)) for _ in range(3)]
    with pytest.raises(BudgetExceeded) as err:
        await lim.admit(ask(k))  # 3 x 0.30 held: 0.30 more does not fit
    assert err.value.status == 429 and err.value.code == "budget_exceeded"
    assert err.value.headers["Retry-After"] == str(14 * 3600)  # until midnight UTC
    for a in admitted:
        await lim.settle(a, cost_micros=100_000, tokens=50)
    more = [await lim.admit(ask(k)) for _ in range(2)]  # used 0.30, 2 x 0.30 held
    for a in more:
        await lim.release(a)
    levels = await lim.counters.levels([admitted[0].reservation.charges[0]], now_ms=0)  # type: ignore[union-attr]
    assert (levels[0].used, levels[0].held) == (300_000, 0)


async def test_waits_for_in_flight_reservations_instead_of_refusing() -> None:
    clock = Clock()
    lim = limiter(clock, config=LimitsConfig(max_wait_ms=5_000))
    k = key(limit_micros=USD)
    first = [await lim.admit(ask(k)) for _ in range(3)]

    async def finish_later() -> None:
        await asyncio.sleep(0.05)
        for a in first:
            await lim.settle(a, cost_micros=200_000, tokens=10)

    task = asyncio.create_task(finish_later())
    waited = await lim.admit(ask(k))  # real spend will be 0.60: 0.30 more fits
    await task
    assert waited.reservation is not None and lim.stats["waits"] > 0
    # Real spend 0.60 + held 0.30: the next worst case fits only if the held one
    # settles low, and it does not: refuse once the wait shows it cannot fit.
    await lim.settle(waited, cost_micros=300_000, tokens=10)
    with pytest.raises(BudgetExceeded):
        await lim.admit(ask(k))


async def test_window_reset_with_injected_clock() -> None:
    clock = Clock("2026-11-29T23:00:00")  # a Sunday
    lim = limiter(clock)
    k = key(limit_micros=USD, limit_reset="weekly")
    a = await lim.admit(ask(k, worst=USD))
    await lim.settle(a, cost_micros=USD, tokens=0)
    with pytest.raises(BudgetExceeded) as err:
        await lim.admit(ask(k, worst=1))
    assert err.value.headers["Retry-After"] == "3600"
    clock.set("2026-11-30T00:00:00")  # Monday: a new week
    b = await lim.admit(ask(k, worst=USD))
    assert b.reservation is not None


async def test_lifetime_budget_has_no_retry_after() -> None:
    lim = limiter(Clock())
    k = key(limit_micros=100)
    with pytest.raises(BudgetExceeded) as err:
        await lim.admit(ask(k, worst=101))
    assert "Retry-After" not in err.value.headers
    assert "lifetime cost budget of key 'ci' exhausted" in err.value.message


async def test_alerts_fire_once_per_window() -> None:
    clock = Clock()
    events: list[Event] = []
    lim = limiter(clock, events)
    k = key(limit_micros=USD, limit_reset="daily", team="core")
    for cost in (500_000, 350_000, 100_000):  # 50 %, 85 %, 95 %
        a = await lim.admit(ask(k, worst=100_000))
        await lim.settle(a, cost_micros=cost, tokens=1)
    assert [e.type for e in events] == ["budget.alert"]
    assert events[0].data["percentUsed"] == 85.0
    assert (events[0].team_id, events[0].key_name) == ("core", "ci")
    # The next worst case (0.10) no longer fits 0.95: refused, and that is "exceeded".
    with pytest.raises(BudgetExceeded):
        await lim.admit(ask(k, worst=100_000))
    with pytest.raises(BudgetExceeded):
        await lim.admit(ask(k, worst=100_000))
    assert [e.type for e in events] == ["budget.alert", "budget.exceeded"]
    assert events[1].data["refused"] is True and events[1].data["currentSpend"] == 0.95
    clock.set("2026-11-24T10:00:00")
    a = await lim.admit(ask(k, worst=100_000))
    await lim.settle(a, cost_micros=USD, tokens=1)  # straight to 100 %: both, alert first
    assert [e.type for e in events[2:]] == ["budget.alert", "budget.exceeded"]
    assert events[3].data["window"] == "2026-11-24"


async def test_rpm_and_tpm_with_headers() -> None:
    clock = Clock()
    lim = limiter(clock)
    k = key(rpm=3, tpm=2_000)
    a = await lim.admit(ask(k))
    hdrs = dict(a.headers)
    assert hdrs[b"x-ratelimit-limit-requests"] == b"3"
    assert hdrs[b"x-ratelimit-remaining-requests"] == b"2"
    assert hdrs[b"x-ratelimit-reset-requests"] == b"1m0s"
    assert hdrs[b"x-ratelimit-remaining-tokens"] == b"1500"  # 100 prompt + 400 max out
    await lim.settle(a, cost_micros=0, tokens=120)
    b = await lim.admit(ask(k))
    assert dict(b.headers)[b"x-ratelimit-remaining-tokens"] == b"1380"
    await lim.admit(ask(k))
    clock.t += 20
    with pytest.raises(RateLimited) as err:
        await lim.admit(ask(k))
    assert err.value.code == "rate_limited"
    assert err.value.headers["Retry-After"] == "40"
    assert err.value.headers["x-ratelimit-remaining-requests"] == "0"
    clock.t += 40
    assert (await lim.admit(ask(k))).reservation is not None


async def test_request_larger_than_tpm_is_refused_without_retry() -> None:
    lim = limiter(Clock())
    with pytest.raises(RateLimited) as err:
        await lim.admit(ask(key(tpm=100)))
    assert "Retry-After" not in err.value.headers
    assert "alone exceeds" in err.value.message


async def test_team_agent_feature_scopes_all_or_nothing() -> None:
    cfg = LimitsConfig(
        max_wait_ms=0,
        teams={"core": ScopeLimits(budget_micros=USD, period="monthly")},
        agents={"bot": ScopeLimits(rpm=2)},
        features={"sum": ScopeLimits(budget_requests=5, period="daily")},
    )
    lim = limiter(Clock(), config=cfg)
    k = key(team="core", limit_micros=10 * USD)
    a = await lim.admit(ask(k, agent="bot", feature="sum"))
    assert a.reservation is not None
    labels = sorted(b.label + ":" + b.metric for b, _ in a.budgets)
    assert labels == ["feature:sum:requests", "key:h1:cost", "team:core:cost"]
    await lim.admit(ask(k, agent="bot", feature="sum"))
    with pytest.raises(RateLimited):  # the agent's RPM
        await lim.admit(ask(k, agent="bot", feature="sum"))
    # Refused reservations charged nothing anywhere: the key budget shows only two holds.
    charge = a.reservation.charges[0]
    (level,) = await lim.counters.levels([charge], now_ms=0)
    assert level.held == 600_000
    other = await lim.admit(ask(k, worst=USD - 600_000))  # no agent: team budget only
    with pytest.raises(BudgetExceeded) as err:
        await lim.admit(ask(k, worst=1))
    assert "team:core" in err.value.message
    await lim.release(other)


def rail(**kw: Any) -> Guardrail:
    g = guardrails.create({"name": kw.pop("name", "gr"), **kw})
    return g


async def test_guardrail_actions_block_throttle_route() -> None:
    clock = Clock()
    k = key(hash="hk")
    block = dataclasses.replace(
        rail(name="ds-cost", limit_usd=0.5, reset_interval="daily", team="ds"),
    )
    throttle = rail(
        name="bot-req", limit_requests=1, reset_interval="daily", action="throttle", agent_id="bot"
    )
    route = rail(
        name="gpt4-tokens",
        limit_tokens=600,
        reset_interval="daily",
        action="route",
        route_target="gpt-4o-mini",
        models=["gpt-4", "gpt-4-*"],
        team="ds",
    )
    rails = [block, throttle, route]
    lim = limiter(clock, guardrails=lambda: rails)

    a = await lim.admit(ask(k, worst=400_000, team="ds", model="gpt-4"))
    assert a.reservation is not None and len(a.budgets) == 2
    # gpt-4 tokens: 500 held of 600, the next 500 breaches -> reroute
    r = await lim.admit(ask(k, worst=1, team="ds", model="gpt-4"))
    assert (r.reroute, r.guardrail_id, r.reservation) == ("gpt-4o-mini", route.id, None)
    # The rerouted model is outside the route guardrail's models; the cost one still counts.
    b = await lim.admit(ask(k, worst=100_000, team="ds", model="gpt-4o-mini"))
    assert b.reservation is not None
    with pytest.raises(BudgetExceeded) as err:
        await lim.admit(ask(k, worst=1, team="ds", model="gpt-4o-mini"))
    assert "guardrail 'ds-cost'" in err.value.message
    # A request already rerouted by a guardrail is blocked if it breaches it again.
    again = dataclasses.replace(
        ask(k, worst=1, team="ds", model="gpt-4"), routed_by=frozenset({route.id})
    )
    with pytest.raises(BudgetExceeded):
        await lim.admit(again)

    t1 = await lim.admit(ask(k, agent="bot"))
    assert t1.reservation is not None
    with pytest.raises(RateLimited) as terr:
        await lim.admit(ask(k, agent="bot"))
    assert terr.value.code == "rate_limited" and "Retry-After" in terr.value.headers


async def test_guardrail_allow_lists_and_assignments() -> None:
    g = rail(allowed_models=["gpt-4o*"], ignored_providers=["azure"])
    g = dataclasses.replace(g, key_hashes=frozenset({"hk"}))
    lim = limiter(Clock(), guardrails=lambda: [g])
    k = key(hash="hk")
    assert (await lim.admit(ask(k, model="gpt-4o-mini", provider="openai"))).reservation is None
    with pytest.raises(ModelNotAllowed, match="does not allow model 'claude-3'"):
        await lim.admit(ask(k, model="claude-3"))
    with pytest.raises(ModelNotAllowed, match="provider 'azure'"):
        await lim.admit(ask(k, model="gpt-4o", provider="azure"))
    # Not assigned and no filter: the guardrail does not apply.
    other = key(hash="other")
    assert (await lim.admit(ask(other, model="claude-3"))).reservation is None


async def test_no_limits_means_no_counter_work() -> None:
    lim = limiter(Clock())
    a = await lim.admit(ask(key()))
    assert a == Admission(ask=a.ask)
    await lim.settle(a, cost_micros=5, tokens=5)
    assert isinstance(lim.counters, MemoryCounters) and lim.counters.held_total() == 0


def test_parse_limits() -> None:
    cfg = parse_limits(
        {
            "hold_seconds": 60,
            "alert_percent": 75,
            "teams": {"core": {"budget_usd": 12.5, "period": "weekly", "rpm": 10}},
            "features": {"sum": {"budget_tokens": 1000}},
        }
    )
    assert cfg.hold_ms == 60_000 and cfg.alert_bp == 7_500
    assert cfg.teams["core"] == ScopeLimits(budget_micros=12_500_000, period="weekly", rpm=10)
    assert parse_limits(None) == LimitsConfig()
    bad = [
        ({"teams": {"core": {"budget": 1}}}, "limits.teams.core.budget: unknown key"),
        ({"agents": {"a": {"rpm": 0}}}, "limits.agents.a.rpm"),
        ({"teams": {"c": {"period": "hourly"}}}, "limits.teams.c.period"),
        ({"hold_seconds": -1}, "limits.hold_seconds"),
        ({"nope": 1}, "limits.nope: unknown key"),
        ({"teams": []}, "limits.teams: expected a mapping"),
    ]
    for raw, msg in bad:
        with pytest.raises(ConfigError, match=msg):
            parse_limits(raw)


async def test_rpm_bursts_across_a_minute_edge_never_exceed_the_limit() -> None:
    clock = Clock("2026-11-23T10:00:30")
    lim = limiter(clock)
    k = key(rpm=100)

    async def burst(n: int) -> int:
        admitted = 0
        for _ in range(n):
            try:
                await lim.admit(ask(k))
                admitted += 1
            except RateLimited:
                pass
        return admitted

    assert await burst(50) == 50  # 10:00:30
    clock.set("2026-11-23T10:00:59.900")
    assert await burst(80) == 50  # 100 in the last 60 s
    clock.set("2026-11-23T10:01:00.100")  # a fixed per-minute bucket would reset here
    assert await burst(100) == 0
    clock.set("2026-11-23T10:01:30.001")  # the 10:00:30 burst has left the window
    assert await burst(100) == 50
    clock.set("2026-11-23T10:01:59.950")
    assert await burst(100) == 50  # the 10:00:59.900 burst left at 10:01:59.900


def test_check_config_names_a_bad_limits_entry(
    tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from tollhouse.cli import main

    path = tmp_path / "bad.yaml"
    path.write_text("limits:\n  agents:\n    bot: {rpm: 0}\n")
    assert main(["check-config", "--config", str(path)]) == 2
    assert "limits.agents.bot.rpm" in capsys.readouterr().err
