"""Which upstream failures are retried, and how long to wait before the next try.

Retried: connection errors, timeouts and 5xx (``ProviderError``), 408 and 429
(``UpstreamHTTPError``).  Never retried: every other 4xx (400, 401, 403, 404, 422, ...):
the same request would fail the same way.  The wait is full-jitter exponential backoff
(``uniform(0, min(cap, base * 2**n))``), or the upstream's ``Retry-After`` when it sent
one; a request never waits beyond its retry budget.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from tollhouse.errors import ProviderError, TollhouseError, UpstreamHTTPError
from tollhouse.events.dispatcher import parse_retry_after

RETRY_STATUSES = frozenset({408, 429})


@dataclass(frozen=True, slots=True)
class RetryConfig:
    retries: int = 2  # extra tries on the same deployment
    max_attempts: int = 6  # tries per request, every deployment included
    backoff_base_s: float = 0.1
    backoff_max_s: float = 2.0
    budget_s: float = 10.0  # total time a request may spend waiting between tries
    max_retry_after_s: float = 5.0  # a longer Retry-After moves on to the next deployment


def retryable(exc: BaseException) -> bool:
    if isinstance(exc, UpstreamHTTPError):
        return exc.upstream_status in RETRY_STATUSES
    return isinstance(exc, ProviderError)


def status_of(exc: BaseException) -> int | None:
    if isinstance(exc, UpstreamHTTPError):
        return exc.upstream_status
    return None


def retry_after(exc: BaseException) -> float | None:
    """Seconds from the upstream's ``Retry-After`` (kept on the error's headers)."""
    if not isinstance(exc, TollhouseError):
        return None
    value = exc.headers.get("retry-after") or exc.headers.get("Retry-After")
    return parse_retry_after(value)


def full_jitter(attempt: int, base: float, cap: float, rng: Callable[[], float]) -> float:
    """``uniform(0, min(cap, base * 2**attempt))`` (attempt 0 is the first retry)."""
    return rng() * min(cap, base * 2.0 ** min(attempt, 30))


@dataclass(slots=True)
class RetryBudget:
    """The per-request allowance: tries left and time left to spend waiting."""

    config: RetryConfig
    rng: Callable[[], float] = random.random
    clock: Callable[[], float] = time.monotonic
    attempts: int = 0
    waited_s: float = 0.0
    started: float = field(default=0.0)

    def __post_init__(self) -> None:
        self.started = self.clock()

    def can_try(self) -> bool:
        return self.attempts < self.config.max_attempts

    def delay(self, retry_number: int, exc: BaseException) -> float | None:
        """Seconds to wait before retrying the same deployment, or None to move on."""
        if not self.can_try():
            return None
        left = self.config.budget_s - self.waited_s
        hinted = retry_after(exc)
        if hinted is not None:
            if hinted > self.config.max_retry_after_s or hinted > left:
                return None
            return hinted
        c = self.config
        wait = full_jitter(retry_number, c.backoff_base_s, c.backoff_max_s, self.rng)
        return wait if wait <= left else None

    def spend(self, seconds: float) -> None:
        self.waited_s += seconds
