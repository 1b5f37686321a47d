from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tollhouse.errors import ConfigError
from tollhouse.guard.budgets import Budget, parse_period, window
from tollhouse.guard.ratelimit import RateLimit, format_reset, headers


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


def test_daily_window_resets_at_midnight_utc() -> None:
    w = window("daily", ms("2026-11-23T23:59:59.999"))
    assert (w.id, w.start_ms, w.end_ms) == ("2026-11-23", ms("2026-11-23"), ms("2026-11-24"))
    assert window("daily", ms("2026-11-24T00:00:00")).id == "2026-11-24"
    assert w.seconds_left(ms("2026-11-23T23:59:59.999")) == 1
    assert w.seconds_left(ms("2026-11-23T23:00:00")) == 3600


def test_weekly_window_runs_monday_to_sunday() -> None:
    # 2026-11-23 is a Monday.
    for day in ("2026-11-23T00:00:00", "2026-11-26T12:00:00", "2026-11-29T23:59:59"):
        w = window("weekly", ms(day))
        assert (w.id, w.start_ms, w.end_ms) == ("w2026-11-23", ms("2026-11-23"), ms("2026-11-30"))
    assert window("weekly", ms("2026-11-30T00:00:00")).id == "w2026-11-30"
    assert window("weekly", ms("2026-11-22T23:59:59")).id == "w2026-11-16"


def test_monthly_window_including_december_and_february() -> None:
    w = window("monthly", ms("2026-12-31T23:59:59"))
    assert (w.id, w.end_ms) == ("2026-12", ms("2027-01-01"))
    w = window("monthly", ms("2028-02-29T10:00:00"))
    assert (w.id, w.start_ms, w.end_ms) == ("2028-02", ms("2028-02-01"), ms("2028-03-01"))


def test_no_window_never_resets() -> None:
    w = window(None, ms("2026-11-23"))
    assert (w.id, w.end_ms, w.seconds_left(0)) == ("all", None, None)


def test_budget_charge_names_scope_metric_and_window() -> None:
    b = Budget("team", "Data Science", 5_000_000, "daily")
    charge, w = b.charge(120, ms("2026-11-23T10:00:00"))
    assert charge.key == "b:team:Data Science:cost:daily:2026-11-23"
    assert (charge.amount, charge.limit, charge.window_ms) == (120, 5_000_000, 0)
    assert charge.expire_at_ms is not None and charge.expire_at_ms > ms("2026-11-24")
    lifetime, _ = Budget("key", "ab", 10).charge(1, 0)
    assert lifetime.expire_at_ms is None
    assert lifetime.key == "b:key:ab:cost:all:all"
    assert w.id == "2026-11-23"


def test_parse_period() -> None:
    assert parse_period("day", "x") == "daily"
    assert parse_period("monthly", "x") == "monthly"
    assert parse_period(None, "x") is None
    with pytest.raises(ConfigError, match="x: expected daily, weekly, monthly"):
        parse_period("hourly", "x")


def test_rate_limit_charges_and_headers() -> None:
    c = RateLimit("key", "ab", "tokens", 1000).charge(300)
    assert (c.key, c.amount, c.limit, c.window_ms) == ("t:key:ab", 300, 1000, 60_000)
    assert headers("requests", 100, 40, 6_500) == [
        (b"x-ratelimit-limit-requests", b"100"),
        (b"x-ratelimit-remaining-requests", b"60"),
        (b"x-ratelimit-reset-requests", b"6.5s"),
    ]
    assert [format_reset(x) for x in (0, 250, 1_000, 59_000, 60_000, 61_500)] == [
        "0s",
        "250ms",
        "1s",
        "59s",
        "1m0s",
        "1m1s",
    ]
