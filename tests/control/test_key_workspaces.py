"""Virtual keys belong to a workspace, and so does their traffic: a running ``tollhouse
serve`` over a real upstream on 127.0.0.1; keys made through ``/v1/keys`` in two
workspaces; A's failing requests fire A's error-rate rule only (B's and default's stay
quiet), a budget exceeded by A's key is in A's audit log, not B's, and a policy block
(A's policies block A's keys only) joins the incidents of the blocked key's workspace."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from tests.control._app import workspace_key
from tests.support.gateway import Stack
from tests.support.receiver import Receiver
from tests.support.upstream import Upstream

ADMIN = "adm_" + "wsattr" * 6
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}
INTERVAL = 0.2


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    with Upstream() as up:
        yield up


@pytest.fixture
def stack(tmp_path: Path, upstream: Upstream) -> Iterator[Stack]:
    s = Stack(
        tmp_path,
        upstream,
        admin_key=ADMIN,
        webhooks={"allow_private": ["127.0.0.1"]},
        alerts={"interval_s": INTERVAL},
    )
    with s.gateway:
        yield s


class Api:
    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client
        self.admin = {"Authorization": f"Bearer {ADMIN}"}

    async def workspace(self, name: str) -> str:
        r = await self.client.post("/v1/workspaces", json={"name": name}, headers=self.admin)
        assert r.status_code == 201, r.text
        wid: str = r.json()["data"]["id"]
        return wid

    async def workspace_key(self, wid: str, role: str) -> dict[str, str]:
        return await workspace_key(self.client, self.admin, role, wid)

    async def key(self, body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        r = await self.client.post("/v1/keys", json=body, headers=self.admin)
        assert r.status_code == 201, r.text
        answer = r.json()
        return answer["key"], answer["data"]

    async def create(self, wid: str, kind: str, body: dict[str, Any]) -> str:
        r = await self.client.post(f"/v1/workspaces/{wid}/{kind}", json=body, headers=self.admin)
        assert r.status_code == 201, r.text
        rid: str = r.json()["data"]["id"]
        return rid

    async def chat(self, raw: str, n: int) -> list[int]:
        codes = []
        for _ in range(n):
            r = await self.client.post(
                "/v1/chat/completions", json=CHAT, headers={"Authorization": f"Bearer {raw}"}
            )
            codes.append(r.status_code)
        return codes


@pytest.fixture
async def api(stack: Stack) -> AsyncIterator[Api]:
    async with httpx.AsyncClient(base_url=stack.gateway.base_url, timeout=30) as client:
        yield Api(client)


async def test_keys_name_their_workspace(api: Api) -> None:
    wid = await api.workspace("A")
    _, plain = await api.key({"name": "plain"})
    assert plain["workspace_id"] == "default"
    _, in_a = await api.key({"name": "a", "workspace_id": wid})
    assert in_a["workspace_id"] == wid
    r = await api.client.get(f"/v1/keys/{in_a['hash']}", headers=api.admin)
    assert r.json()["data"]["workspace_id"] == wid
    listed = (await api.client.get("/v1/keys", headers=api.admin)).json()["data"]
    assert {(k["name"], k["workspace_id"]) for k in listed} >= {("plain", "default"), ("a", wid)}
    for bad in ("ws_nope", "", 7, None, "x" * 129):
        r = await api.client.post(
            "/v1/keys", json={"name": "b", "workspace_id": bad}, headers=api.admin
        )
        assert r.status_code == 422, (bad, r.text)
        assert r.json()["error"]["code"] == "validation_error"
    # the workspace is chosen when the key is made
    r = await api.client.patch(
        f"/v1/keys/{in_a['hash']}", json={"workspace_id": "default"}, headers=api.admin
    )
    assert r.status_code == 422, r.text
    # /v1/keys stays with the admin key: a workspace owner's key is refused
    owner = await api.workspace_key(wid, "owner")
    r = await api.client.post("/v1/keys", json={"name": "c"}, headers=owner)
    assert r.status_code in (401, 403), r.text


def fired(rx: Receiver) -> list[tuple[str, str]]:
    out = []
    for req in rx.requests:
        body = orjson.loads(req.body)
        out.append((body["data"]["ruleId"], body["event"]))
    return out


async def test_a_workspace_rule_measures_its_own_keys(api: Api, upstream: Upstream) -> None:
    a, b = await api.workspace("A"), await api.workspace("B")
    raw_a, _ = await api.key({"name": "a", "workspace_id": a})
    raw_b, _ = await api.key({"name": "b", "workspace_id": b})
    async with Receiver() as rx:
        rules = {}
        for wid in (a, b, "default"):
            hook = await api.create(
                wid, "deliveries", {"name": "hook", "type": "webhook", "config": {"url": rx.url}}
            )
            condition = {"metric": "error_rate", "threshold": 0.5, "window_seconds": 60}
            rules[wid] = await api.create(
                wid,
                "alert-rules",
                {"name": f"errors {wid}", "condition": condition, "delivery_targets": [hook]},
            )
        assert set(await api.chat(raw_b, 3)) == {200}  # B healthy
        upstream.fail_next(500, times=1000)
        assert set(await api.chat(raw_a, 4)) == {502}  # A failing
        async with asyncio.timeout(15):
            while not fired(rx):
                await asyncio.sleep(0.02)
        await asyncio.sleep(5 * INTERVAL + 0.3)  # a few more rounds: nothing else fires
        assert fired(rx) == [(rules[a], "alert.fired")]
        event = orjson.loads(rx.requests[0].body)
        # B's healthy rows are not A's: every request A's rule counted failed
        assert event["teamId"] == a and event["data"]["value"] == 1.0
        assert 1 <= event["data"]["requests"] <= 4  # a round may come before the last row


async def test_a_budget_exceeded_is_in_its_workspace_audit_log(api: Api) -> None:
    a, b = await api.workspace("A"), await api.workspace("B")
    raw_a, key_a = await api.key({"name": "tight", "workspace_id": a, "limit": 0.000001})
    r = await api.client.post(
        "/v1/chat/completions", json=CHAT, headers={"Authorization": f"Bearer {raw_a}"}
    )
    assert (r.status_code, r.json()["error"]["code"]) == (429, "budget_exceeded"), r.text
    a_admin, b_admin = await api.workspace_key(a, "admin"), await api.workspace_key(b, "owner")
    query = "/v1/audit/logs?eventType=budget.exceeded"
    entries: list[dict[str, Any]] = []
    async with asyncio.timeout(10):  # the gateway appends it in the background
        while not entries:
            r = await api.client.get(query, headers=a_admin)
            assert r.status_code == 200, r.text
            entries = r.json()["entries"]
            await asyncio.sleep(0.05)
    (entry,) = entries
    assert (entry["actor"], entry["workspaceId"]) == ("gateway", a)
    assert entry["payload"]["keyName"] == "tight"
    assert entry["payload"]["data"]["scope"] == f"key:{key_a['hash']}"
    r = await api.client.get(query, headers=b_admin)
    assert r.status_code == 200 and r.json()["entries"] == []
    r = await api.client.get(query, headers=api.admin)  # the admin key reads every workspace
    assert [e["workspaceId"] for e in r.json()["entries"]] == [a]


async def test_a_policy_block_joins_the_blocked_keys_workspace_incident(api: Api) -> None:
    """A's policy applies to A's keys only; a block is its workspace's traffic: it joins
    that workspace's incident, not another's nor default's."""
    a, b = await api.workspace("A"), await api.workspace("B")
    raw_a, _ = await api.key({"name": "a", "workspace_id": a})
    raw_b, _ = await api.key({"name": "b", "workspace_id": b})
    policy_a = await api.create(a, "policies", {"name": "no ssn", "keywords": ["ssn"]})
    incidents = {
        wid: await api.create(wid, "incidents", {"title": "look", "severity": "low"})
        for wid in (a, b, "default")
    }
    secret = {**CHAT, "messages": [{"role": "user", "content": "my ssn is 1"}]}

    async def blocked(raw: str) -> str | None:
        """The blocked request's id (None: it passed)."""
        r = await api.client.post(
            "/v1/chat/completions", json=secret, headers={"Authorization": f"Bearer {raw}"}
        )
        assert r.status_code in (200, 403), r.text
        if r.status_code == 200:
            return None
        assert r.json()["error"]["code"] == "policy_blocked"
        return r.headers["x-gate-request-id"]

    async with asyncio.timeout(10):  # the data plane loads stored policies every 2 s
        while (from_a := await blocked(raw_a)) is None:
            await asyncio.sleep(0.1)
    assert await blocked(raw_b) is None  # A's policy is not B's

    async def violations(wid: str) -> list[str]:
        r = await api.client.get(
            f"/v1/workspaces/{wid}/incidents/{incidents[wid]}", headers=api.admin
        )
        assert r.status_code == 200, r.text
        return [e["data"]["requestId"] for e in r.json()["data"]["policy_violations"]]

    assert await violations(a) == [from_a]
    assert await violations(b) == [] and await violations("default") == []
    policy_b = await api.create(b, "policies", {"name": "no ssn", "keywords": ["ssn"]})
    async with asyncio.timeout(10):
        while (from_b := await blocked(raw_b)) is None:
            await asyncio.sleep(0.1)
    assert await violations(b) == [from_b] and await violations(a) == [from_a]
    assert await violations("default") == []
    r = await api.client.get("/v1/audit/logs?eventType=policy.blocked", headers=api.admin)
    entries = r.json()["entries"]
    assert [(e["workspaceId"], e["payload"]["data"]["ruleId"]) for e in entries] == [
        (b, policy_b),
        (a, policy_a),
    ]
