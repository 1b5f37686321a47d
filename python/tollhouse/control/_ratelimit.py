"""``X-RateLimit-Limit / -Remaining / -Reset`` on every control-plane response.

A fixed one-minute window per caller (the SHA-256 of its bearer token, else its client
address), counted in this worker's memory: the control plane is never on the data
plane's hot path, so a per-process count is enough to keep one client from flooding it.
Over the limit: 429 ``rate_limited`` with ``Retry-After``.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable

from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tollhouse.control._http import error_response
from tollhouse.errors import RateLimited

DEFAULT_PER_MINUTE = 600
WINDOW = 60.0
_MAX_CALLERS = 100_000


class ControlRateLimiter:
    def __init__(
        self, per_minute: int = DEFAULT_PER_MINUTE, clock: Callable[[], float] = time.time
    ) -> None:
        self.per_minute = per_minute
        self._clock = clock
        self._window = -1
        self._counts: dict[str, int] = {}

    def take(self, caller: str) -> tuple[bool, int, int]:
        """(allowed, remaining, seconds until the window resets) for one request."""
        now = self._clock()
        window = int(now // WINDOW)
        if window != self._window or len(self._counts) > _MAX_CALLERS:
            self._window, self._counts = window, {}
        used = self._counts.get(caller, 0) + 1
        self._counts[caller] = used
        reset = max(1, math.ceil((window + 1) * WINDOW - now))
        return used <= self.per_minute, max(0, self.per_minute - used), reset


def caller_of(scope: Scope) -> str:
    for name, value in scope.get("headers") or ():
        if name == b"authorization":
            return hashlib.sha256(value).hexdigest()
    client = scope.get("client")
    return f"addr:{client[0]}" if client else "addr:?"


def limited(app: ASGIApp, limiter: ControlRateLimiter) -> ASGIApp:
    async def wrapper(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        allowed, remaining, reset = limiter.take(caller_of(scope))
        headers = [
            (b"x-ratelimit-limit", str(limiter.per_minute).encode()),
            (b"x-ratelimit-remaining", str(remaining).encode()),
            (b"x-ratelimit-reset", str(reset).encode()),
        ]
        if not allowed:
            exc = RateLimited(
                "too many control-plane requests: slow down", headers={"Retry-After": str(reset)}
            )
            response = error_response(exc)
            response.raw_headers.extend(headers)
            await response(scope, receive, send)
            return

        async def tap(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", ()), *headers]}
            await send(message)

        await app(scope, receive, tap)

    return wrapper


def limit_routes(routes: list[BaseRoute], limiter: ControlRateLimiter) -> list[BaseRoute]:
    """Limit the management routes; ``/api/enforcement/check`` is left out: runtimes call
    it before each provider call, so a management-sized limit would throttle traffic."""
    for route in routes:
        if isinstance(route, Route) and not route.path.startswith("/api/"):
            route.app = limited(route.app, limiter)
    return routes
