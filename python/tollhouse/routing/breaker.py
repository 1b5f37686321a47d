"""Circuit breakers per deployment, with error-rate and latency tracking.

A breaker is ``closed`` (traffic flows), ``open`` (calls fast-fail without touching the
upstream) or ``half_open`` (one probe is let through; its outcome closes or re-opens the
breaker).  It opens after ``failures`` consecutive failures, or when the error rate over
the last ``window_s`` seconds reaches ``error_rate`` with at least ``min_requests``
outcomes in the window.  Latency of successful calls is an EWMA.

Everything here is synchronous and in memory (the hot path never awaits it);
``routing.shared`` mirrors open/close transitions through Redis between processes.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

State = Literal["closed", "open", "half_open"]


@dataclass(frozen=True, slots=True)
class BreakerConfig:
    failures: int = 5
    error_rate: float = 0.5
    min_requests: int = 10
    window_s: float = 30.0
    cooldown_s: float = 10.0
    ewma_alpha: float = 0.3


@dataclass(slots=True)
class Breaker:
    """The breaker and health numbers of one deployment."""

    id: str
    config: BreakerConfig = field(default_factory=BreakerConfig)
    clock: Callable[[], float] = time.monotonic
    state: State = "closed"
    consecutive: int = 0
    opened_at: float = 0.0
    probing: bool = False
    latency_ms: float | None = None  # EWMA of successful calls
    tokens_per_s: float | None = None  # EWMA of completion throughput
    successes: int = 0
    failures_total: int = 0
    last_error: str | None = None
    outcomes: deque[tuple[float, bool]] = field(default_factory=deque)
    # called with (breaker, old state) on every transition (shared state, events)
    on_change: Callable[[Breaker, State], None] | None = None

    # -- decisions ---------------------------------------------------------------------

    def allow(self) -> bool:
        """Whether a call may go out now (an open breaker past its cooldown lets one probe)."""
        if self.state == "closed":
            return True
        if self.state == "open":
            if self.clock() - self.opened_at < self.config.cooldown_s:
                return False
            self._move("half_open")
        if self.probing:
            return False
        self.probing = True
        return True

    def available(self) -> bool:
        """Like ``allow`` without taking the probe slot (for ordering and health)."""
        if self.state == "closed":
            return True
        if self.state == "open":
            return self.clock() - self.opened_at >= self.config.cooldown_s
        return not self.probing

    # -- outcomes ----------------------------------------------------------------------

    def success(self, latency_s: float | None = None, tokens: int = 0) -> None:
        now = self.clock()
        self.successes += 1
        self.consecutive = 0
        self._push(now, True)
        if latency_s is not None:
            ms = latency_s * 1000.0
            a = self.config.ewma_alpha
            self.latency_ms = ms if self.latency_ms is None else a * ms + (1 - a) * self.latency_ms
            if tokens > 0 and latency_s > 0:
                tps = tokens / latency_s
                prev = self.tokens_per_s
                self.tokens_per_s = tps if prev is None else a * tps + (1 - a) * prev
        if self.state != "closed":
            self.probing = False
            self.outcomes.clear()
            self._move("closed")

    def failure(self, reason: str = "error") -> None:
        now = self.clock()
        self.failures_total += 1
        self.consecutive += 1
        self.last_error = reason
        self._push(now, False)
        if self.state == "half_open":
            self.probing = False
            self._open(now)
        elif self.state == "closed" and self._should_open(now):
            self._open(now)

    def release(self) -> None:
        """A probe that ended without a verdict (client gone, 4xx): free the slot."""
        self.probing = False

    # -- numbers -----------------------------------------------------------------------

    def error_rate(self) -> float:
        self._trim(self.clock())
        if not self.outcomes:
            return 0.0
        bad = sum(1 for _, ok in self.outcomes if not ok)
        return bad / len(self.outcomes)

    def requests_in_window(self) -> int:
        self._trim(self.clock())
        return len(self.outcomes)

    def snapshot(self) -> dict[str, Any]:
        rate = self.error_rate()
        return {
            "id": self.id,
            "state": self.state,
            "error_rate": round(rate, 4),
            "requests_in_window": len(self.outcomes),
            "consecutive_failures": self.consecutive,
            "latency_ms": round(self.latency_ms, 3) if self.latency_ms is not None else None,
            "throughput_tps": (
                round(self.tokens_per_s, 3) if self.tokens_per_s is not None else None
            ),
            "successes": self.successes,
            "failures": self.failures_total,
            "last_error": self.last_error,
        }

    # -- internals ---------------------------------------------------------------------

    def force_open(self, opened_at: float | None = None) -> None:
        """Open because another process did (shared state)."""
        if self.state != "open":
            self.probing = False
            self._open(self.clock() if opened_at is None else opened_at, notify=False)

    def force_close(self) -> None:
        if self.state != "closed":
            self.probing = False
            self.consecutive = 0
            self.outcomes.clear()
            self._move("closed", notify=False)

    def _should_open(self, now: float) -> bool:
        c = self.config
        if self.consecutive >= c.failures:
            return True
        self._trim(now)
        n = len(self.outcomes)
        if n < c.min_requests:
            return False
        bad = sum(1 for _, ok in self.outcomes if not ok)
        return bad / n >= c.error_rate

    def _open(self, now: float, *, notify: bool = True) -> None:
        self.opened_at = now
        self._move("open", notify=notify)

    def _move(self, state: State, *, notify: bool = True) -> None:
        old, self.state = self.state, state
        if notify and old != state and self.on_change is not None:
            self.on_change(self, old)

    def _push(self, now: float, ok: bool) -> None:
        self.outcomes.append((now, ok))
        self._trim(now)

    def _trim(self, now: float) -> None:
        horizon = now - self.config.window_s
        q = self.outcomes
        while q and q[0][0] < horizon:
            q.popleft()
        while len(q) > 10_000:  # bounded memory under very high rates
            q.popleft()


class BreakerBoard:
    """Every deployment's breaker, created on first use."""

    def __init__(
        self,
        config: BreakerConfig | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[Breaker, State], None] | None = None,
    ) -> None:
        self.config = config or BreakerConfig()
        self.clock = clock
        self.on_change = on_change
        self._breakers: dict[str, Breaker] = {}

    def get(self, deployment_id: str) -> Breaker:
        b = self._breakers.get(deployment_id)
        if b is None:
            b = Breaker(deployment_id, self.config, self.clock, on_change=self.on_change)
            self._breakers[deployment_id] = b
        return b

    def __iter__(self) -> Any:
        return iter(self._breakers.values())
