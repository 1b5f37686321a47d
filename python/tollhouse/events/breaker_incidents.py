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
resolves it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from tollhouse.control.incidents_book import IncidentBook
from tollhouse.routing.breaker import Breaker, State
from tollhouse.routing.router import Router

log = logging.getLogger("tollhouse.incidents")

DEFAULT_WORKSPACE = "default"
SEVERITY = "high"
MAX_PENDING = 256


class BreakerIncidents:
    def __init__(self, book: IncidentBook, router: Router) -> None:
        self.book = book
        self.router = router
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
            try:
                await self.book.open_or_join(
                    workspace,
                    source_kind="breaker",
                    source_ref=deployment_id,
                    title=title,
                    severity=SEVERITY,
                    route=route,
                    provider=provider,
                    model=model,
                    event={"type": "breaker.opened", "breaker": snapshot},
                )
            except Exception as exc:  # the store may be down: the breaker still works
                log.warning("breaker incident for %s not recorded: %s", deployment_id, exc)

    async def _closed(self, deployment_id: str, snapshot: dict[str, Any]) -> None:
        for workspace, _, _ in self.owners(deployment_id):
            try:
                await self.book.append_to_source(
                    workspace,
                    source_kind="breaker",
                    source_ref=deployment_id,
                    kind="breaker.closed",
                    data={"breaker": snapshot},
                )
            except Exception as exc:
                log.warning("breaker close for %s not recorded: %s", deployment_id, exc)

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
