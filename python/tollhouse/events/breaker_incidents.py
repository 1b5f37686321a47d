"""A deployment's circuit breaker opening opens an incident (``source: breaker``).

``Router.on_breaker`` calls ``changed`` on every transition this worker makes itself (a
breaker forced open because another worker published it does not call it, so a worker
only reports what its own traffic saw).  The work is a background task: the transition
happens on the request path, which never writes to the database.

Which workspace: every workspace with a failover policy whose primary or fallback
endpoint is this deployment (on the policy's route) gets the incident, with that route;
when no policy names the deployment it goes to the ``default`` workspace, with the
deployment's first public model as the route.  Several workers seeing the same breaker
open share one incident (``IncidentBook.open_or_join`` dedupes on the deployment id);
a breaker closing again appends ``breaker.closed`` to the open incident (a person
resolves it).  A store that is down is tried again in that background task after each
of ``retry_delays`` (about 30 s in all), then given up with an error log.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

from tollhouse.control.incidents_book import IncidentBook
from tollhouse.errors import TollhouseError
from tollhouse.guard.policies import DEFAULT_WORKSPACE
from tollhouse.routing.breaker import Breaker, State
from tollhouse.routing.router import Router

log = logging.getLogger("tollhouse.incidents")

SEVERITY = "high"
MAX_PENDING = 256
RETRY_DELAYS = (0.5, 1.0, 2.0, 4.0, 8.0, 15.0)  # seconds between attempts; then given up


class BreakerIncidents:
    def __init__(
        self,
        book: IncidentBook,
        router: Router,
        *,
        retry_delays: tuple[float, ...] = RETRY_DELAYS,
    ) -> None:
        self.book = book
        self.router = router
        self.retry_delays = retry_delays
        self._tasks: set[asyncio.Task[None]] = set()

    def attach(self) -> None:
        self.router.on_breaker = self.changed

    def changed(self, breaker: Breaker, old: State) -> None:
        """Breaker transition hook (sync, on the request path: only schedules)."""
        if breaker.state == old or breaker.state == "half_open":
            return
        if len(self._tasks) >= MAX_PENDING:
            log.error("incident queue full: breaker %s %s not recorded", breaker.id, breaker.state)
            return
        snapshot = breaker.snapshot()
        work = self._opened if breaker.state == "open" else self._closed
        task = asyncio.get_running_loop().create_task(work(breaker.id, snapshot))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def owners(self, deployment_id: str) -> list[tuple[str, str | None, str | None]]:
        """(workspace, route, provider) pairs the deployment's incidents go to."""
        targets = [t for t in self.router.registry.all_targets() if t.id == deployment_id]
        out: list[tuple[str, str | None, str | None]] = []
        for t in targets:
            for p in self.router.policies.for_route(t.model):
                names = (p.primary_endpoint, *p.fallback_endpoints)
                if any(t.matches(n) for n in names) and p.workspace_id not in [o[0] for o in out]:
                    out.append((p.workspace_id, t.model, t.provider))
        if not out:
            first = targets[0] if targets else None
            route = first.model if first else None
            out.append((DEFAULT_WORKSPACE, route, first.provider if first else None))
        return out

    async def _opened(self, deployment_id: str, snapshot: dict[str, Any]) -> None:
        model = deployment_id.partition("/")[2] or None
        for workspace, route, provider in self.owners(deployment_id):
            title = f"Circuit breaker open: {deployment_id}" + (f" ({route})" if route else "")
            await self._record(
                "breaker incident",
                deployment_id,
                partial(
                    self.book.open_or_join,
                    workspace,
                    source_kind="breaker",
                    source_ref=deployment_id,
                    title=title,
                    severity=SEVERITY,
                    route=route,
                    provider=provider,
                    model=model,
                    event={"type": "breaker.opened", "breaker": snapshot},
                ),
            )

    async def _closed(self, deployment_id: str, snapshot: dict[str, Any]) -> None:
        for workspace, _, _ in self.owners(deployment_id):
            await self._record(
                "breaker close",
                deployment_id,
                partial(
                    self.book.append_to_source,
                    workspace,
                    source_kind="breaker",
                    source_ref=deployment_id,
                    kind="breaker.closed",
                    data={"breaker": snapshot},
                ),
            )

    async def _record(
        self, what: str, deployment_id: str, write: Callable[[], Awaitable[object]]
    ) -> None:
        """``write`` (in the background task); while the store is down, again after each
        of ``retry_delays``, then given up with an error.  The breaker works regardless."""
        attempts = len(self.retry_delays) + 1
        try:
            for attempt, delay in enumerate((*self.retry_delays, None), 1):
                try:
                    await write()
                    return
                except TollhouseError as exc:
                    if delay is None:
                        log.error(
                            "%s for %s not recorded after %d attempts: %s",
                            what,
                            deployment_id,
                            attempts,
                            exc.message,
                        )
                        return
                    log.warning(
                        "%s for %s not recorded (attempt %d of %d, again in %g s): %s",
                        what,
                        deployment_id,
                        attempt,
                        attempts,
                        delay,
                        exc.message,
                    )
                await asyncio.sleep(delay)
        except asyncio.CancelledError:
            log.error("%s for %s not recorded: the gateway is stopping", what, deployment_id)
            raise
        except Exception:
            log.exception("%s for %s not recorded", what, deployment_id)

    async def stop(self) -> None:
        """Let the scheduled work finish (bounded), then cancel what is left."""
        if not self._tasks:
            return
        pending = list(self._tasks)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(5):
                await asyncio.gather(*pending, return_exceptions=True)
        for task in pending:
            task.cancel()
