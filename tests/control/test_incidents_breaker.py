"""A deployment's breaker opening against a real failing upstream on 127.0.0.1 opens one
breaker incident (in the default workspace, or in the workspace of the failover policy
that names the deployment) and sends one ``incident.opened`` to a real webhook receiver;
re-opening joins it, closing appends to its timeline."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from tests.routing._flaky import Flaky, gateway, provider
from tests.support.receiver import Receiver

from tollhouse.control.audit_chain import audit_for
from tollhouse.control.incidents_book import IncidentBook

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
