"""``/v1/workspaces/{id}/api-keys``: workspace-scoped admin API keys.

The raw key is returned once, by the create call; only its SHA-256 is stored.  Managing
keys needs the admin role (a member may not); a key never gets a role above its
creator's.  A revoked key is refused at once (every call looks the hash up).
"""

from __future__ import annotations

import secrets
import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from tollhouse.control._access import KEY_PREFIX, RANK, ROLES, now, require_role, sql_store
from tollhouse.control._auth import ControlGateway
from tollhouse.control._http import endpoint, iso, json_object, json_response
from tollhouse.control._pagination import fetch_page, page_of, page_response
from tollhouse.control._schema import PAGE, TIMESTAMP, choice, envelope, listing, obj, spec, text
from tollhouse.control._validation import Body
from tollhouse.errors import Forbidden, NotFound
from tollhouse.guard.keys import hash_key

_COLUMNS = "id, workspace_id, name, role, label, created_at, revoked_at"
_SELECT = f"SELECT {_COLUMNS} FROM workspace_api_keys"  # noqa: S608 - constant columns

BODY = obj({"name": text(), "role": choice(ROLES, nullable=True, default="member")}, ["name"])
API_KEY = obj(
    {
        "id": {"type": "string"},
        "workspace_id": {"type": "string"},
        "name": {"type": "string"},
        "role": choice(ROLES),
        "label": {"type": "string"},
        "created_at": TIMESTAMP,
        "revoked_at": TIMESTAMP,
    }
)


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def api_key_json(row: tuple[Any, ...]) -> dict[str, Any]:
    return {
        "id": row[0],
        "workspace_id": row[1],
        "name": row[2],
        "role": row[3],
        "label": row[4],
        "created_at": iso(float(row[5])),
        "revoked_at": None if row[6] is None else iso(float(row[6])),
    }


def routes(gw: ControlGateway) -> list[BaseRoute]:
    store = sql_store(gw)

    @endpoint
    @spec("the workspace's API keys (admin)", params=PAGE, response=listing(API_KEY))
    async def list_keys(request: Request) -> Response:
        wid = request.path_params["id"]
        await require_role(request, gw, wid, "admin")
        page = page_of(request)
        rows, total = await fetch_page(
            store,
            page,
            table="workspace_api_keys",
            columns=_COLUMNS,
            where="workspace_id = ?",
            params=[wid],
            order="created_at, id",
        )
        return page_response(request, page, [api_key_json(r) for r in rows], total)

    @endpoint
    @spec(
        "create a workspace API key; the raw key is in this answer only",
        body=BODY,
        status=201,
        response=envelope(API_KEY, key={"type": "string"}),
    )
    async def create_key(request: Request) -> Response:
        wid = request.path_params["id"]
        p = await require_role(request, gw, wid, "admin")
        body = Body(await json_object(request), BODY)
        name = body.text("name")
        role = body.choice("role") or "member"
        body.done()
        mine = p.role_in(wid) or "viewer"
        if RANK[role] > RANK[mine]:
            raise Forbidden(f"the {mine} role may not create a {role} key")
        raw = new_key()
        row = (
            "wkey_" + uuid.uuid4().hex[:20],
            wid,
            name,
            role,
            hash_key(raw),
            f"{raw[:7]}...{raw[-4:]}",
            now(),
        )
        await store._transaction(
            [
                (
                    "INSERT INTO workspace_api_keys "
                    "(id, workspace_id, name, role, hash, label, created_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    row,
                )
            ]
        )
        shown = (row[0], wid, name, role, row[5], row[6], None)
        return json_response({"data": api_key_json(shown), "key": raw}, status=201)

    @endpoint
    @spec("revoke a workspace API key", response=envelope(API_KEY, revoked={"type": "boolean"}))
    async def revoke_key(request: Request) -> Response:
        wid, kid = request.path_params["id"], request.path_params["keyId"]
        await require_role(request, gw, wid, "admin")
        counts = await store._transaction(
            [
                (
                    "UPDATE workspace_api_keys SET revoked_at = ? "
                    "WHERE id = ? AND workspace_id = ? AND revoked_at IS NULL",
                    (now(), kid, wid),
                )
            ]
        )
        rows = await store._fetch(f"{_SELECT} WHERE id = ? AND workspace_id = ?", (kid, wid))  # noqa: S608
        if not rows:
            raise NotFound(f"API key {kid!r} not found")
        return json_response({"data": api_key_json(rows[0]), "revoked": counts[0] > 0})

    base = "/v1/workspaces/{id}/api-keys"
    return [
        Route(base, list_keys, methods=["GET"]),
        Route(base, create_key, methods=["POST"]),
        Route(base + "/{keyId}", revoke_key, methods=["DELETE"]),
    ]
