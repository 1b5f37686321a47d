"""``X-RateLimit-Limit / -Remaining / -Reset`` on every control-plane response.

A fixed window per caller (the SHA-256 of its bearer token, else its client address):
600 requests a minute unless the config says otherwise.  ``X-RateLimit-Reset`` is the
window's end in Unix seconds (as the Cendriix reference has it); ``Retry-After`` on a 429
is the seconds until then.  With Redis counters the count is
shared by every worker and replica (one pipelined INCR + EXPIRE per request); with memory
counters it is this worker's own.  Over the limit: 429 ``rate_limited`` with
``Retry-After``.  If Redis cannot be reached the request is counted in this worker's
memory instead (the control plane stays usable during an outage; a warning is logged).

```yaml
control:
  rate_limit: {requests: 600, window_seconds: 60}
```
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tollhouse.control._http import error_response
from tollhouse.errors import ConfigError, RateLimited

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = logging.getLogger("tollhouse.control")

DEFAULT_REQUESTS = 600
DEFAULT_WINDOW_SECONDS = 60
MAX_WINDOW_SECONDS = 86_400
REDIS_PREFIX = "tollhouse:ctl:rl:"
_MAX_CALLERS = 100_000
_SECTION_KEYS = ("rate_limit",)
_LIMIT_KEYS = ("requests", "window_seconds")


class Taken(NamedTuple):
    """One request counted: allowed or not, what is left, and when the window ends."""

    allowed: bool
    remaining: int
    retry_after: int  # seconds until the window ends (at least 1)
    reset_at: int  # the window's end, Unix seconds


@dataclass(frozen=True, slots=True)
class ControlSettings:
    """The ``control:`` config section."""

    requests: int = DEFAULT_REQUESTS
    window_seconds: int = DEFAULT_WINDOW_SECONDS


def _positive_int(value: Any, where: str, maximum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{where}: expected an integer, got {value!r}")
    if not 1 <= value <= maximum:
        raise ConfigError(f"{where}: must be in 1..{maximum}, got {value}")
    return value


def parse_control(raw: Any) -> ControlSettings:
    """Validate ``Config.section("control")``; every message names the key."""
    if raw is None:
        return ControlSettings()
    if not isinstance(raw, dict):
        raise ConfigError(f"control: expected a mapping, got {type(raw).__name__}")
    for key in raw:
        if key not in _SECTION_KEYS:
            raise ConfigError(f"control.{key}: unknown key (expected one of: rate_limit)")
    limit = raw.get("rate_limit")
    if limit is None:
        return ControlSettings()
    if not isinstance(limit, dict):
        raise ConfigError(f"control.rate_limit: expected a mapping, got {type(limit).__name__}")
    for key in limit:
        if key not in _LIMIT_KEYS:
            raise ConfigError(
                f"control.rate_limit.{key}: unknown key (expected one of: {', '.join(_LIMIT_KEYS)})"
            )
    return ControlSettings(
        requests=_positive_int(
            limit.get("requests", DEFAULT_REQUESTS), "control.rate_limit.requests", 10**9
        ),
        window_seconds=_positive_int(
            limit.get("window_seconds", DEFAULT_WINDOW_SECONDS),
            "control.rate_limit.window_seconds",
            MAX_WINDOW_SECONDS,
        ),
    )


class ControlRateLimiter:
    def __init__(
        self,
        per_minute: int = DEFAULT_REQUESTS,
        clock: Callable[[], float] = time.time,
        *,
        window_seconds: int = DEFAULT_WINDOW_SECONDS,
        redis: Redis | None = None,
        prefix: str = REDIS_PREFIX,
    ) -> None:
        self.limit = per_minute  # requests per window (``per_minute`` for the default window)
        self.window_seconds = window_seconds
        self._clock = clock
        self._redis = redis
        self._prefix = prefix
        self._window = -1
        self._counts: dict[str, int] = {}
        self._redis_down = False

    @classmethod
    def from_settings(
        cls, settings: ControlSettings, *, redis: Redis | None = None
    ) -> ControlRateLimiter:
        return cls(settings.requests, window_seconds=settings.window_seconds, redis=redis)

    def _local(self, window: int, caller: str) -> int:
        if window != self._window or len(self._counts) > _MAX_CALLERS:
            self._window, self._counts = window, {}
        used = self._counts.get(caller, 0) + 1
        self._counts[caller] = used
        return used

    async def _shared(self, redis: Redis, window: int, caller: str) -> int:
        key = f"{self._prefix}{self.window_seconds}:{window}:{caller}"
        async with redis.pipeline(transaction=True) as pipe:
            pipe.incr(key)
            pipe.expire(key, self.window_seconds + 1)
            used, _ = await pipe.execute()
        if self._redis_down:
            self._redis_down = False
            log.info("control rate limit: Redis is back, counts are shared again")
        return int(used)

    async def take(self, caller: str) -> Taken:
        """Count one request of ``caller`` in the current window."""
        now = self._clock()
        size = self.window_seconds
        window = int(now // size)
        used: int | None = None
        if self._redis is not None:
            from redis.exceptions import RedisError  # imported with the client

            try:
                used = await self._shared(self._redis, window, caller)
            except (RedisError, OSError) as exc:
                if not self._redis_down:
                    self._redis_down = True
                    log.warning(
                        "control rate limit: Redis unreachable (%s), counting per worker",
                        type(exc).__name__,
                    )
        if used is None:
            used = self._local(window, caller)
        end = (window + 1) * size
        retry_after = max(1, math.ceil(end - now))
        return Taken(used <= self.limit, max(0, self.limit - used), retry_after, end)


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
        taken = await limiter.take(caller_of(scope))
        headers = [
            (b"x-ratelimit-limit", str(limiter.limit).encode()),
            (b"x-ratelimit-remaining", str(taken.remaining).encode()),
            (b"x-ratelimit-reset", str(taken.reset_at).encode()),
        ]
        if not taken.allowed:
            exc = RateLimited(
                "too many control-plane requests: slow down",
                headers={"Retry-After": str(taken.retry_after)},
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


def limiter_for(gw: Any) -> ControlRateLimiter:
    """The limiter the config asks for (``control.rate_limit``), shared through the
    gateway's Redis counters when it has them."""
    settings = parse_control(gw.config.section("control"))
    counters = getattr(getattr(gw, "limits", None), "counters", None)
    client = getattr(counters, "client", None)
    shared = bool(getattr(counters, "shared_across_processes", False))
    redis = None
    if shared:  # Redis counters: redis is imported already
        from redis.asyncio import Redis

        redis = client if isinstance(client, Redis) else None
    return ControlRateLimiter.from_settings(settings, redis=redis)


def limit_routes(routes: list[BaseRoute], limiter: ControlRateLimiter) -> list[BaseRoute]:
    """Limit the management routes; ``/api/enforcement/check`` is left out: runtimes call
    it before each provider call, so a management-sized limit would throttle traffic."""
    for route in routes:
        if isinstance(route, Route) and not route.path.startswith("/api/"):
            route.app = limited(route.app, limiter)
    return routes
