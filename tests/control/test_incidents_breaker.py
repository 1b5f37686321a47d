"""A deployment's breaker opening against a real failing upstream on 127.0.0.1 opens one
breaker incident (in the default workspace, or in the workspace of the failover policy
that names the deployment) and sends one ``incident.opened`` to a real webhook receiver;
re-opening joins it, closing appends to its timeline."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest
from tests.routing._flaky import Flaky, Gate, gateway, provider
from tests.support.receiver import Receiver

from tollhouse.control.audit_chain import audit_for
from tollhouse.control.incidents_book import IncidentBook
from tollhouse.errors import Unavailable
from tollhouse.store import SqlStore
from tollhouse.store._sql import Params, Step

CHAT: dict[str, Any] = {"model": "chat", "messages": [{"role": "user", "content": "hello"}]}
ROUTING: dict[str, Any] = {
    "retries": 0,
    "backoff_base_ms": 1,
    "breaker": {"failures": 3, "min_requests": 1000, "cooldown_ms": 300},
}


@pytest.fixture
def ups() -> Iterator[tuple[Flaky, Flaky]]:
    with Flaky() as a, Flaky() as b:
        yield a, b


def config(a: Flaky, b: Flaky, hook_url: str) -> dict[str, Any]:
    return {
        "providers": {"a": provider(a.url), "b": provider(b.url)},
        "models": {
            "chat": {
                "deployments": [
                    {"provider": "a", "model": "m-a", "weight": 1000000},
                    {"provider": "b", "model": "m-b", "weight": 1},
                ]
            }
        },
        "routing": ROUTING,
        "webhooks": {
            "endpoints": [{"url": hook_url, "secret": "whsec-test"}],
            "allow_private": ["127.0.0.1/32"],
        },
    }


async def incidents(book: IncidentBook, count: int = 1) -> list[tuple[Any, ...]]:
    """Rows of the incidents table once ``count`` exist (polled, bounded)."""
    for _ in range(200):
        rows = await book.store._fetch(
            "SELECT id, workspace_id, source_kind, source_ref, route_id, provider, status "
            "FROM incidents ORDER BY opened_at"
        )
        if len(rows) >= count:
            return rows
        await asyncio.sleep(0.02)
    raise AssertionError(f"expected {count} incidents, have {len(rows)}")


async def kinds(book: IncidentBook, incident_id: str, until: str | None = None) -> list[str]:
    for _ in range(200):
        found = [e.kind for e in await book.timeline(incident_id)]
        if until is None or until in found:
            return found
        await asyncio.sleep(0.02)
    raise AssertionError(f"no {until!r} in the timeline: {found}")


async def test_breaker_open_opens_one_incident_and_one_webhook(
    tmp_path: Path, ups: tuple[Flaky, Flaky]
) -> None:
    a, b = ups
    async with Receiver() as rx, gateway(tmp_path, config(a, b, rx.url)) as g:
        book = g.gw.incidents
        assert book is not None
        a.always = ("status", 500)
        for _ in range(3):
            code, headers, _ = await g.chat(CHAT)
            assert code == 200 and headers["x-gate-provider"] == "b"
        assert g.gw.router.board.get("a/m-a").state == "open"
        ((iid, ws, kind, ref, route, prov, status),) = await incidents(book)
        assert (ws, kind, ref, route, prov, status) == (
            "default", "breaker", "a/m-a", "chat", "a", "open",
        )  # fmt: skip
        (hook,) = await rx.wait_for(1)
        event = orjson.loads(hook.body)
        assert event["event"] == "incident.opened"
        assert event["data"]["incident_id"] == iid and event["data"]["severity"] == "high"
        assert hook.headers["webhook-signature"].startswith("v1,")  # signed
        # the probe after the cooldown fails: the breaker opens again and joins
        await asyncio.sleep(0.35)
        code, headers, _ = await g.chat(CHAT)
        assert code == 200 and headers["x-gate-attempts"] == "2"
        assert await kinds(book, iid, until="joined") == ["opened", "joined"]
        # the upstream recovers: the next probe closes the breaker
        a.always = None
        await asyncio.sleep(0.35)
        code, headers, _ = await g.chat(CHAT)
        assert headers["x-gate-provider"] == "a"
        assert (await kinds(book, iid, until="breaker.closed"))[-1] == "breaker.closed"
        assert len(await incidents(book)) == 1
        await asyncio.sleep(0.1)  # nothing more is on its way to the receiver
        assert [orjson.loads(r.body)["event"] for r in rx.requests] == ["incident.opened"]
        # the audit chain has it too
        log = audit_for(g.gw.store)
        await log.flush()
        (entry,) = await log.query(event_type="incident.opened")
        assert entry.workspace_id == "default" and entry.payload["data"]["incident_id"] == iid


async def test_breaker_incident_goes_to_the_failover_policy_workspace(
    tmp_path: Path, ups: tuple[Flaky, Flaky]
) -> None:
    a, b = ups
    async with Receiver() as rx, gateway(tmp_path, config(a, b, rx.url)) as g:
        g.gw.router.policies.create(
            "ws-prod",
            {
                "route_id": "chat",
                "primary_endpoint": "a",
                "fallback_endpoints": ["b"],
                "conditions": {"error_rate_threshold": 0.99},
            },
        )
        a.always = ("status", 500)
        for _ in range(3):
            code, _, _ = await g.chat(CHAT)
            assert code == 200
        book = g.gw.incidents
        assert book is not None
        ((_, ws, kind, ref, route, _, _),) = await incidents(book)
        assert (ws, kind, ref, route) == ("ws-prod", "breaker", "a/m-a", "chat")


class Outage(SqlStore):
    """The gateway's real store behind a switch: its first ``failures`` statements fail as
    a store that is down does (``Unavailable``), the rest reach the store."""

    def __init__(self, store: SqlStore, failures: int) -> None:
        self.store, self.failures, self.refused = store, failures, 0
        self.dialect = store.dialect

    def _gate(self) -> None:
        if self.refused < self.failures:
            self.refused += 1
            raise Unavailable("store unavailable (outage)")

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def _fetch(self, sql: str, params: Params = ()) -> list[tuple[Any, ...]]:
        self._gate()
        return await self.store._fetch(sql, params)

    async def _transaction(self, steps: Sequence[Step]) -> list[int]:
        self._gate()
        return await self.store._transaction(steps)

    async def _insert_many(self, batches: Sequence[tuple[str, Sequence[Params]]]) -> None:
        self._gate()
        await self.store._insert_many(batches)


async def open_breaker_during(
    g: Gate, a: Flaky, failures: int, delays: tuple[float, ...]
) -> tuple[IncidentBook, Outage]:
    """Open deployment a's breaker while the incident book's store is down for
    ``failures`` statements; the answers are not delayed by it."""
    book = g.gw.incidents
    assert book is not None and g.gw.breaker_incidents is not None
    outage = Outage(book.store, failures)
    g.gw.breaker_incidents.book = IncidentBook(outage, book.emit)
    g.gw.breaker_incidents.retry_delays = delays
    a.always = ("status", 500)
    for _ in range(3):
        code, headers, _ = await g.chat(CHAT)
        assert code == 200 and headers["x-gate-provider"] == "b"
    assert g.gw.router.board.get("a/m-a").state == "open"
    return book, outage


async def test_a_breaker_incident_is_retried_while_the_store_is_down(
    tmp_path: Path, ups: tuple[Flaky, Flaky], caplog: pytest.LogCaptureFixture
) -> None:
    a, b = ups
    caplog.set_level(logging.WARNING, logger="tollhouse.incidents")
    async with Receiver() as rx, gateway(tmp_path, config(a, b, rx.url)) as g:
        book, outage = await open_breaker_during(g, a, 3, (0.05, 0.1, 0.2, 0.4, 0.8))
        ((iid, ws, kind, ref, *_),) = await incidents(book)
        assert (ws, kind, ref) == ("default", "breaker", "a/m-a") and outage.refused == 3
        assert await kinds(book, iid) == ["opened"]
        (hook,) = await rx.wait_for(1)
        assert orjson.loads(hook.body)["data"]["incident_id"] == iid
        retries = [r.getMessage() for r in caplog.records if "attempt" in r.getMessage()]
        assert [m.split(", again")[0] for m in retries] == [
            f"breaker incident for a/m-a not recorded (attempt {n} of 6" for n in (1, 2, 3)
        ]
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_a_breaker_incident_is_given_up_after_its_bound(
    tmp_path: Path, ups: tuple[Flaky, Flaky], caplog: pytest.LogCaptureFixture
) -> None:
    a, b = ups
    caplog.set_level(logging.WARNING, logger="tollhouse.incidents")
    async with Receiver() as rx, gateway(tmp_path, config(a, b, rx.url)) as g:
        book, outage = await open_breaker_during(g, a, 1000, (0.01, 0.02))
        async with asyncio.timeout(10):
            while not [r for r in caplog.records if r.levelno >= logging.ERROR]:
                await asyncio.sleep(0.01)
        (error,) = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
        assert error == (
            "breaker incident for a/m-a not recorded after 3 attempts: store unavailable (outage)"
        )
        assert outage.refused == 3  # bounded: nothing more is tried
        await asyncio.sleep(0.1)
        assert outage.refused == 3 and rx.requests == []
        assert await book.store._fetch("SELECT id FROM incidents") == []
