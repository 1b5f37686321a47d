"""``POST /v1/ingest/runtime`` and ``POST /v1/ingest/change`` with exactly-once
``Idempotency-Key`` handling.

Processing an event is one insert keyed on (workspace, Idempotency-Key), carrying the
answer; a replay with the same body gets that first answer back (``Idempotent-Replayed:
true``), the same key with a different body is 409 ``conflict``.  Concurrent replays race
on the primary key: exactly one insert wins and every other caller replays its answer.
The admin key ingests into ``default`` (or ``?workspace=``); a workspace key (member or
above) into its own workspace.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from tollhouse.control._access import principal, require_role, sql_store
from tollhouse.control._auth import ControlGateway
from tollhouse.control._http import endpoint, iso, json_object
from tollhouse.control._schema import (
    MAX_UNIX,
    NOT_BLANK,
    TIME,
    Param,
    Schema,
    envelope,
    number,
    obj,
    query,
    spec,
    text,
)
from tollhouse.control._validation import Body, parse_time
from tollhouse.errors import Conflict, ValidationError
from tollhouse.guard.policies import DEFAULT_WORKSPACE

_TIME: Schema = {
    "anyOf": [*TIME["anyOf"], number(0, MAX_UNIX)],
    "description": "ISO 8601 time or UNIX seconds",
}
_ATTRIBUTES: Schema = {"type": "object", "description": "free-form"}
RUNTIME = obj(
    {
        "route_id": text(),
        "event_id": text(),
        "timestamp": _TIME,
        **{name: text(nullable=True) for name in ("type", "provider", "model", "error")},
        "status": number(0, 999, nullable=True),
        "latency_ms": number(0, 86_400_000, nullable=True),
        "attributes": _ATTRIBUTES,
    },
    ["route_id", "event_id", "timestamp"],
)
CHANGE = obj(
    {
        "provider": text(),
        "change_id": text(),
        "classification": text(100),
        "description": text(5000, nullable=True),
        "timestamp": {**_TIME, "anyOf": [*_TIME["anyOf"], {"type": "null"}]},
        "attributes": _ATTRIBUTES,
    },
    ["provider", "change_id", "classification"],
)
_PARAMS = (
    Param("Idempotency-Key", {"type": "string", "maxLength": 255, "pattern": NOT_BLANK},
          where="header", required=True, description="a replay gets the first answer"),
    query("workspace", description="the admin key's target workspace (default: default)"),
)  # fmt: skip
_ACCEPTED = envelope(
    obj(
        {"id": {"type": "string"}, "kind": {"type": "string"}, "workspace_id": {"type": "string"}},
        ["id", "kind", "workspace_id"],
        closed=False,
    )
)
_INSERT = (
    "INSERT INTO ingest_events (scope, idem_key, id, kind, body_hash, event, response, "
    "created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)


def _runtime(data: dict[str, Any]) -> dict[str, Any]:
    body = Body(data, RUNTIME)
    out: dict[str, Any] = {"route_id": body.text("route_id"), "event_id": body.text("event_id")}
    for name in ("type", "provider", "model", "error"):
        out[name] = body.text(name)
    for name, lo, hi in (("status", 0, 999), ("latency_ms", 0, 86_400_000)):
        value = data.get(name)
        if value is not None and (type(value) not in (int, float) or not lo <= value <= hi):
            body.errors[name] = f"a number between {lo} and {hi}"
        out[name] = value
    out["timestamp"] = _timestamp(body, data, required=True)
    out["attributes"] = _attributes(body, data)
    body.done()
    return out


def _change(data: dict[str, Any]) -> dict[str, Any]:
    body = Body(data, CHANGE)
    out: dict[str, Any] = {
        "provider": body.text("provider"),
        "change_id": body.text("change_id"),
        "classification": body.text("classification"),
        "description": body.text("description"),
        "timestamp": _timestamp(body, data, required=False),
        "attributes": _attributes(body, data),
    }
    body.done()
    return out


def _timestamp(body: Body, data: dict[str, Any], *, required: bool) -> float | None:
    raw = data.get("timestamp")
    if raw is None:
        if required:
            body.errors["timestamp"] = "required"
        return None
    if isinstance(raw, bool) or not isinstance(raw, (str, int, float)):
        body.errors["timestamp"] = "an ISO 8601 time or UNIX seconds"
        return None
    try:
        return parse_time(raw, "timestamp")
    except ValidationError as exc:
        body.errors.update(exc.fields)
        return None


def _attributes(body: Body, data: dict[str, Any]) -> dict[str, Any]:
    value = data.get("attributes", {})
    if not isinstance(value, dict):
        body.errors["attributes"] = "expected an object"
        return {}
    return value


def _accepted(body: bytes | str, *, replayed: bool = False) -> Response:
    """The 202 answer: the stored JSON itself, sent again on a replay."""
    response = Response(body, status_code=202, media_type="application/json")
    if replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return response


def routes(gw: ControlGateway) -> list[BaseRoute]:
    store = sql_store(gw)

    async def ingest(request: Request, kind: str) -> Response:
        who = await principal(request, gw)
        workspace = request.query_params.get("workspace") or who.workspace_id or DEFAULT_WORKSPACE
        await require_role(request, gw, workspace, "member")
        key = request.headers.get("idempotency-key")
        if key is None or not key.strip() or len(key) > 255:
            raise ValidationError(
                "invalid Idempotency-Key",
                {"Idempotency-Key": "required header, 1 to 255 characters"},
            )
        raw = await json_object(request)
        event = _runtime(raw) if kind == "runtime" else _change(raw)
        digest = hashlib.sha256(orjson.dumps(raw, option=orjson.OPT_SORT_KEYS)).hexdigest()
        now = time.time()
        answer = {
            "data": {
                "id": "ing_" + uuid.uuid4().hex[:20],
                "kind": kind,
                "workspace_id": workspace,
                "received_at": iso(now),
                **{k: v for k, v in event.items() if k in ("event_id", "change_id", "route_id")},
            }
        }
        encoded = orjson.dumps(answer)
        params = (
            workspace,
            key,
            answer["data"]["id"],
            kind,
            f"{kind}:{digest}",
            orjson.dumps(event).decode(),
            encoded.decode(),
            now,
        )
        try:
            await store._transaction([(_INSERT, params)])
        except Conflict:
            return await _replay(workspace, key, f"{kind}:{digest}")
        return _accepted(encoded)

    async def _replay(workspace: str, key: str, body_hash: str) -> Response:
        rows = await store._fetch(
            "SELECT body_hash, response FROM ingest_events WHERE scope = ? AND idem_key = ?",
            (workspace, key),
        )
        if not rows or rows[0][0] != body_hash:
            raise Conflict("this Idempotency-Key was already used with a different request")
        return _accepted(rows[0][1], replayed=True)

    @endpoint
    @spec(
        "a runtime event, exactly once",
        body=RUNTIME,
        params=_PARAMS,
        status=202,
        response=_ACCEPTED,
    )
    async def runtime(request: Request) -> Response:
        return await ingest(request, "runtime")

    @endpoint
    @spec(
        "a provider change, exactly once",
        body=CHANGE,
        params=_PARAMS,
        status=202,
        response=_ACCEPTED,
    )
    async def change(request: Request) -> Response:
        return await ingest(request, "change")

    return [
        Route("/v1/ingest/runtime", runtime, methods=["POST"]),
        Route("/v1/ingest/change", change, methods=["POST"]),
    ]
