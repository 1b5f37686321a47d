"""Workspaces, members and workspace API keys; the 401/403 role matrix."""

from __future__ import annotations

import httpx
import pytest
from tests.control._app import Gw
from tests.support.gateway import bearer

from tollhouse.control.audit_log import audit_of


async def make_key(client: httpx.AsyncClient, auth: dict[str, str], ws: str, role: str) -> str:
    r = await client.post(
        f"/v1/workspaces/{ws}/api-keys", json={"name": role, "role": role}, headers=auth
    )
    assert r.status_code == 201, r.text
    raw: str = r.json()["key"]
    assert raw.startswith("wk_") and raw not in str(r.json()["data"])
    return raw


async def test_default_workspace_and_create(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    r = await client.get("/v1/workspaces", headers=admin)
    assert r.status_code == 200
    assert [w["id"] for w in r.json()["data"]] == ["default"]
    r = await client.post("/v1/workspaces", json={"name": "Team A"}, headers=admin)
    assert r.status_code == 201
    ws = r.json()["data"]["id"]
    r = await client.get(f"/v1/workspaces/{ws}", headers=admin)
    assert r.json()["data"]["name"] == "Team A"
    r = await client.patch(f"/v1/workspaces/{ws}", json={"name": "Team B"}, headers=admin)
    assert r.json()["data"]["name"] == "Team B"
    assert (await client.get("/v1/workspaces/nope", headers=admin)).status_code == 404


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({}, {"name"}),
        ({"name": ""}, {"name"}),
        ({"name": 3, "color": "red"}, {"name", "color"}),
        ({"name": "x" * 201}, {"name"}),
    ],
)
async def test_workspace_422(
    client: httpx.AsyncClient, admin: dict[str, str], body: dict[str, object], fields: set[str]
) -> None:
    r = await client.post("/v1/workspaces", json=body, headers=admin)
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "validation_error"
    assert set(r.json()["error"]["fields"]) == fields


async def test_role_matrix(gw: Gw, client: httpx.AsyncClient, admin: dict[str, str]) -> None:
    ws = (await client.post("/v1/workspaces", json={"name": "A"}, headers=admin)).json()["data"][
        "id"
    ]
    other = (await client.post("/v1/workspaces", json={"name": "B"}, headers=admin)).json()["data"][
        "id"
    ]
    keys = {
        role: bearer(await make_key(client, admin, ws, role))
        for role in ("owner", "admin", "member", "viewer")
    }
    members = f"/v1/workspaces/{ws}/members"
    api_keys = f"/v1/workspaces/{ws}/api-keys"

    # 401: no token, unknown token, a malformed one
    for headers in ({}, bearer("wk_unknown"), bearer("garbage")):
        for method, path in (("GET", "/v1/workspaces"), ("GET", members), ("POST", api_keys)):
            r = await client.request(method, path, headers=headers, json={"name": "x"})
            assert r.status_code == 401, (method, path, headers)
            assert r.json()["error"]["code"] == "invalid_key"

    expect = [  # (method, path, body, the least role allowed)
        ("GET", f"/v1/workspaces/{ws}", None, "viewer"),
        ("GET", members, None, "viewer"),
        ("POST", members, {"email": "{role}@x.io", "role": "viewer"}, "admin"),
        ("GET", api_keys, None, "admin"),
        ("POST", api_keys, {"name": "k", "role": "viewer"}, "admin"),
        ("PATCH", f"/v1/workspaces/{ws}", {"name": "A2"}, "admin"),
    ]
    rank = ["viewer", "member", "admin", "owner"]
    for method, path, body, least in expect:
        for role, headers in keys.items():
            payload = (
                None if body is None else {k: str(v).format(role=role) for k, v in body.items()}
            )
            r = await client.request(method, path, headers=headers, json=payload)
            allowed = rank.index(role) >= rank.index(least)
            assert r.status_code == (403 if not allowed else (201 if method == "POST" else 200)), (
                method,
                path,
                role,
                r.text,
            )
            if not allowed:
                assert r.json()["error"]["code"] == "forbidden"

    # nobody reads (or writes) another workspace, whatever the role
    for headers in keys.values():
        for method, path in (
            ("GET", f"/v1/workspaces/{other}"),
            ("GET", f"/v1/workspaces/{other}/members"),
            ("POST", f"/v1/workspaces/{other}/api-keys"),
        ):
            r = await client.request(method, path, headers=headers, json={"name": "x"})
            assert r.status_code == 403
    # a workspace key lists only its own workspace and cannot create workspaces
    r = await client.get("/v1/workspaces", headers=keys["owner"])
    assert [w["id"] for w in r.json()["data"]] == [ws]
    assert (
        await client.post("/v1/workspaces", json={"name": "C"}, headers=keys["owner"])
    ).status_code == 403

    # no escalation: an admin cannot mint an owner key or grant owner
    r = await client.post(api_keys, json={"name": "up", "role": "owner"}, headers=keys["admin"])
    assert r.status_code == 403
    r = await client.post(members, json={"email": "o@x.io", "role": "owner"}, headers=keys["admin"])
    assert r.status_code == 403
    r = await client.post(members, json={"email": "o@x.io", "role": "owner"}, headers=keys["owner"])
    assert r.status_code == 201
    owner_member = r.json()["data"]["id"]
    assert (
        await client.delete(f"{members}/{owner_member}", headers=keys["admin"])
    ).status_code == 403
    assert (
        await client.delete(f"{members}/{owner_member}", headers=keys["owner"])
    ).status_code == 200

    # the audit log names the workspace key that made a change
    await audit_of(gw).flush()
    entries = (
        await client.get(
            f"/v1/audit/logs?workspaceId={ws}&eventType=workspaces.members.delete", headers=admin
        )
    ).json()["entries"]
    assert len(entries) == 1 and entries[0]["actor"].startswith("apikey:wkey_")


async def test_revoked_key_is_refused(client: httpx.AsyncClient, admin: dict[str, str]) -> None:
    raw = await make_key(client, admin, "default", "admin")
    listed = (await client.get("/v1/workspaces/default/api-keys", headers=bearer(raw))).json()[
        "data"
    ]
    assert len(listed) == 1 and "key" not in listed[0] and listed[0]["label"].startswith("wk_")
    kid = listed[0]["id"]
    r = await client.delete(f"/v1/workspaces/default/api-keys/{kid}", headers=admin)
    assert r.status_code == 200 and r.json()["revoked"] is True
    assert (await client.get("/v1/workspaces", headers=bearer(raw))).status_code == 401
    assert (
        await client.delete("/v1/workspaces/default/api-keys/nope", headers=admin)
    ).status_code == 404


async def test_members_crud_pages_and_422(client: httpx.AsyncClient, admin: dict[str, str]) -> None:
    base = "/v1/workspaces/default/members"
    for i in range(30):
        r = await client.post(
            base,
            json={"email": f"u{i}@x.io", "role": "member" if i % 3 else "viewer"},
            headers=admin,
        )
        assert r.status_code == 201
    assert (
        await client.post(base, json={"email": "U0@x.io", "role": "viewer"}, headers=admin)
    ).status_code == 409
    r = await client.get(base, headers=admin)
    assert len(r.json()["data"]) == 25 and r.json()["total"] == 30
    assert 'rel="next"' in r.headers["link"] and "page=2" in r.headers["link"]
    r = await client.get(f"{base}?page=2&limit=25", headers=admin)
    assert len(r.json()["data"]) == 5 and 'rel="next"' not in r.headers["link"]
    r = await client.get(f"{base}?role=viewer&limit=100", headers=admin)
    assert r.json()["total"] == 10
    mid = r.json()["data"][0]["id"]
    r = await client.patch(f"{base}/{mid}", json={"role": "admin"}, headers=admin)
    assert r.json()["data"]["role"] == "admin"
    for query in ("page=0", "limit=101", "limit=0", "page=x", "role=boss"):
        r = await client.get(f"{base}?{query}", headers=admin)
        assert r.status_code == 422, query
    for body, fields in (
        ({"email": "nope", "role": "viewer"}, {"email"}),
        ({"email": "a@b.c", "role": "god"}, {"role"}),
        ({}, {"email", "role"}),
        ({"email": "a@b.c", "role": "viewer", "x": 1}, {"x"}),
    ):
        r = await client.post(base, json=body, headers=admin)
        assert r.status_code == 422 and set(r.json()["error"]["fields"]) == fields
    r = await client.patch(f"{base}/{mid}", json={"role": 1}, headers=admin)
    assert r.status_code == 422
    assert (
        await client.patch(f"{base}/nope", json={"role": "viewer"}, headers=admin)
    ).status_code == 404
