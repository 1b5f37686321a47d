"""What an alert rule measures: its workspace's numbers over the rule's window, from the
spend rows every worker and replica writes to the shared store.

A rule sees the traffic of its own workspace's virtual keys only: each spend row carries
the workspace of the key that made it (``keys.workspace_id``, migration 0010).  The
``default`` workspace is no exception: it sees the rows of keys in ``default`` (every key
made without a ``workspace_id``), not the whole gateway's, so no workspace's owner reads
another's traffic.

Every metric is read over ``[now - window_seconds, now)`` by ``created_at`` (when the
request arrived); rows reach the store within the spend writer's flush interval (0.2 s).

- ``requests``: rows in the window (every authenticated request that reached routing).
- ``error_rate``: the fraction of them answered non-2xx; a request the client abandoned
  (``cancelled``, 499) is not the gateway's error and counts as neither.
- ``latency``: the 95th percentile (nearest rank) in milliseconds of the time to the
  answer: the whole request when not streamed, the time to the first token when
  streamed (a long stream is not a slow one).  Abandoned requests are left out.
- ``cost``: USD spent in the window; ``tokens``: prompt + completion tokens.
- ``budget``: the largest fraction of a (workspace's) virtual key's spend limit used in the key's
  current reset window (daily / weekly / monthly / all time); ``window_seconds`` does not
  apply, the budget's own window does.

A window without requests has no latency or error rate: the rule does not fire (and a
firing one resolves).  Thresholds are inclusive: a value at the threshold fires.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Final

from tollhouse.guard.budgets import window
from tollhouse.store import SqlStore

LATENCY_QUANTILE: Final = 0.95
MICROS_PER_USD: Final = 1_000_000

_COUNTS = (
    "SELECT COUNT(*), "
    "COALESCE(SUM(CASE WHEN NOT cancelled AND (status < 200 OR status >= 300) "
    "THEN 1 ELSE 0 END), 0), "
    "COALESCE(SUM(CASE WHEN cancelled THEN 1 ELSE 0 END), 0), "
    "COALESCE(SUM(cost_micros), 0), "
    "COALESCE(SUM(prompt_tokens + completion_tokens), 0) "
    "FROM spend WHERE workspace_id = ? AND created_at >= ? AND created_at < ?"
)
_ANSWER_MS = "COALESCE(CASE WHEN streamed THEN ttft_ms END, latency_ms)"
_NTH_LATENCY = (
    f"SELECT {_ANSWER_MS} AS answer_ms FROM spend "  # noqa: S608 - constant
    "WHERE workspace_id = ? AND created_at >= ? AND created_at < ? AND NOT cancelled "
    "ORDER BY answer_ms DESC LIMIT 1 OFFSET ?"
)


@dataclass(frozen=True, slots=True)
class WindowStats:
    """One workspace's totals over one window."""

    requests: int = 0
    errors: int = 0
    cancelled: int = 0
    cost_micros: int = 0
    tokens: int = 0
    latency_ms: float | None = None  # the LATENCY_QUANTILE of answered requests

    @property
    def answered(self) -> int:
        return self.requests - self.cancelled

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.answered if self.answered else None


def nearest_rank(n: int, q: float = LATENCY_QUANTILE) -> int:
    """The 1-based rank of the ``q`` quantile among ``n`` sorted values (nearest rank:
    the smallest value with at least ``q`` of the values at or below it)."""
    if n <= 0:
        raise ValueError("no values")
    return min(n, max(1, math.ceil(round(q * n, 9))))


def quantile(values: list[float], q: float = LATENCY_QUANTILE) -> float:
    """The nearest-rank quantile of ``values`` (the reference ``window_stats`` follows)."""
    return sorted(values)[nearest_rank(len(values), q) - 1]


async def window_stats(
    store: SqlStore, workspace_id: str, since: float, until: float
) -> WindowStats:
    rows = await store._fetch(_COUNTS, (workspace_id, since, until))
    requests, errors, cancelled, cost, tokens = (int(v) for v in rows[0])
    latency = None
    answered = requests - cancelled
    if answered > 0:
        # Counted from the top: the sort keeps only the slowest 5 % (+1) of the rows.
        offset = answered - nearest_rank(answered)
        nth = await store._fetch(_NTH_LATENCY, (workspace_id, since, until, offset))
        if nth and nth[0][0] is not None:
            latency = float(nth[0][0])
    return WindowStats(requests, errors, cancelled, cost, tokens, latency)


def metric_value(metric: str, stats: WindowStats) -> float | None:
    """The rule's number for ``metric`` (None: no data in the window)."""
    if metric == "requests":
        return float(stats.requests)
    if metric == "error_rate":
        return stats.error_rate
    if metric == "latency":
        return stats.latency_ms
    if metric == "cost":
        return stats.cost_micros / MICROS_PER_USD
    if metric == "tokens":
        return float(stats.tokens)
    raise ValueError(f"not a window metric: {metric!r}")


def threshold_of(condition: dict[str, Any]) -> float:
    """``threshold_ms`` for latency, ``threshold`` otherwise (validated on the way in)."""
    key = "threshold_ms" if condition.get("metric") == "latency" else "threshold"
    return float(condition[key])


def breached(value: float | None, threshold: float) -> bool:
    return value is not None and value >= threshold


@dataclass(frozen=True, slots=True)
class BudgetUse:
    fraction: float  # spent / limit of the most used key
    key_name: str
    spent_micros: int
    limit_micros: int
    period: str | None


async def budget_use(store: SqlStore, workspace_id: str, now: float) -> BudgetUse | None:
    """The workspace's virtual key with the largest share of its spend limit used in its
    current reset window (None: no key of the workspace has a limit)."""
    keys = [
        k
        for k in await store.all_keys()
        if k.limit_micros and not k.disabled and k.workspace_id == workspace_id
    ]
    if not keys:
        return None
    periods: list[Any] = ["daily", "weekly", "monthly", None]
    starts = [window(p, int(now * 1000)).start_ms / 1000 for p in periods]
    usage = await store.key_usage([k.hash for k in keys], starts)
    best: BudgetUse | None = None
    for k in keys:
        assert k.limit_micros is not None  # noqa: S101 - filtered above
        spent = usage[k.hash][periods.index(k.limit_reset)]
        use = BudgetUse(spent / k.limit_micros, k.name, spent, k.limit_micros, k.limit_reset)
        if best is None or use.fraction > best.fraction:
            best = use
    return best
