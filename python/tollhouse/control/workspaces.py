"""``/v1/workspaces``: list, create, read and rename workspaces.

The admin key lists and creates every workspace; a workspace API key sees only its own
(and renames it as admin or owner).
"""

from __future__ import annotations

import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from tollhouse.control._access import now, principal, require_role, sql_store
from tollhouse.control._auth import ControlGateway
from tollhouse.control._http import endpoint, iso, json_object, json_response
from tollhouse.control._pagination import fetch_page, page_of, page_response
from tollhouse.control._schema import PAGE, TIMESTAMP, envelope, listing, obj, spec, text
from tollhouse.control._validation import Body
from tollhouse.errors import Forbidden, NotFound

_COLUMNS = "id, name, created_at"
_SELECT = f"SELECT {_COLUMNS} FROM workspaces"  # noqa: S608 - constant columns
BODY = obj({"name": text()}, ["name"])
WORKSPACE = obj({"id": {"type": "string"}, "name": {"type": "string"}, "created_at": TIMESTAMP})


def workspace_json(row: tuple[Any, ...]) -> dict[str, Any]:
    return {"id": row[0], "name": row[1], "created_at": iso(float(row[2]))}


def routes(gw: ControlGateway) -> list[BaseRoute]:
    store = sql_store(gw)

    @endpoint
    @spec("the caller's workspaces", params=PAGE, response=listing(WORKSPACE))
    async def list_workspaces(request: Request) -> Response:
        p = await principal(request, gw)
        page = page_of(request)
        where, params = ("", []) if p.workspace_id is None else ("id = ?", [p.workspace_id])
        rows, total = await fetch_page(
            store,
            page,
            table="workspaces",
            columns=_COLUMNS,
            where=where,
            params=params,
            order="created_at, id",
        )
        return page_response(request, page, [workspace_json(r) for r in rows], total)

    @endpoint
    @spec("create a workspace (admin key)", body=BODY, status=201, response=envelope(WORKSPACE))
    async def create_workspace(request: Request) -> Response:
        p = await principal(request, gw)
        if p.workspace_id is not None:
            raise Forbidden("only the admin key creates workspaces")
        body = Body(await json_object(request), BODY)
        name = body.text("name")
        body.done()
        row = ("ws_" + uuid.uuid4().hex[:20], name, now())
        await store._transaction(
            [("INSERT INTO workspaces (id, name, created_at) VALUES (?, ?, ?)", row)]
        )
        return json_response({"data": workspace_json(row)}, status=201)

    @endpoint
    @spec("one workspace", response=envelope(WORKSPACE))
    async def get_workspace(request: Request) -> Response:
        wid = request.path_params["id"]
        await require_role(request, gw, wid, "viewer")
        rows = await store._fetch(f"{_SELECT} WHERE id = ?", (wid,))  # noqa: S608
        if not rows:
            raise NotFound(f"workspace {wid!r} not found")
        return json_response({"data": workspace_json(rows[0])})

    @endpoint
    @spec("rename a workspace (admin)", body=BODY, response=envelope(WORKSPACE))
    async def update_workspace(request: Request) -> Response:
        wid = request.path_params["id"]
        await require_role(request, gw, wid, "admin")
        body = Body(await json_object(request), BODY)
        name = body.text("name")
        body.done()
        await store._transaction([("UPDATE workspaces SET name = ? WHERE id = ?", (name, wid))])
        rows = await store._fetch(f"{_SELECT} WHERE id = ?", (wid,))  # noqa: S608
        return json_response({"data": workspace_json(rows[0])})

    return [
        Route("/v1/workspaces", list_workspaces, methods=["GET"]),
        Route("/v1/workspaces", create_workspace, methods=["POST"]),
        Route("/v1/workspaces/{id}", get_workspace, methods=["GET"]),
        Route("/v1/workspaces/{id}", update_workspace, methods=["PATCH", "PUT"]),
    ]
