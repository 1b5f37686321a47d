"""/v1/workspaces/{id}/incidents: list (filters, sort, pages), detail with the timeline,
notes, status moves (409 for an illegal one), 422 per field, the role matrix, the audit
chain, and what joins at read time (ingested events, failovers, policy blocks)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from tests.control._app import Gw, workspace_key

from tollhouse.control.audit_chain import audit_for
from tollhouse.control.incidents import DETAIL, ENTRY, INCIDENT
from tollhouse.control.incidents_book import book_for
from tollhouse.events.types import Event

BASE = "/v1/workspaces/default/incidents"


async def open_one(
    client: httpx.AsyncClient, admin: dict[str, str], **fields: Any
) -> dict[str, Any]:
    body = {"title": "Chat is slow", "severity": "high", **fields}
    r = await client.post(BASE, json=body, headers=admin)
    assert r.status_code == 201, r.text
    data: dict[str, Any] = r.json()["data"]
    return data


async def test_open_read_note_acknowledge_resolve(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    made = await open_one(client, admin, route_id="prod-chat", provider="openai")
    iid = made["incident_id"]
    assert made["id"] == iid and iid.startswith("inc_")
    assert made["status"] == "open" and made["severity"] == "high"
    assert made["source"] == {"kind": "manual", "ref": None}
    assert made["route_id"] == "prod-chat" and made["provider"] == "openai"
    for name in ("created_at", "updated_at", "opened_at"):
        assert made[name].endswith("Z")
    assert made["acknowledged_at"] is None and made["resolved_at"] is None
    assert [e["kind"] for e in made["timeline"]] == ["opened"]
    assert set(DETAIL["required"]) <= set(made) and set(DETAIL["properties"]) == set(made)
    assert made["timeline"][0]["data"] == {"author": "admin"}
    for name in ("related_events", "policy_violations", "failover_actions"):
        assert made[name] == []

    r = await client.post(f"{BASE}/{iid}/notes", json={"text": "looking"}, headers=admin)
    assert r.status_code == 201, r.text
    assert r.json()["data"]["kind"] == "note" and set(ENTRY["required"]) <= set(r.json()["data"])
    assert r.json()["data"]["data"] == {"author": "admin", "text": "looking"}

    r = await client.patch(f"{BASE}/{iid}/status", json={"status": "acknowledged"}, headers=admin)
    assert r.status_code == 200, r.text
    assert r.json()["data"]["status"] == "acknowledged"
    assert r.json()["data"]["acknowledged_at"] is not None
    r = await client.patch(f"{BASE}/{iid}/status", json={"status": "resolved"}, headers=admin)
    assert r.json()["data"]["status"] == "resolved" and r.json()["data"]["resolved_at"]

    got = (await client.get(f"{BASE}/{iid}", headers=admin)).json()["data"]
    assert [e["kind"] for e in got["timeline"]] == ["opened", "note", "acknowledged", "resolved"]
    assert got["timeline"][2]["data"] == {"actor": "admin", "from": "open"}
    assert got["updated_at"] >= got["created_at"]


@pytest.mark.parametrize(
    ("path", "moves", "bad"),
    [
        ("acknowledged", ["acknowledged"], ["open", "acknowledged"]),
        ("resolved", ["resolved"], ["open", "acknowledged", "resolved"]),
        ("ack then resolved", ["acknowledged", "resolved"], ["acknowledged", "open"]),
    ],
)
async def test_illegal_transitions_are_409(
    client: httpx.AsyncClient, admin: dict[str, str], path: str, moves: list[str], bad: list[str]
) -> None:
    iid = (await open_one(client, admin))["incident_id"]
    r = await client.patch(f"{BASE}/{iid}/status", json={"status": "open"}, headers=admin)
    assert r.status_code == 409 and r.json()["error"]["code"] == "conflict"
    for status in moves:
        r = await client.patch(f"{BASE}/{iid}/status", json={"status": status}, headers=admin)
        assert r.status_code == 200, (path, r.text)
    for status in bad:
        r = await client.patch(f"{BASE}/{iid}/status", json={"status": status}, headers=admin)
        assert r.status_code == 409, (path, status, r.text)
        assert "cannot become" in r.json()["error"]["message"]


@pytest.mark.parametrize(
    ("method", "suffix", "body", "fields"),
    [
        ("POST", "", {}, {"title", "severity"}),
        ("POST", "", {"title": "x", "severity": "urgent", "bogus": 1}, {"severity", "bogus"}),
        ("POST", "", {"title": " ", "severity": "low", "route_id": 5}, {"title", "route_id"}),
        ("POST", "/notes", {}, {"text"}),
        ("POST", "/notes", {"text": "x" * 10_001}, {"text"}),
        ("POST", "/notes", {"text": "hi", "author": "me"}, {"author"}),
        ("PATCH", "/status", {}, {"status"}),
        ("PATCH", "/status", {"status": "closed"}, {"status"}),
        ("PATCH", "/status", {"status": "resolved", "why": "x"}, {"why"}),
    ],
)
async def test_bad_bodies_are_422_per_field(
    client: httpx.AsyncClient,
    admin: dict[str, str],
    method: str,
    suffix: str,
    body: dict[str, Any],
    fields: set[str],
) -> None:
    iid = (await open_one(client, admin))["incident_id"]
    url = BASE if suffix == "" else f"{BASE}/{iid}{suffix}"
    r = await client.request(method, url, json=body, headers=admin)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] == "validation_error"
    assert set(r.json()["error"]["fields"]) == fields
    r = await client.request(method, url, content=b"[1]", headers=admin)
    assert r.status_code == 422
    r = await client.request(method, url, content=b"{nope", headers=admin)
    assert r.status_code == 400


async def test_unknown_incident_is_404(client: httpx.AsyncClient, admin: dict[str, str]) -> None:
    for method, suffix, body in (
        ("GET", "", None),
        ("POST", "/notes", {"text": "x"}),
        ("PATCH", "/status", {"status": "resolved"}),
    ):
        r = await client.request(method, f"{BASE}/inc_missing{suffix}", json=body, headers=admin)
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    r = await client.get("/v1/workspaces/nope/incidents", headers=admin)
    assert r.status_code == 404


async def test_list_filters_sort_and_pages(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    made = []
    for i, severity in enumerate(["low", "critical", "medium", "high", "high"]):
        made.append((await open_one(client, admin, title=f"i{i}", severity=severity))["id"])
    await client.patch(f"{BASE}/{made[0]}/status", json={"status": "acknowledged"}, headers=admin)
    await client.patch(f"{BASE}/{made[1]}/status", json={"status": "resolved"}, headers=admin)

    r = await client.get(BASE, headers=admin)
    body = r.json()
    assert body["total"] == 5 and [d["id"] for d in body["data"]] == made[::-1]  # newest first
    assert "timeline" not in body["data"][0]
    assert set(INCIDENT["properties"]) == set(body["data"][0])

    async def ids(query: str) -> list[str]:
        r = await client.get(f"{BASE}?{query}", headers=admin)
        assert r.status_code == 200, r.text
        return [d["id"] for d in r.json()["data"]]

    assert await ids("status=open&sort=created_at:asc") == made[2:]
    assert await ids("status=active&sort=created_at:asc") == [made[0], *made[2:]]
    assert await ids("status=resolved") == [made[1]]
    assert await ids("status=acknowledged,resolved&sort=created_at:asc") == made[:2]
    assert await ids("severity=high&sort=created_at:asc") == made[3:]
    assert await ids("status=active&severity=high&sort=created_at:asc") == made[3:]
    assert await ids("source=breaker") == []
    assert (await ids("sort=severity:desc"))[0] == made[1]
    assert (await ids("sort=severity:asc"))[0] == made[0]
    assert (await ids("sort=status:asc"))[-1] == made[1]

    r = await client.get(f"{BASE}?limit=2&page=2&sort=created_at:asc", headers=admin)
    assert [d["id"] for d in r.json()["data"]] == made[2:4]
    assert r.headers["x-total-count"] == "5"
    links = r.headers["link"]
    for rel, page in (("first", 1), ("prev", 1), ("next", 3), ("last", 3)):
        assert f"page={page}" in links.split(f'rel="{rel}"')[0].rsplit("<", 1)[1]
    for query, field in (
        ("status=closed", "status"),
        ("severity=urgent", "severity"),
        ("source=robot", "source"),
        ("sort=title:asc", "sort"),
        ("sort=severity:sideways", "sort"),
        ("limit=0", "limit"),
        ("page=x", "page"),
    ):
        r = await client.get(f"{BASE}?{query}", headers=admin)
        assert r.status_code == 422 and field in r.json()["error"]["fields"], query


async def test_role_matrix(client: httpx.AsyncClient, admin: dict[str, str]) -> None:
    iid = (await open_one(client, admin))["id"]
    viewer = await workspace_key(client, admin, "viewer")
    member = await workspace_key(client, admin, "member")
    assert (await client.get(BASE, headers=viewer)).status_code == 200
    assert (await client.get(f"{BASE}/{iid}", headers=viewer)).status_code == 200
    for method, url, body in (
        ("POST", BASE, {"title": "t", "severity": "low"}),
        ("POST", f"{BASE}/{iid}/notes", {"text": "x"}),
        ("PATCH", f"{BASE}/{iid}/status", {"status": "acknowledged"}),
    ):
        r = await client.request(method, url, json=body, headers=viewer)
        assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden", url
    r = await client.post(f"{BASE}/{iid}/notes", json={"text": "mine"}, headers=member)
    assert r.status_code == 201
    member_actor = r.json()["data"]["data"]["author"]
    assert member_actor.startswith("apikey:")
    r = await client.patch(f"{BASE}/{iid}/status", json={"status": "acknowledged"}, headers=member)
    assert r.status_code == 200
    assert (await client.get(BASE)).status_code == 401
    assert (await client.get(BASE, headers={"Authorization": "Bearer wk_nope"})).status_code == 401
    # another workspace: its key sees nothing of default's, and default's none of its
    r = await client.post("/v1/workspaces", json={"name": "B"}, headers=admin)
    other = r.json()["data"]["id"]
    r = await client.post(
        f"/v1/workspaces/{other}/api-keys", json={"name": "o", "role": "owner"}, headers=admin
    )
    owner_b = {"Authorization": f"Bearer {r.json()['key']}"}
    assert (await client.get(BASE, headers=owner_b)).status_code == 403
    assert (await client.get(f"{BASE}/{iid}", headers=owner_b)).status_code == 403
    assert (
        await client.get(f"/v1/workspaces/{other}/incidents", headers=member)
    ).status_code == 403
    # the id of default's incident under workspace B is not found
    r = await client.get(f"/v1/workspaces/{other}/incidents/{iid}", headers=owner_b)
    assert r.status_code == 404
    r = await client.get(f"/v1/workspaces/{other}/incidents", headers=owner_b)
    assert r.json()["data"] == []


async def test_changes_go_to_the_audit_chain(
    gw: Gw, client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    iid = (await open_one(client, admin))["id"]
    await client.post(f"{BASE}/{iid}/notes", json={"text": "x"}, headers=admin)
    await client.patch(f"{BASE}/{iid}/status", json={"status": "resolved"}, headers=admin)
    log = audit_for(gw.store)
    await log.flush()
    entries = await log.query(limit=100)
    paths = [e.payload.get("path") for e in entries if e.actor == "admin"]
    assert f"{BASE}/{iid}/notes" in paths and f"{BASE}/{iid}/status" in paths and BASE in paths
    types = {e.event_type for e in entries if e.actor == "admin"}
    assert {
        "workspaces.incidents.create",
        "workspaces.incidents.notes.create",
        "workspaces.incidents.status.update",
    } <= types
    opened = [e for e in entries if e.event_type == "incident.opened"]
    assert len(opened) == 1 and opened[0].payload["data"]["incident_id"] == iid
    assert (await log.verify())["valid"] is True


async def test_ingested_events_failovers_and_blocks_join_the_timeline(
    gw: Gw, client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    book = book_for(gw.store)
    joined = await book.open_or_join(
        "default",
        source_kind="alert_rule",
        source_ref="rule_x",
        title="Errors on prod-chat",
        severity="critical",
        route="prod-chat",
        provider="openai",
    )
    iid = joined.incident_id
    ingest = [
        ("runtime", {"route_id": "prod-chat", "event_id": "e1", "timestamp": 1}),  # joins
        ("runtime", {"route_id": "other", "event_id": "e2", "timestamp": 1}),
        ("runtime", {"route_id": "x", "event_id": "e3", "timestamp": 1, "provider": "OpenAI"}),
        ("change", {"provider": "openai", "change_id": "c1", "classification": "deprecation"}),
        ("change", {"provider": "anthropic", "change_id": "c2", "classification": "pricing"}),
    ]
    for n, (kind, body) in enumerate(ingest):
        r = await client.post(
            f"/v1/ingest/{kind}", json=body, headers={**admin, "Idempotency-Key": f"k{n}"}
        )
        assert r.status_code == 202, r.text
    # another workspace's event on the same route does not join
    r = await client.post("/v1/workspaces", json={"name": "B"}, headers=admin)
    other = r.json()["data"]["id"]
    r = await client.post(
        f"/v1/ingest/runtime?workspace={other}",
        json={"route_id": "prod-chat", "event_id": "e9", "timestamp": 1},
        headers={**admin, "Idempotency-Key": "kb"},
    )
    assert r.status_code == 202
    # enforcement events as the gateway records them (dispatcher listener -> audit chain)
    log = audit_for(gw.store)
    failover = {"action": "failover", "workspaceId": "default", "routeId": "prod-chat",
                "from": "openai", "to": "azure", "reason": "circuit open"}  # fmt: skip
    log.record_event(Event("provider.failover", failover))
    log.record_event(Event("provider.failover", {**failover, "workspaceId": other}))
    log.record_event(Event("provider.failover", {**failover, "routeId": "embed"}))
    log.record_event(Event("policy.blocked", {"ruleId": "no-secrets", "model": "prod-chat"}))
    log.record_event(Event("policy.blocked", {"ruleId": "no-secrets", "model": "embed"}))
    # a block by workspace B's own policy is B's, not default's
    r = await client.post(
        f"/v1/workspaces/{other}/policies",
        json={"name": "no pii", "keywords": ["ssn"]},
        headers=admin,
    )
    assert r.status_code == 201, r.text
    b_policy = r.json()["data"]["id"]
    log.record_event(Event("policy.blocked", {"ruleId": b_policy, "model": "prod-chat"}))
    b_incident = await book.open_or_join(
        other, source_kind="alert_rule", source_ref="rule_b", title="B", severity="low"
    )

    got = (await client.get(f"{BASE}/{iid}", headers=admin)).json()["data"]
    related = got["related_events"]
    assert sorted(e["data"].get("event_id") or e["data"]["change_id"] for e in related) == [
        "c1", "e1", "e3",
    ]  # fmt: skip
    assert {e["kind"] for e in related} == {"ingest.runtime", "ingest.change"}
    assert [e["data"]["to"] for e in got["failover_actions"]] == ["azure"]
    assert [e["data"]["ruleId"] for e in got["policy_violations"]] == ["no-secrets"]
    r = await client.get(
        f"/v1/workspaces/{other}/incidents/{b_incident.incident_id}", headers=admin
    )
    b_got = r.json()["data"]
    assert [e["data"]["ruleId"] for e in b_got["policy_violations"]] == [b_policy]
    assert [e["data"]["event_id"] for e in b_got["related_events"]] == ["e9"]  # no route: all
    assert [e["data"]["workspaceId"] for e in b_got["failover_actions"]] == [other]
    kinds = [e["kind"] for e in got["timeline"]]
    assert kinds[0] == "opened" and len(kinds) == 6
    assert sorted(kinds[1:]) == sorted(
        ["ingest.runtime", "ingest.runtime", "ingest.change", "provider.failover", "policy.blocked"]
    )
    # once resolved, later events stay out
    r = await client.patch(f"{BASE}/{iid}/status", json={"status": "resolved"}, headers=admin)
    assert r.status_code == 200
    r = await client.post(
        "/v1/ingest/runtime",
        json={"route_id": "prod-chat", "event_id": "late", "timestamp": 1},
        headers={**admin, "Idempotency-Key": "late"},
    )
    assert r.status_code == 202
    got = (await client.get(f"{BASE}/{iid}", headers=admin)).json()["data"]
    assert "late" not in {e["data"].get("event_id") for e in got["related_events"]}
    assert len(got["related_events"]) == 3
