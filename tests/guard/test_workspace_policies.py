"""Workspace policies: CRUD under ``/v1/workspaces/{id}/policies`` (422 for a rule that
does not compile), loaded into the data plane, enforced on the chat requests of the
workspace's keys."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import orjson
import pytest
from tests.support.gateway import acreate_key, asgi_request, running_app

from tollhouse.app import App

ADMIN = "adm_" + "p0l1cy" * 6
CHAT = {"model": "mock-1", "messages": [{"role": "user", "content": "about Project Heron"}]}


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[tuple[App, str]]:
    store = f"sqlite:///{tmp_path / 'w.db'}"
    config = {
        "store": store,
        "admin_key": ADMIN,
        "providers": {"mock": {"kind": "mock"}},
        "models": {"mock-1": {"deployments": [{"provider": "mock", "model": "mock-1"}]}},
    }
    raw, _ = await acreate_key(store)
    async with running_app(config) as app:
        yield app, raw


async def test_crud_and_enforcement(env: tuple[App, str]) -> None:
    app, key = env
    admin = {"Authorization": f"Bearer {ADMIN}"}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as c:
        ws = (await c.post("/v1/workspaces", json={"name": "W"}, headers=admin)).json()["data"]
        base = f"/v1/workspaces/{ws['id']}/policies"
        r = await c.post(base, json={"name": "bad", "regex": ["(?=x)"]}, headers=admin)
        assert r.status_code == 422 and "regex" in r.json()["error"]["fields"]
        r = await c.post(base, json={"name": "empty"}, headers=admin)
        assert r.status_code == 422
        r = await c.post(base, json={"name": "heron", "keywords": ["project heron"]}, headers=admin)
        assert r.status_code == 201, r.text
        pid = r.json()["data"]["id"]
        assert (await c.get(base, headers=admin)).json()["total"] == 1
        await app.gw.security.refresh_policies(app.gw.store)
        r = await c.post("/v1/keys", json={"name": "w", "workspace_id": ws["id"]}, headers=admin)
        assert r.status_code == 201, r.text
        in_ws = r.json()["key"]

        async def chat(raw: str | None = None) -> tuple[int, dict[str, str], bytes]:
            headers = [("authorization", f"Bearer {raw or in_ws}")]
            return await asgi_request(
                app, "POST", "/v1/chat/completions", body=orjson.dumps(CHAT), headers=headers
            )

        status, headers, body = await chat()
        assert status == 403 and headers["x-gate-policy-blocked"] == "true"
        assert pid in orjson.loads(body)["error"]["message"]
        status, headers, _ = await chat(key)  # a key of the default workspace: not W's rules
        assert status == 200 and "x-gate-policy-blocked" not in headers
        r = await c.put(
            f"{base}/{pid}",
            json={"name": "heron", "action": "warn", "keywords": ["project heron"]},
            headers=admin,
        )
        assert r.status_code == 200
        await app.gw.security.refresh_policies(app.gw.store)
        status, headers, _ = await chat()
        assert status == 200 and headers["x-gate-policy-warn"] == pid
        assert (await c.delete(f"{base}/{pid}", headers=admin)).status_code == 200
        await app.gw.security.refresh_policies(app.gw.store)
        status, headers, _ = await chat()
        assert status == 200 and "x-gate-policy-warn" not in headers
