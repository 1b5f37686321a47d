"""``/v1/workspaces/{id}/members``: who belongs to a workspace, with which role.

Viewers and up read the list; admins and owners add, change and remove members; only an
owner grants, changes or removes the owner role.
"""

from __future__ import annotations

import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from tollhouse.control._access import RANK, ROLES, Principal, now, require_role, sql_store
from tollhouse.control._auth import ControlGateway
from tollhouse.control._http import endpoint, iso, json_object, json_response
from tollhouse.control._pagination import fetch_page, page_of, page_response
from tollhouse.control._schema import (
    PAGE,
    SPACE,
    TIMESTAMP,
    choice,
    envelope,
    listing,
    obj,
    query,
    spec,
    text,
)
from tollhouse.control._validation import Body
from tollhouse.errors import Conflict, Forbidden, NotFound

_COLUMNS = "id, workspace_id, email, role, created_at"
_SELECT = f"SELECT {_COLUMNS} FROM workspace_members"  # noqa: S608 - constant columns
EMAIL = {**text(320), "pattern": f"^[{SPACE}]*[^{SPACE}@][\\s\\S]*@[\\s\\S]*[^{SPACE}@][{SPACE}]*$"}
ADD = obj({"email": EMAIL, "role": choice(ROLES)}, ["email", "role"])
CHANGE = obj({"role": choice(ROLES)}, ["role"])
MEMBER = obj(
    {
        "id": {"type": "string"},
        "workspace_id": {"type": "string"},
        "email": {"type": "string"},
        "role": choice(ROLES),
        "created_at": TIMESTAMP,
    }
)
DELETED = envelope(obj({"id": {"type": "string"}, "deleted": {"const": True}}))


def member_json(row: tuple[Any, ...]) -> dict[str, Any]:
    return {
        "id": row[0],
        "workspace_id": row[1],
        "email": row[2],
        "role": row[3],
        "created_at": iso(float(row[4])),
    }


def _may_grant(p: Principal, workspace_id: str, role: str) -> None:
    mine = p.role_in(workspace_id) or "viewer"
    if role == "owner" and mine != "owner":
        raise Forbidden("only an owner grants or changes the owner role")
    if RANK[role] > RANK[mine]:
        raise Forbidden(f"the {mine} role may not grant {role}")


def routes(gw: ControlGateway) -> list[BaseRoute]:
    store = sql_store(gw)

    async def _member(wid: str, mid: str) -> tuple[Any, ...]:
        rows = await store._fetch(f"{_SELECT} WHERE workspace_id = ? AND id = ?", (wid, mid))  # noqa: S608
        if not rows:
            raise NotFound(f"member {mid!r} not found")
        return rows[0]

    @endpoint
    @spec(
        "the workspace's members",
        params=(*PAGE, query("role", choice(ROLES))),
        response=listing(MEMBER),
    )
    async def list_members(request: Request) -> Response:
        wid = request.path_params["id"]
        await require_role(request, gw, wid, "viewer")
        page = page_of(request)
        where, params = "workspace_id = ?", [wid]
        role = request.query_params.get("role")
        if role:
            body = Body({"role": role}, ("role",))
            body.choice("role", ROLES)
            body.done()
            where += " AND role = ?"
            params.append(role)
        rows, total = await fetch_page(
            store,
            page,
            table="workspace_members",
            columns=_COLUMNS,
            where=where,
            params=params,
            order="created_at, id",
        )
        return page_response(request, page, [member_json(r) for r in rows], total)

    @endpoint
    @spec("add a member (admin)", body=ADD, status=201, response=envelope(MEMBER))
    async def add_member(request: Request) -> Response:
        wid = request.path_params["id"]
        p = await require_role(request, gw, wid, "admin")
        body = Body(await json_object(request), ADD)
        email = body.text("email")
        role = body.choice("role")
        if email is not None and ("@" not in email or email.startswith("@") or email.endswith("@")):
            body.errors["email"] = "expected an email address"
        body.done()
        assert email is not None and role is not None  # noqa: S101 - done() checked them
        _may_grant(p, wid, role)
        row = ("mem_" + uuid.uuid4().hex[:20], wid, email.lower(), role, now())
        try:
            await store._transaction(
                [
                    (
                        "INSERT INTO workspace_members (id, workspace_id, email, role, created_at) "
                        "VALUES (?, ?, ?, ?, ?)",
                        row,
                    )
                ]
            )
        except Conflict:
            raise Conflict(f"{email} is already a member of this workspace") from None
        return json_response({"data": member_json(row)}, status=201)

    @endpoint
    @spec("change a member's role (admin)", body=CHANGE, response=envelope(MEMBER))
    async def update_member(request: Request) -> Response:
        wid, mid = request.path_params["id"], request.path_params["memberId"]
        p = await require_role(request, gw, wid, "admin")
        body = Body(await json_object(request), CHANGE)
        role = body.choice("role")
        body.done()
        assert role is not None  # noqa: S101
        current = await _member(wid, mid)
        _may_grant(p, wid, current[3])
        _may_grant(p, wid, role)
        await store._transaction(
            [("UPDATE workspace_members SET role = ? WHERE id = ?", (role, mid))]
        )
        return json_response({"data": member_json(await _member(wid, mid))})

    @endpoint
    @spec("remove a member (admin)", response=DELETED)
    async def remove_member(request: Request) -> Response:
        wid, mid = request.path_params["id"], request.path_params["memberId"]
        p = await require_role(request, gw, wid, "admin")
        current = await _member(wid, mid)
        _may_grant(p, wid, current[3])
        await store._transaction([("DELETE FROM workspace_members WHERE id = ?", (mid,))])
        return json_response({"data": {"id": mid, "deleted": True}})

    base = "/v1/workspaces/{id}/members"
    return [
        Route(base, list_members, methods=["GET"]),
        Route(base, add_member, methods=["POST"]),
        Route(base + "/{memberId}", update_member, methods=["PATCH", "PUT"]),
        Route(base + "/{memberId}", remove_member, methods=["DELETE"]),
    ]
