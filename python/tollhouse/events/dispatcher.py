"""The signed webhook dispatcher: a bounded background queue with retries.

``emit`` only appends to an in-memory queue (never awaits, never raises on overflow), so
the request path pays a deque append.  Worker tasks encode, sign and POST each delivery
with aiohttp; connection errors, timeouts, 429 and 5xx are retried with full-jitter
exponential backoff (Retry-After honoured, capped at ``max_delay``), other answers are
final.  Retries wait on timers, not in workers, so one slow target cannot stall others.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from tollhouse.errors import DestinationBlocked
from tollhouse.events import spool
from tollhouse.events.config import WebhookEndpoint, WebhooksConfig
from tollhouse.events.signing import mask_url, signature_headers
from tollhouse.events.slack import slack_bytes
from tollhouse.events.ssrf import SSRFGuard
from tollhouse.events.types import Event

if TYPE_CHECKING:
    import aiohttp

log = logging.getLogger("tollhouse.events")

Outcome = Literal["delivered", "retry", "failed", "blocked"]
USER_AGENT = "tollhouse-webhooks/0.1"
_READ_LIMIT = 64 * 1024


@dataclass(eq=False, slots=True)
class Delivery:
    endpoint: WebhookEndpoint
    event: Event
    attempts: int = 0
    _body: bytes | None = field(default=None, repr=False)

    def body(self) -> bytes:
        if self._body is None:
            is_slack = self.endpoint.type == "slack"
            self._body = slack_bytes(self.event) if is_slack else self.event.body()
        return self._body


@dataclass(frozen=True, slots=True)
class AttemptResult:
    outcome: Outcome
    status: int | None = None
    retry_after: float | None = None
    detail: str = ""


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or HTTP-date)."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


async def _drain(resp: aiohttp.ClientResponse) -> None:
    """Read the (ignored) answer to EOF so the connection is reused; stop at a limit so a
    hostile target cannot make us buffer a huge body."""
    remaining = _READ_LIMIT
    while remaining > 0:
        chunk = await resp.content.read(remaining)
        if not chunk:
            return
        remaining -= len(chunk)


def classify(status: int, retry_after: float | None) -> AttemptResult:
    if 200 <= status < 300:
        return AttemptResult("delivered", status)
    if status == 429 or status >= 500:
        return AttemptResult("retry", status, retry_after, f"HTTP {status}")
    if 300 <= status < 400:
        return AttemptResult("failed", status, None, f"HTTP {status} (redirects not followed)")
    return AttemptResult("failed", status, None, f"HTTP {status}")


class WebhookDispatcher:
    """Delivers events to endpoints in the background.  Call ``emit`` from the event loop
    thread; counters are plain attributes for the metrics module to read."""

    def __init__(
        self,
        endpoints: Sequence[WebhookEndpoint] = (),
        *,
        allow_private: Sequence[str] = (),
        max_queue: int = 10_000,
        max_attempts: int = 6,
        base_delay: float = 0.5,
        max_delay: float = 60.0,
        timeout: float = 10.0,
        workers: int = 4,
        spool_path: str | Path | None = None,
        rng: random.Random | None = None,
    ) -> None:
        if max_queue < 1 or max_attempts < 1 or workers < 1:
            raise ValueError("max_queue, max_attempts and workers must be >= 1")
        self._endpoints = tuple(endpoints)
        self.guard = SSRFGuard(allow_private)
        self.max_attempts = max_attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.timeout = timeout
        self._n_workers = workers
        self._spool_path = Path(spool_path) if spool_path is not None else None
        self._rng = rng or random.Random()  # noqa: S311 -- jitter, not crypto
        self._queue: asyncio.Queue[Delivery] = asyncio.Queue(maxsize=max_queue)
        self._waiting: dict[Delivery, asyncio.TimerHandle] = {}
        self._active: set[Delivery] = set()
        self._workers: list[asyncio.Task[None]] = []
        self._session: aiohttp.ClientSession | None = None
        self._state: Literal["new", "running", "stopping", "stopped"] = "new"
        self._listeners: list[Callable[[Event], None]] = []
        self.delivered = 0
        self.failed = 0
        self.retried = 0
        self.dropped = 0
        self.blocked = 0
        self.persisted = 0

    @classmethod
    def from_config(cls, cfg: WebhooksConfig, **overrides: object) -> WebhookDispatcher:
        kwargs: dict[str, object] = {
            "allow_private": cfg.allow_private,
            "max_queue": cfg.max_queue,
            "max_attempts": cfg.max_attempts,
            "timeout": cfg.timeout,
        }
        kwargs.update(overrides)
        return cls(cfg.endpoints, **kwargs)  # type: ignore[arg-type]

    # -- state the metrics read ---------------------------------------------------------

    @property
    def queue_depth(self) -> int:
        """Deliveries not yet finished: queued, waiting for a retry, or in flight."""
        return self._queue.qsize() + len(self._waiting) + len(self._active)

    @property
    def endpoints(self) -> tuple[WebhookEndpoint, ...]:
        return self._endpoints

    def set_endpoints(self, endpoints: Sequence[WebhookEndpoint]) -> None:
        """Swap the configured targets (config reload); queued deliveries keep theirs."""
        self._endpoints = tuple(endpoints)

    def stats(self) -> dict[str, int]:
        return {
            "delivered": self.delivered,
            "failed": self.failed,
            "retried": self.retried,
            "dropped": self.dropped,
            "blocked": self.blocked,
            "persisted": self.persisted,
            "queue_depth": self.queue_depth,
        }

    # -- producing ----------------------------------------------------------------------

    def listen(self, listener: Callable[[Event], None]) -> None:
        """Also hand every emitted event to ``listener`` (e.g. the audit log), which must
        not block; an exception it raises is logged and does not stop delivery."""
        self._listeners.append(listener)

    def emit(self, event: Event, *, endpoints: Sequence[WebhookEndpoint] | None = None) -> None:
        """Queue ``event`` for every endpoint that subscribes to its type (or for
        ``endpoints``, e.g. an alert rule's delivery targets).  Never blocks.  The body is
        encoded by a worker, so ``event.data`` must not be mutated afterwards."""
        for listener in self._listeners:
            try:
                listener(event)
            except Exception:
                log.exception("event listener failed on %s %s", event.type, event.id)
        if self._state == "stopped":
            self.dropped += 1
            log.warning("webhook %s %s dropped: dispatcher stopped", event.type, event.id)
            return
        for ep in self._endpoints if endpoints is None else endpoints:
            if ep.wants(event.type):
                self._enqueue(Delivery(ep, event))

    def _enqueue(self, delivery: Delivery) -> None:
        try:
            self._queue.put_nowait(delivery)
        except asyncio.QueueFull:
            self.dropped += 1
            log.warning(
                "webhook queue full (%d): dropped %s %s for %s",
                self._queue.maxsize,
                delivery.event.type,
                delivery.event.id,
                delivery.endpoint.name,
            )

    # -- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        if self._state != "new":
            raise RuntimeError(f"dispatcher cannot start from state {self._state!r}")
        self._state = "running"  # the HTTP session opens with the first delivery
        if self._spool_path is not None:
            for ep, event in spool.load(self._spool_path, self._endpoints):
                self._enqueue(Delivery(ep, event))
        self._workers = [
            asyncio.create_task(self._worker(), name=f"webhook-worker-{i}")
            for i in range(self._n_workers)
        ]

    async def stop(self, drain_timeout: float = 5.0) -> None:
        """Deliver what is queued within ``drain_timeout`` s, then persist the rest to the
        spool (or count it as dropped when no spool is configured)."""
        if self._state in ("stopping", "stopped"):
            return
        was_running = self._state == "running"
        self._state = "stopping"
        loop = asyncio.get_running_loop()
        deadline = loop.time() + drain_timeout
        while was_running and loop.time() < deadline:
            busy = self._queue.qsize() or self._active
            due = any(h.when() <= deadline for h in self._waiting.values())
            if not busy and not due:
                break
            await asyncio.sleep(0.005)
        for task in self._workers:
            task.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        self._workers = []
        left: list[Delivery] = list(self._active)
        self._active.clear()
        for d, handle in self._waiting.items():
            handle.cancel()
            left.append(d)
        self._waiting.clear()
        while not self._queue.empty():
            left.append(self._queue.get_nowait())
        self._state = "stopped"
        if left:
            saved = 0
            if self._spool_path is not None:
                try:
                    saved = spool.save(self._spool_path, [(d.endpoint, d.event) for d in left])
                    log.info("webhooks: persisted %d undelivered to the spool", saved)
                except OSError as exc:
                    log.error("webhooks: cannot write the spool (%s)", exc.strerror)
            self.persisted += saved
            if saved < len(left):
                self.dropped += len(left) - saved
                log.warning("webhooks: %d undelivered dropped at shutdown", len(left) - saved)
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _ensure_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            import aiohttp  # only once something is sent (~10 MiB per worker otherwise)

            from tollhouse.events.resolver import GuardedResolver

            connector = aiohttp.TCPConnector(
                resolver=GuardedResolver(self.guard), limit=100, ttl_dns_cache=10
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                trust_env=False,  # an env proxy would bypass the SSRF guard
                timeout=aiohttp.ClientTimeout(total=self.timeout),
                headers={"user-agent": USER_AGENT},
            )
        return self._session

    # -- delivering ---------------------------------------------------------------------

    async def _worker(self) -> None:
        me = asyncio.current_task()
        assert me is not None  # noqa: S101 -- always inside a task
        while True:
            d = await self._queue.get()
            self._active.add(d)
            try:
                await self._process(d)
            except Exception:
                self.failed += 1
                log.exception("webhook %s %s: delivery crashed", d.event.type, d.event.id)
            finally:
                # A cancelled attempt stays in _active so stop() can persist it.
                if not me.cancelling():
                    self._active.discard(d)

    async def _process(self, d: Delivery) -> None:
        d.attempts += 1
        result = await self._attempt(d.endpoint, d.event, d.body())
        if result.outcome == "delivered":
            self.delivered += 1
            return
        target = mask_url(d.endpoint.url)
        if result.outcome == "retry" and d.attempts < self.max_attempts:
            if self._state == "running" or self._state == "stopping":
                delay = self.backoff(d.attempts, result.retry_after)
                self.retried += 1
                log.info(
                    "webhook %s %s to %s: %s, retry %d in %.2fs",
                    d.event.type,
                    d.event.id,
                    target,
                    result.detail,
                    d.attempts,
                    delay,
                )
                loop = asyncio.get_running_loop()
                self._waiting[d] = loop.call_later(delay, self._requeue, d)
                return
        if result.outcome == "blocked":
            self.blocked += 1
        self.failed += 1
        log.warning(
            "webhook %s %s to %s failed after %d attempt(s): %s",
            d.event.type,
            d.event.id,
            target,
            d.attempts,
            result.detail,
        )

    def _requeue(self, d: Delivery) -> None:
        self._waiting.pop(d, None)
        self._enqueue(d)

    def backoff(self, attempts: int, retry_after: float | None = None) -> float:
        """Full jitter: uniform(0, min(max_delay, base * 2^(attempts-1))), raised to a
        Retry-After when the target sent one."""
        cap = min(self.max_delay, self.base_delay * (2 ** (attempts - 1)))
        delay = self._rng.uniform(0, cap)
        if retry_after is not None:
            delay = max(delay, retry_after)
        return min(delay, self.max_delay)

    async def send_once(self, endpoint: WebhookEndpoint, event: Event) -> AttemptResult:
        """One signed, SSRF-guarded attempt, awaited (control-plane ``verify`` and ``test``
        actions, alert firing); the queue and its retries are not involved."""
        return await self._attempt(endpoint, event, Delivery(endpoint, event).body())

    async def _attempt(self, ep: WebhookEndpoint, event: Event, body: bytes) -> AttemptResult:
        try:
            self.guard.check_url(ep.url)
        except DestinationBlocked as exc:
            return AttemptResult("blocked", detail=exc.message)
        headers = signature_headers(ep.secret, event.id, body)
        session = self._ensure_session()
        import aiohttp  # imported by _ensure_session

        try:
            async with session.post(
                ep.url, data=body, headers=headers, allow_redirects=False
            ) as resp:
                await _drain(resp)
                return classify(resp.status, parse_retry_after(resp.headers.get("retry-after")))
        except aiohttp.ClientConnectorError as exc:
            if isinstance(exc.os_error, DestinationBlocked):
                return AttemptResult("blocked", detail=exc.os_error.message)
            return AttemptResult("retry", detail=f"connection error ({type(exc).__name__})")
        except DestinationBlocked as exc:
            return AttemptResult("blocked", detail=exc.message)
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            return AttemptResult("retry", detail=f"{type(exc).__name__}")
