"""CRUD routes for a workspace resource kept as a JSON record (migration 0006).

A resource module supplies a ``Kind``: its path segment, id prefix, a ``parse`` that
turns a body into the stored record (raising a 422 with per-field messages), a ``show``
that renders a record for the API (masking secrets), and the fields it may be filtered
and sorted on.  Viewers read; members and up create, replace and delete.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from tollhouse.control._access import now, require_role, sql_store
from tollhouse.control._auth import ControlGateway
from tollhouse.control._http import endpoint, iso, json_object, json_response
from tollhouse.control._pagination import page_of, page_response, sort_of
from tollhouse.control._schema import (
    PAGE,
    TIMESTAMP,
    Schema,
    envelope,
    listing,
    obj,
    query,
    sort_param,
    spec,
)
from tollhouse.errors import NotFound
from tollhouse.store import SqlStore

Record = dict[str, Any]
# parse(store, workspace_id, body) -> the record to store (422 on bad input)
Parse = Callable[[SqlStore, str, dict[str, Any]], Awaitable[Record]]
_SELECT = "SELECT id, body, created_at, updated_at FROM workspace_resources"


@dataclass(frozen=True)
class Kind:
    segment: str  # "alert-rules"
    prefix: str  # "rule_"
    noun: str  # "alert rule"
    parse: Parse
    show: Callable[[Record], Record]
    filters: tuple[str, ...]
    sorts: tuple[str, ...]
    body: Schema | None = None  # what ``parse`` accepts (/openapi.json)
    item: Schema | None = None  # what ``show`` renders, without id and timestamps

    def shown(self) -> Schema:
        """The record as the API answers it."""
        props: dict[str, Schema] = {"id": {"type": "string"}}
        props.update((self.item or {}).get("properties", {}))
        props.update(created_at=TIMESTAMP, updated_at=TIMESTAMP)
        return obj(props, ["id", "created_at", "updated_at"], closed=False)


async def load(store: SqlStore, workspace_id: str, kind: str) -> list[Record]:
    """Every record of a kind in a workspace, with ``id``, ``created_at``, ``updated_at``."""
    rows = await store._fetch(
        f"{_SELECT} WHERE workspace_id = ? AND kind = ?",  # noqa: S608 - constant
        (workspace_id, kind),
    )
    return [_record(r) for r in rows]


async def one(store: SqlStore, workspace_id: str, kind: str, rid: str, noun: str) -> Record:
    """One record, or 404."""
    rows = await store._fetch(
        f"{_SELECT} WHERE workspace_id = ? AND kind = ? AND id = ?",  # noqa: S608
        (workspace_id, kind, rid),
    )
    if not rows:
        raise NotFound(f"{noun} {rid!r} not found")
    return _record(rows[0])


async def ids(store: SqlStore, workspace_id: str, kind: str) -> set[str]:
    rows = await store._fetch(
        "SELECT id FROM workspace_resources WHERE workspace_id = ? AND kind = ?",
        (workspace_id, kind),
    )
    return {r[0] for r in rows}


def _record(row: tuple[Any, ...]) -> Record:
    body: Record = orjson.loads(row[1])
    return {
        "id": row[0],
        **body,
        "created_at": iso(float(row[2])),
        "updated_at": iso(float(row[3])),
    }


_SEVERITY = {"low": 0, "medium": 1, "high": 2, "critical": 3}


def _text(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _sort_key(field: str) -> Callable[[Record], tuple[int, Any]]:
    """Severities sort by rank (low < critical), other fields by value."""

    def key(r: Record) -> tuple[int, Any]:
        v = r.get(field)
        if v is None:
            return (0, "")
        if field.endswith("severity") and v in _SEVERITY:
            return (1, _SEVERITY[v])
        return (1, v if isinstance(v, (int, float)) else str(v))

    return key


def routes(gw: ControlGateway, kind: Kind) -> list[BaseRoute]:
    store = sql_store(gw)
    base = "/v1/workspaces/{id}/" + kind.segment

    async def _one(wid: str, rid: str) -> Record:
        return await one(store, wid, kind.segment, rid, kind.noun)

    sorts = (*kind.sorts, "created_at", "updated_at", "name")
    filters = tuple(query(name, {"type": "string"}, "equals") for name in kind.filters)
    item = kind.shown()

    @endpoint
    @spec(
        f"the workspace's {kind.noun} list",
        params=(*PAGE, sort_param(sorts), *filters),
        response=listing(item),
    )
    async def list_all(request: Request) -> Response:
        wid = request.path_params["id"]
        await require_role(request, gw, wid, "viewer")
        page = page_of(request)
        records = [kind.show(r) for r in await load(store, wid, kind.segment)]
        for name in kind.filters:
            wanted = request.query_params.get(name)
            if wanted:
                records = [r for r in records if _text(r.get(name)) == wanted]
        field, descending = sort_of(request, sorts, "created_at:asc")
        records.sort(key=lambda r: r["id"])
        records.sort(key=_sort_key(field), reverse=descending)
        shown = records[page.offset : page.offset + page.limit]
        return page_response(request, page, shown, len(records))

    @endpoint
    @spec(f"create a {kind.noun} (member)", body=kind.body, status=201, response=envelope(item))
    async def create(request: Request) -> Response:
        wid = request.path_params["id"]
        await require_role(request, gw, wid, "member")
        record = await kind.parse(store, wid, await json_object(request))
        rid, at = kind.prefix + uuid.uuid4().hex[:20], now()
        sql = (
            "INSERT INTO workspace_resources (workspace_id, kind, id, body, created_at, "
            "updated_at) VALUES (?, ?, ?, ?, ?, ?)"
        )
        body = orjson.dumps(record).decode()
        await store._transaction([(sql, (wid, kind.segment, rid, body, at, at))])
        return json_response({"data": kind.show(await _one(wid, rid))}, status=201)

    @endpoint
    @spec(f"one {kind.noun}", response=envelope(item))
    async def read(request: Request) -> Response:
        wid, rid = request.path_params["id"], request.path_params["rid"]
        await require_role(request, gw, wid, "viewer")
        return json_response({"data": kind.show(await _one(wid, rid))})

    @endpoint
    @spec(f"replace a {kind.noun} (member)", body=kind.body, response=envelope(item))
    async def replace(request: Request) -> Response:
        wid, rid = request.path_params["id"], request.path_params["rid"]
        await require_role(request, gw, wid, "member")
        await _one(wid, rid)
        record = await kind.parse(store, wid, await json_object(request))
        sql = (
            "UPDATE workspace_resources SET body = ?, updated_at = ? "
            "WHERE workspace_id = ? AND kind = ? AND id = ?"
        )
        body = orjson.dumps(record).decode()
        await store._transaction([(sql, (body, now(), wid, kind.segment, rid))])
        return json_response({"data": kind.show(await _one(wid, rid))})

    @endpoint
    @spec(
        f"delete a {kind.noun} (member)",
        response=envelope(obj({"id": {"type": "string"}, "deleted": {"const": True}})),
    )
    async def delete(request: Request) -> Response:
        wid, rid = request.path_params["id"], request.path_params["rid"]
        await require_role(request, gw, wid, "member")
        sql = "DELETE FROM workspace_resources WHERE workspace_id = ? AND kind = ? AND id = ?"
        counts = await store._transaction([(sql, (wid, kind.segment, rid))])
        if counts[0] == 0:
            raise NotFound(f"{kind.noun} {rid!r} not found")
        return json_response({"data": {"id": rid, "deleted": True}})

    return [
        Route(base, list_all, methods=["GET"]),
        Route(base, create, methods=["POST"]),
        Route(base + "/{rid}", read, methods=["GET"]),
        Route(base + "/{rid}", replace, methods=["PUT"]),
        Route(base + "/{rid}", delete, methods=["DELETE"]),
    ]
