"""``/v1/guardrails``: CRUD and key / member assignments (OpenRouter shapes), admin only.

Writes go to the store and refresh this worker's guardrail cache at once; other workers
pick the change up through ``guardrails_version`` within their refresh interval.
"""

from __future__ import annotations

import re
from typing import Any, Protocol, runtime_checkable

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from tollhouse.control._auth import ControlGateway, require_admin
from tollhouse.control._http import (
    MAX_QUERY_INT,
    endpoint,
    iso,
    json_object,
    json_response,
    query_int,
)
from tollhouse.control._schema import (
    ADMIN,
    ANY_OBJECT,
    NOT_BLANK,
    Op,
    Param,
    Schema,
    array,
    boolean,
    declare,
    envelope,
    integer,
    number,
    obj,
    query,
    spec,
)
from tollhouse.errors import NotFound, ValidationError
from tollhouse.guard import guardrails as model
from tollhouse.guard.budgets import PERIOD_ALIASES
from tollhouse.guard.guardrail_store import GuardrailCache, GuardrailStore, Kind
from tollhouse.guard.limits import Limiter

PAGE_MAX = 100
MAX_BULK = 1000
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_HASH = re.compile(r"^[0-9a-f]{64}$")
_FIELD = {"key": "key_hashes", "member": "member_user_ids"}
_ITEM = {"key": "key_hash", "member": "member_user_id"}


def _field(name: str) -> Schema:
    """The schema of one guardrail field (``guard.guardrails._check`` validates it)."""
    if name == "name":
        return {"type": "string", "maxLength": 200, "pattern": NOT_BLANK}
    if name in model._STRS:
        return {"type": ["string", "null"], "minLength": 1}
    if name in model._LISTS:
        return array({"type": "string", "minLength": 1}, max_items=1000, nullable=True)
    if name == "limit_usd":
        return number(0, 1e9, nullable=True)
    if name in ("limit_tokens", "limit_requests"):
        return integer(0, 10**15, nullable=True)
    if name == "reset_interval":
        return {"enum": [*PERIOD_ALIASES, None]}
    if name == "enforce_zdr":
        return boolean()
    if name == "action":
        return {"enum": list(model.ACTIONS)}
    raise KeyError(f"guardrail field {name!r} has no schema")


_FIELDS = {name: _field(name) for name in model.FIELDS}
_ROUTE_RULE: Schema = {
    "if": {"properties": {"action": {"const": "route"}}, "required": ["action"]},
    "then": {"properties": {"route_target": {"type": "string"}}, "required": ["route_target"]},
}
CREATE = obj(_FIELDS, ["name"]) | _ROUTE_RULE
PATCH = obj(_FIELDS) | _ROUTE_RULE
GUARDRAIL = obj(
    {"id": {"type": "string", "format": "uuid"}, "name": {"type": "string"}}, closed=False
)
PAGE_PARAMS: tuple[Param, ...] = (
    query("offset", integer(0, MAX_QUERY_INT)),
    query("limit", integer(0, PAGE_MAX)),
)
_HASHES = array({"type": "string", "pattern": "^[0-9a-f]{64}$"}, min_items=1, max_items=MAX_BULK)
_MEMBERS = array(
    {"type": "string", "minLength": 1, "maxLength": 200}, min_items=1, max_items=MAX_BULK
)
ASSIGN = {
    "key": obj({"key_hashes": _HASHES}, ["key_hashes"]),
    "member": obj({"member_user_ids": _MEMBERS}, ["member_user_ids"]),
}
_PAGE_OF = obj({"data": array(ANY_OBJECT), "total_count": integer(0)}, ["data", "total_count"])


@runtime_checkable
class LimitsGateway(ControlGateway, Protocol):
    """What the guardrail, enforcement and credits routes need of the gateway."""

    @property
    def guardrails(self) -> GuardrailCache: ...

    @property
    def limits(self) -> Limiter: ...


def _gid(request: Request) -> str:
    gid = str(request.path_params["id"])
    if _UUID.match(gid) is None:
        raise NotFound("guardrail not found")
    return gid


def _targets(data: dict[str, Any], kind: Kind) -> list[str]:
    name = _FIELD[kind]
    unknown = [k for k in data if k != name]
    errors = {k: "unknown field" for k in unknown}
    value = data.get(name)
    if not isinstance(value, list) or not value or len(value) > MAX_BULK:
        errors[name] = f"required: an array of 1..{MAX_BULK} strings"
    elif kind == "key" and not all(isinstance(v, str) and _HASH.match(v) for v in value):
        errors[name] = "each entry must be a key hash (64 lowercase hex characters)"
    elif not all(isinstance(v, str) and v and len(v) <= 200 for v in value):
        errors[name] = "each entry must be a non-empty string (at most 200 characters)"
    if errors:
        raise ValidationError("invalid assignment request", errors)
    return [str(v) for v in value]  # type: ignore[union-attr]


def routes(gw: LimitsGateway) -> list[BaseRoute]:
    def repo() -> GuardrailStore:
        return gw.guardrails.repo

    async def _existing(gid: str) -> model.Guardrail:
        g = await repo().get(gid)
        if g is None:
            raise NotFound("guardrail not found")
        return g

    @endpoint
    @spec("guardrails", params=PAGE_PARAMS, response=_PAGE_OF, auth=ADMIN)
    async def list_guardrails(request: Request) -> Response:
        require_admin(request, gw)
        offset = query_int(request, "offset", 0)
        limit = query_int(request, "limit", PAGE_MAX, maximum=PAGE_MAX)
        items, total = await repo().page(offset, limit)
        return json_response({"data": [g.to_json() for g in items], "total_count": total})

    @endpoint
    @spec("create a guardrail", body=CREATE, status=201, response=envelope(GUARDRAIL), auth=ADMIN)
    async def create_guardrail(request: Request) -> Response:
        require_admin(request, gw)
        g = model.create(await json_object(request))
        await repo().create(g)
        await gw.guardrails.refresh()
        return json_response({"data": g.to_json()}, status=201)

    @endpoint
    @spec("one guardrail", response=envelope(GUARDRAIL), auth=ADMIN)
    async def get_guardrail(request: Request) -> Response:
        require_admin(request, gw)
        return json_response({"data": (await _existing(_gid(request))).to_json()})

    @endpoint
    @spec("change a guardrail", body=PATCH, response=envelope(GUARDRAIL), auth=ADMIN)
    async def update_guardrail(request: Request) -> Response:
        require_admin(request, gw)
        g = model.update(await _existing(_gid(request)), await json_object(request))
        if not await repo().update(g):
            raise NotFound("guardrail not found")
        await gw.guardrails.refresh()
        return json_response({"data": g.to_json()})

    @endpoint
    @spec("delete a guardrail", response=obj({"deleted": {"const": True}}), auth=ADMIN)
    async def delete_guardrail(request: Request) -> Response:
        require_admin(request, gw)
        if not await repo().delete(_gid(request)):
            raise NotFound("guardrail not found")
        await gw.guardrails.refresh()
        return json_response({"deleted": True})

    def _listing(kind: Kind, *, one: bool) -> Any:
        @endpoint
        async def handler(request: Request) -> Response:
            require_admin(request, gw)
            gid = None
            if one:
                gid = _gid(request)
                await _existing(gid)
            offset = query_int(request, "offset", 0)
            limit = query_int(request, "limit", PAGE_MAX, maximum=PAGE_MAX)
            rows, total = await repo().assignments(kind, gid, offset, limit)
            data = [
                {"guardrail_id": g, _ITEM[kind]: target, "created_at": iso(at)}
                for g, target, at in rows
            ]
            return json_response({"data": data, "total_count": total})

        declare(
            handler,
            None,
            Op(f"{kind} assignments", params=PAGE_PARAMS, response=_PAGE_OF, auth=ADMIN),
        )
        return handler

    def _bulk(kind: Kind, *, remove: bool) -> Any:
        @endpoint
        async def handler(request: Request) -> Response:
            require_admin(request, gw)
            gid = _gid(request)
            await _existing(gid)
            targets = _targets(await json_object(request), kind)
            if remove:
                count = await repo().unassign(gid, kind, targets)
                out = {"unassigned_count": count}
            else:
                if kind == "key":
                    missing = [h for h in targets if await gw.store.get_key(h) is None]
                    if missing:
                        raise ValidationError(
                            "unknown keys", {"key_hashes": f"no such key: {', '.join(missing)}"}
                        )
                out = {"assigned_count": await repo().assign(gid, kind, targets)}
            await gw.guardrails.refresh()
            return json_response(out)

        verb = "unassigned_count" if remove else "assigned_count"
        answer = obj({verb: integer(0)}, [verb])
        summary = f"{'unassign' if remove else 'assign'} {kind}s"
        declare(handler, None, Op(summary, body=ASSIGN[kind], response=answer, auth=ADMIN))
        return handler

    base = "/v1/guardrails"
    return [
        Route(base, list_guardrails, methods=["GET"]),
        Route(base, create_guardrail, methods=["POST"]),
        Route(f"{base}/assignments/keys", _listing("key", one=False), methods=["GET"]),
        Route(f"{base}/assignments/members", _listing("member", one=False), methods=["GET"]),
        Route(base + "/{id}", get_guardrail, methods=["GET"]),
        Route(base + "/{id}", update_guardrail, methods=["PATCH"]),
        Route(base + "/{id}", delete_guardrail, methods=["DELETE"]),
        Route(base + "/{id}/assignments/keys", _listing("key", one=True), methods=["GET"]),
        Route(base + "/{id}/assignments/keys", _bulk("key", remove=False), methods=["POST"]),
        Route(base + "/{id}/assignments/keys/remove", _bulk("key", remove=True), methods=["POST"]),
        Route(base + "/{id}/assignments/members", _listing("member", one=True), methods=["GET"]),
        Route(base + "/{id}/assignments/members", _bulk("member", remove=False), methods=["POST"]),
        Route(
            base + "/{id}/assignments/members/remove",
            _bulk("member", remove=True),
            methods=["POST"],
        ),
    ]
