"""The hash-chained audit log: changes are recorded, listed, paged, verified; tampering,
deletion and reordering are found; concurrent appenders (two stores, both backends) keep
one unbroken chain."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from tests.control._app import Gw, workspace_key

from tollhouse.config import Config
from tollhouse.control._access import ROLES
from tollhouse.control.audit_chain import AuditLog, audit_for, entry_hash
from tollhouse.control.audit_log import audit_of, event_type_of
from tollhouse.events.dispatcher import WebhookDispatcher
from tollhouse.events.types import BUDGET_ALERT, BUDGET_EXCEEDED, PROVIDER_FAILOVER, Event
from tollhouse.gateway import Gateway
from tollhouse.store import SqlStore, open_store


async def test_changes_are_recorded(
    gw: Gw, client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    created = await client.post("/v1/keys", json={"name": "a"}, headers=admin)
    assert created.status_code in (200, 201)
    h = created.json()["data"]["hash"]
    assert (await client.patch(f"/v1/keys/{h}", json={"disabled": True}, headers=admin)).is_success
    # a refused change is not a change
    assert (await client.post("/v1/keys", json={"name": 5}, headers=admin)).status_code == 422
    assert (await client.post("/v1/keys", json={"name": "x"})).status_code == 401
    r = await client.get("/v1/audit/logs", headers=admin)
    assert r.status_code == 200
    entries = r.json()["entries"]
    assert [e["eventType"] for e in entries] == ["keys.update", "keys.create"]
    assert all(e["actor"] == "admin" for e in entries)
    assert entries[0]["payload"]["params"] == {"hash": h}
    assert entries[0]["prevHash"] == entries[1]["hash"]
    assert r.json()["nextCursor"] is None
    # the raw key never reaches the log
    assert created.json()["key"] not in r.text
    v = await client.get("/v1/audit/verify", headers=admin)
    assert v.json() == {"valid": True, "checkedCount": 2}


async def test_auth(client: httpx.AsyncClient, admin: dict[str, str]) -> None:
    for path in ("/v1/audit/logs", "/v1/audit/verify"):
        assert (await client.get(path)).status_code == 401
        bad = await client.get(path, headers={"Authorization": "Bearer nope"})
        assert bad.status_code == 401
        assert bad.json()["error"]["code"] == "invalid_key"
    key = (await client.post("/v1/keys", json={"name": "k"}, headers=admin)).json()["key"]
    r = await client.get("/v1/audit/logs", headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 401


async def test_workspace_keys_read_their_own_workspace(
    gw: Gw, client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    other = (await client.post("/v1/workspaces", json={"name": "B"}, headers=admin)).json()
    ws_b = other["data"]["id"]
    keys = {role: await workspace_key(client, admin, role) for role in ROLES}
    b_admin = await workspace_key(client, admin, "admin", ws_b)
    assert (await client.post("/v1/keys", json={"name": "global"}, headers=admin)).is_success
    # ingest names no workspace: filed under the calling key's own
    ingest = {**keys["member"], "Idempotency-Key": "i-1"}
    body = {"route_id": "r", "event_id": "e1", "timestamp": "2026-11-23T10:00:00Z"}
    assert (await client.post("/v1/ingest/runtime", json=body, headers=ingest)).status_code == 202
    await audit_of(gw).flush()

    everything = (await client.get("/v1/audit/logs", headers=admin)).json()["entries"]
    by_ws: dict[str | None, list[str]] = {}
    for e in everything:
        by_ws.setdefault(e["workspaceId"], []).append(e["id"])
    assert set(by_ws) == {None, "default", ws_b}  # workspaces.create and keys.create: None
    ingested = [e for e in everything if e["eventType"] == "ingest.runtime.create"]
    assert [e["workspaceId"] for e in ingested] == ["default"]
    assert ingested[0]["actor"].startswith("apikey:")

    for role in ("owner", "admin"):
        for query in ("", "?workspaceId=default"):
            r = await client.get(f"/v1/audit/logs{query}", headers=keys[role])
            assert r.status_code == 200, (role, query, r.text)
            assert [e["id"] for e in r.json()["entries"]] == by_ws["default"]
        # filters still apply within the workspace
        r = await client.get("/v1/audit/logs?eventType=ingest.runtime.create", headers=keys[role])
        assert [e["id"] for e in r.json()["entries"]] == [ingested[0]["id"]]
        for query in (f"?workspaceId={ws_b}", "?workspaceId=nope"):
            r = await client.get(f"/v1/audit/logs{query}", headers=keys[role])
            assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden", query
    r = await client.get("/v1/audit/logs", headers=b_admin)
    assert [e["id"] for e in r.json()["entries"]] == by_ws[ws_b]
    assert (
        await client.get("/v1/audit/logs?workspaceId=default", headers=b_admin)
    ).status_code == 403
    # members and viewers do not read the log; the admin key filters any workspace
    for role in ("member", "viewer"):
        for query in ("", "?workspaceId=default"):
            r = await client.get(f"/v1/audit/logs{query}", headers=keys[role])
            assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
    r = await client.get(f"/v1/audit/logs?workspaceId={ws_b}", headers=admin)
    assert [e["id"] for e in r.json()["entries"]] == by_ws[ws_b]
    # the chain is verified whole, by the admin key only
    for headers in (*keys.values(), b_admin):
        r = await client.get("/v1/audit/verify", headers=headers)
        assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
    r = await client.get("/v1/audit/verify", headers=admin)
    assert r.json() == {"valid": True, "checkedCount": len(everything)}


async def test_filters_and_cursor(gw: Gw, client: httpx.AsyncClient, admin: dict[str, str]) -> None:
    log = audit_of(gw)
    for i in range(7):
        await log.append("alice" if i % 2 else "bob", "thing.create", {"i": i}, ts=1000.0 + i)
    await log.append("bob", "thing.delete", {"i": 7}, ts=2000.0)
    r = await client.get("/v1/audit/logs?actor=bob&eventType=thing.create", headers=admin)
    assert [e["payload"]["i"] for e in r.json()["entries"]] == [6, 4, 2, 0]
    r = await client.get("/v1/audit/logs?from=1002&to=1970-01-01T00:16:45Z", headers=admin)
    assert [e["payload"]["i"] for e in r.json()["entries"]] == [5, 4, 3, 2]
    seen: list[int] = []
    url = "/v1/audit/logs?limit=3"
    pages = 0
    while url:
        r = await client.get(url, headers=admin)
        body = r.json()
        seen += [e["payload"]["i"] for e in body["entries"]]
        pages += 1
        link = r.headers.get("link")
        if body["nextCursor"] is None:
            assert link is None
            break
        assert link is not None and 'rel="next"' in link
        url = link[link.index("<") + 1 : link.index(">")]
    assert seen == [7, 6, 5, 4, 3, 2, 1, 0]
    assert pages == 3


@pytest.mark.parametrize(
    "query",
    [
        "limit=0",
        "limit=101",
        "limit=x",
        "from=yesterday",
        "cursor=abc",
        "cursor=" + "9" * 20,
        "cursor=²",
        "from=20&to=10",
        "to=-1",
    ],
)
async def test_bad_queries_are_422(
    client: httpx.AsyncClient, admin: dict[str, str], query: str
) -> None:
    r = await client.get(f"/v1/audit/logs?{query}", headers=admin)
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "validation_error"
    assert r.json()["error"]["fields"]


@pytest.mark.parametrize(
    ("sql", "bad_seq", "checked", "reason"),
    [
        ("UPDATE audit_log SET payload = '{\"i\": 99}' WHERE seq = 3", 3, 2, "hash does not"),
        ("UPDATE audit_log SET actor = 'mallory' WHERE seq = 2", 2, 1, "hash does not match"),
        ("DELETE FROM audit_log WHERE seq = 2", 3, 1, "sequence gap"),
        ("UPDATE audit_log SET hash = 'f' WHERE seq = 4", 4, 3, "hash does not match"),
        ("UPDATE audit_log SET seq = 9 WHERE seq = 3", 4, 2, "sequence gap"),
    ],
)
async def test_tampering_is_found(
    gw: Gw,
    client: httpx.AsyncClient,
    admin: dict[str, str],
    sql: str,
    bad_seq: int,
    checked: int,
    reason: str,
) -> None:
    log = audit_of(gw)
    for i in range(5):
        await log.append("admin", "thing.create", {"i": i})
    assert (await log.verify())["valid"] is True
    await gw.store._transaction([(sql, ())])
    r = await client.get("/v1/audit/verify", headers=admin)
    body = r.json()
    assert body["valid"] is False
    assert body["firstBadEntry"]["seq"] == bad_seq
    assert reason in body["firstBadEntry"]["reason"]
    assert body["checkedCount"] == checked


async def test_relinked_forgery_is_found(gw: Gw) -> None:
    """Rewriting an entry and recomputing its own hash still breaks the next link."""
    log = audit_of(gw)
    for i in range(3):
        await log.append("admin", "thing.create", {"i": i})
    rows = await gw.store._fetch("SELECT id, ts, prev_hash FROM audit_log WHERE seq = 2")
    eid, ts, prev = rows[0]
    forged = entry_hash(2, eid, float(ts), "admin", "thing.create", None, {"i": 42}, prev)
    await gw.store._transaction(
        [("UPDATE audit_log SET payload = ?, hash = ? WHERE seq = 2", ('{"i": 42}', forged))]
    )
    result = await log.verify()
    assert result["valid"] is False
    assert result["firstBadEntry"]["seq"] == 3
    assert "prevHash" in result["firstBadEntry"]["reason"]


async def test_submit_is_queued_and_flushed(gw: Gw) -> None:
    log = audit_of(gw)
    for i in range(50):
        log.submit("admin", "thing.create", {"i": i})
    await log.flush()
    entries = await log.query(limit=100)
    assert [e.payload["i"] for e in entries] == list(range(49, -1, -1))
    assert log.appended == 50 and log.dropped == 0
    await log.stop()


async def test_stop_past_its_bound_says_what_it_left(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A store that cannot take the entries: stop gives up after its bound and logs the
    loss as an error instead of dropping the queue silently."""
    store = open_store(f"sqlite:///{tmp_path}/a.db")
    await store.open()
    assert isinstance(store, SqlStore)
    log = AuditLog(store)
    await store.close()  # every append now fails (and is retried)
    for i in range(3):
        log.submit("admin", "thing.create", {"i": i})
    with caplog.at_level("ERROR", logger="tollhouse.audit"):
        await log.stop(timeout=0.2)
    assert [r.getMessage() for r in caplog.records] == [
        "audit log stopping: 2 queued entries not appended"
    ]
    assert log.appended == 0


@pytest.fixture(params=["sqlite", "postgres"])
def chain_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/audit.db"
    url: str = request.getfixturevalue("postgres_url")
    return url


async def test_concurrent_appenders_keep_one_chain(chain_url: str) -> None:
    stores: list[SqlStore] = [open_store(chain_url) for _ in range(3)]
    for s in stores:
        await s.open()
    try:
        logs = [AuditLog(s) for s in stores]

        async def burst(n: int, log: AuditLog) -> None:
            for i in range(20):
                await log.append(f"w{n}", "thing.create", {"i": i})

        await asyncio.gather(*(burst(n, log) for n, log in enumerate(logs)))
        assert await logs[0].verify() == {"valid": True, "checkedCount": 60}
    finally:
        for s in stores:
            await s.close()


def test_event_types() -> None:
    assert event_type_of("POST", "/v1/keys") == "keys.create"
    assert event_type_of("DELETE", "/v1/keys/{hash}") == "keys.delete"
    assert event_type_of("POST", "/v1/workspaces/{id}/alert-rules/{rule}/test") == (
        "workspaces.alert-rules.test.create"
    )


async def test_enforcement_events_from_the_gateway(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Events the gateway emits (budget exceeded, failover) reach the chain, and a gateway
    stopping appends what is still queued."""
    url = f"sqlite:///{tmp_path}/gw.db"
    gw = Gateway.from_config(Config(store=url))
    await gw.start()
    assert isinstance(gw.store, SqlStore)
    audit = audit_for(gw.store)
    try:
        gw.events.emit(Event(BUDGET_EXCEEDED, {"limit": 1.0}, key_name="k1"))
        gw.events.emit(Event(PROVIDER_FAILOVER, {"from": "a", "to": "b"}))
        gw.events.emit(Event(BUDGET_ALERT, {"threshold": 0.8}))  # an alert, not enforcement
    finally:
        with caplog.at_level("WARNING"):
            await gw.stop()
    # what the stop did with the queue (a failure below then says why)
    assert (audit.appended, audit.dropped, audit.pending) == (2, 0, 0), caplog.text
    store = open_store(url)
    await store.open()
    try:
        log = AuditLog(store)
        entries = await log.query()
        assert [(e.actor, e.event_type) for e in entries] == [
            ("gateway", PROVIDER_FAILOVER),
            ("gateway", BUDGET_EXCEEDED),
        ]
        assert entries[1].payload["keyName"] == "k1"
        assert entries[1].payload["data"] == {"limit": 1.0}
        assert await log.verify() == {"valid": True, "checkedCount": 2}
    finally:
        await store.close()


def test_a_failing_listener_does_not_stop_emit() -> None:
    seen: list[str] = []

    def broken(event: Event) -> None:
        raise RuntimeError("boom")

    dispatcher = WebhookDispatcher()
    dispatcher.listen(broken)
    dispatcher.listen(lambda e: seen.append(e.type))
    dispatcher.emit(Event(BUDGET_EXCEEDED, {}))
    assert seen == [BUDGET_EXCEEDED]
