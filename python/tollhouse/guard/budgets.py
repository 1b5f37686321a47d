"""Spend budgets: reset windows and the counter charges a budget becomes.

A budget is a USD (or token / request) ceiling for one scope (a virtual key, a team, an
agent, a feature or a guardrail) over a window: ``daily``, ``weekly`` (Monday to Sunday)
or ``monthly``, all resetting at midnight UTC, or ``None`` (never resets).  Each window
instance is its own fixed counter (``b:key:<hash>:daily:2026-11-23``), so a reset is
simply a new counter and no job has to run at midnight.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final, Literal

from tollhouse.counters import Charge
from tollhouse.errors import ConfigError

Period = Literal["daily", "weekly", "monthly"]
PERIODS: Final[tuple[str, ...]] = ("daily", "weekly", "monthly")
Scope = Literal["key", "team", "agent", "feature", "guardrail"]
Metric = Literal["cost", "tokens", "requests"]
Clock = Callable[[], float]
GRACE_MS: Final = 24 * 3600 * 1000  # counters outlive their window by a day (reporting)
# Aliases used by the enforcement-check document ("window": "day").
PERIOD_ALIASES: Final[dict[str, Period]] = {
    "day": "daily",
    "daily": "daily",
    "week": "weekly",
    "weekly": "weekly",
    "month": "monthly",
    "monthly": "monthly",
}


@dataclass(frozen=True, slots=True)
class Window:
    """One instance of a reset window: ``id`` names it, ``end_ms`` is when it resets
    (None: never)."""

    period: Period | None
    id: str
    start_ms: int
    end_ms: int | None

    def seconds_left(self, now_ms: int) -> int | None:
        if self.end_ms is None:
            return None
        return max(1, -(-(self.end_ms - now_ms) // 1000))


def parse_period(value: object, where: str) -> Period | None:
    if value is None:
        return None
    if not isinstance(value, str) or value not in PERIOD_ALIASES:
        raise ConfigError(f"{where}: expected daily, weekly, monthly or null, got {value!r}")
    return PERIOD_ALIASES[value]


_ALL: Final = Window(None, "all", 0, None)
_CURRENT: dict[str, Window] = {}  # the last window computed per period


def window(period: Period | None, now_ms: int) -> Window:
    """The window instance containing ``now_ms`` (the current one per period is kept:
    every request asks for it, and it changes once a day at most)."""
    if period is None:
        return _ALL
    w = _CURRENT.get(period)
    if w is not None and w.end_ms is not None and w.start_ms <= now_ms < w.end_ms:
        return w
    w = _compute_window(period, now_ms)
    _CURRENT[period] = w
    return w


def _compute_window(period: Period, now_ms: int) -> Window:
    now = datetime.fromtimestamp(now_ms / 1000, UTC)
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "daily":
        start, end = day, day + timedelta(days=1)
        wid = start.strftime("%Y-%m-%d")
    elif period == "weekly":
        start = day - timedelta(days=day.weekday())  # Monday
        end = start + timedelta(days=7)
        wid = "w" + start.strftime("%Y-%m-%d")
    else:
        start = day.replace(day=1)
        end = (start + timedelta(days=32)).replace(day=1)
        wid = start.strftime("%Y-%m")
    return Window(period, wid, int(start.timestamp() * 1000), int(end.timestamp() * 1000))


@dataclass(frozen=True, slots=True)
class Budget:
    """A ceiling for one scope.  ``limit`` is in the metric's unit: micro-dollars for
    ``cost``, tokens, or requests."""

    scope: Scope
    id: str
    limit: int
    period: Period | None = None
    metric: Metric = "cost"
    name: str = ""

    @property
    def label(self) -> str:
        """``key:ab12`` / ``team:Data Science``: how alerts and errors name the scope."""
        return f"{self.scope}:{self.id}"

    def counter_key(self, w: Window) -> str:
        return f"b:{self.scope}:{self.id}:{self.metric}:{self.period or 'all'}:{w.id}"

    def charge(self, amount: int, now_ms: int) -> tuple[Charge, Window]:
        w = window(self.period, now_ms)
        expire = None if w.end_ms is None else w.end_ms + GRACE_MS
        return Charge(self.counter_key(w), amount, self.limit, expire_at_ms=expire), w
