"""Workspace policies are scoped to the workspace's keys, through a running ``tollhouse
serve`` over a real upstream on 127.0.0.1: A's block rule blocks A's key and not B's, the
config's rule blocks both, a created or deleted policy takes effect within the 2 s reload,
and ``POST /v1/security/evaluate`` uses the caller's workspace's set."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.support.gateway import Stack, bearer
from tests.support.upstream import Upstream

from tollhouse.guard.security import POLICY_REFRESH_S

ADMIN = "adm_" + "wspol1" * 6
SLACK_S = 1.5  # a loaded machine: the round's own work and our polling


@pytest.fixture
def gateway(tmp_path: Path, upstream: Upstream) -> Iterator[Stack]:
    stack = Stack(
        tmp_path, upstream, admin_key=ADMIN, policies=[{"id": "falcon", "keywords": ["falcon"]}]
    )
    with stack.gateway:
        yield stack


@pytest.fixture
async def client(gateway: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=gateway.gateway.base_url, timeout=30) as c:
        yield c


def admin() -> dict[str, str]:
    return {"Authorization": f"Bearer {ADMIN}"}


async def made(c: httpx.AsyncClient, path: str, body: dict[str, Any]) -> dict[str, Any]:
    r = await c.post(path, json=body, headers=admin())
    assert r.status_code == 201, r.text
    out: dict[str, Any] = r.json()
    return out


async def chat(c: httpx.AsyncClient, raw: str, text: str) -> tuple[int, str | None]:
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}]}
    r = await c.post("/v1/chat/completions", json=body, headers=bearer(raw))
    assert r.status_code in (200, 403), r.text
    if r.status_code == 200:
        return 200, None
    assert r.json()["error"]["code"] == "policy_blocked"
    assert r.headers["x-gate-policy-blocked"] == "true"
    return 403, r.json()["error"]["message"]


async def until(c: httpx.AsyncClient, raw: str, text: str, status: int) -> float:
    """Seconds until ``text`` from ``raw`` gets ``status`` (asserted within the window)."""
    start = time.monotonic()
    while (await chat(c, raw, text))[0] != status:
        waited = time.monotonic() - start
        assert waited < POLICY_REFRESH_S + SLACK_S, f"still not {status} after {waited:.1f} s"
    return time.monotonic() - start


async def evaluate(
    c: httpx.AsyncClient, headers: dict[str, str], **extra: Any
) -> tuple[int, dict[str, Any]]:
    r = await c.post("/v1/security/evaluate", json={"text": "heron", **extra}, headers=headers)
    out: dict[str, Any] = r.json()
    return r.status_code, out


async def test_a_workspaces_policy_blocks_its_own_keys_only(client: httpx.AsyncClient) -> None:
    c = client
    a = (await made(c, "/v1/workspaces", {"name": "A"}))["data"]["id"]
    b = (await made(c, "/v1/workspaces", {"name": "B"}))["data"]["id"]
    raw_a = (await made(c, "/v1/keys", {"name": "a", "workspace_id": a}))["key"]
    raw_b = (await made(c, "/v1/keys", {"name": "b", "workspace_id": b}))["key"]
    raw_default = (await made(c, "/v1/keys", {"name": "d"}))["key"]
    keys = (raw_a, raw_b, raw_default)
    for raw in keys:  # the config's rule applies to every key; nothing else blocks
        status, message = await chat(c, raw, "about falcon")
        assert status == 403 and message is not None and "'falcon'" in message
        assert await chat(c, raw, "about heron") == (200, None)

    base = f"/v1/workspaces/{a}/policies"
    policy = (await made(c, base, {"name": "no heron", "keywords": ["heron"]}))["data"]["id"]
    await until(c, raw_a, "about heron", 403)
    status, message = await chat(c, raw_a, "about heron")
    assert status == 403 and message is not None and policy in message
    # one reload swapped every workspace's set: B's and default's keys are not A's
    assert await chat(c, raw_b, "about heron") == (200, None)
    assert await chat(c, raw_default, "about heron") == (200, None)
    for raw in keys:  # A's set still starts with the config's rule
        assert (await chat(c, raw, "falcon and heron"))[0] == 403
    status, message = await chat(c, raw_a, "falcon and heron")
    assert message is not None and "'falcon'" in message  # config rules come first

    # evaluate: a virtual key gets its own workspace's set, the admin key names one
    status, out = await evaluate(c, bearer(raw_a))
    assert status == 200 and (out["allowed"], out["workspaceId"]) == (False, a)
    assert [v["ruleId"] for v in out["violations"]] == [policy]
    status, out = await evaluate(c, bearer(raw_b))
    assert status == 200 and (out["allowed"], out["workspaceId"]) == (True, b)
    status, out = await evaluate(c, admin(), workspaceId=a)
    assert status == 200 and (out["allowed"], out["workspaceId"]) == (False, a)
    status, out = await evaluate(c, admin())
    assert status == 200 and (out["allowed"], out["workspaceId"]) == (True, "default")
    status, out = await evaluate(c, bearer(raw_b), workspaceId=a)
    assert (status, out["error"]["code"]) == (403, "forbidden"), out
    status, out = await evaluate(c, admin(), workspaceId="ws_nope")
    assert (status, out["error"]["code"]) == (404, "not_found"), out
    status, out = await evaluate(c, admin(), workspaceId=7)
    assert (status, out["error"]["code"]) == (422, "validation_error"), out

    r = await c.delete(f"{base}/{policy}", headers=admin())
    assert r.status_code in (200, 204), r.text
    await until(c, raw_a, "about heron", 200)
    assert (await chat(c, raw_a, "about falcon"))[0] == 403  # the config's rule stays
