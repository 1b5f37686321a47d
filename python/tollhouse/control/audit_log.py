"""``GET /v1/audit/logs`` and ``GET /v1/audit/verify``, and what feeds the log.

Every successful control-plane change (a 2xx answer to POST/PUT/PATCH/DELETE on any
control route) is recorded by ``audited``, which wraps the route's ASGI app and queues the
entry after the response is sent: the request never waits on the log.  Request bodies are
not recorded (they may carry secrets); the route, path parameters and status are.  A
change is filed under the workspace it was made in: the one ``require_role`` checked the
caller against (ingest's ``?workspace=``, a workspace key's own), else a
``/v1/workspaces/{id}/…`` path's ``id``.  Gateway enforcement events (budget exceeded,
policy blocks, killed sessions, failovers) are filed under the workspace of the virtual key
that caused them (a failover under its policy's); admin-wide changes (virtual keys,
guardrails, creating a workspace) carry no workspace.

Who reads: the admin key reads every entry (``workspaceId=`` filters); a workspace key
(``wk_…``) of an owner or admin reads its own workspace's entries only (``workspaceId=`` of
another workspace is 403, as on the workspace routes); members and viewers are 403 (the
seeds name no audit role, so the log is kept to those who manage the workspace).
``/v1/audit/verify`` stays with the admin key: it walks the whole chain, and a chain
check over one workspace's entries would prove nothing (each hash links to the previous
entry of any workspace).
"""

from __future__ import annotations

import asyncio
import contextlib
import re

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tollhouse.control._access import principal, require_role
from tollhouse.control._auth import ControlGateway, is_admin, require_admin
from tollhouse.control._http import endpoint, json_response
from tollhouse.control._schema import ADMIN, ANY_OBJECT, LIMIT, TIME_RANGE, array, obj, query, spec
from tollhouse.control._validation import query_limit, query_str, query_time
from tollhouse.control.audit_chain import AuditLog, audit_for
from tollhouse.errors import Forbidden, InvalidKey, ValidationError
from tollhouse.guard.keys import bearer_token
from tollhouse.store import SqlStore

_CURSOR = re.compile("^[0-9]{1,18}$")
_VERBS = {"POST": "create", "PUT": "update", "PATCH": "update", "DELETE": "delete"}


def audit_of(gw: ControlGateway) -> AuditLog:
    """The gateway's audit log (one per store object, made on first use)."""
    store = gw.store
    if not isinstance(store, SqlStore):
        raise TypeError("the audit log needs a SQL store")
    return audit_for(store)


def actor_of(request: Request, gw: ControlGateway) -> str:
    """Who made a request, for the log: ``admin``, ``apikey:<id>`` (a workspace key, as
    noted by the route), ``key:<label>`` or ``anonymous``."""
    noted = request.scope.get("state", {}).get("actor")
    if isinstance(noted, str):
        return noted
    if is_admin(request, gw):
        return "admin"
    token = bearer_token(request.headers.get("authorization"))
    if token is None:
        return "anonymous"
    try:
        return f"key:{gw.keys.authenticate(token).label}"
    except InvalidKey:
        return "anonymous"


def event_type_of(method: str, template: str) -> str:
    """``POST /v1/keys`` -> ``keys.create``; ``PATCH /v1/keys/{hash}`` -> ``keys.update``."""
    parts = [p for p in template.split("/") if p and p != "v1" and not p.startswith("{")]
    return ".".join([*parts, _VERBS.get(method, method.lower())])


def workspace_of(request: Request, template: str, params: dict[str, str]) -> str | None:
    """The workspace a change was made in: the one its role was checked in, else a
    ``/v1/workspaces/{id}/…`` path's ``id``; None for a change outside any workspace."""
    noted = request.scope.get("state", {}).get("workspace_id")
    if isinstance(noted, str):
        return noted
    return params.get("id") if template.startswith("/v1/workspaces/") else None


def audited(app: ASGIApp, template: str, gw: ControlGateway) -> ASGIApp:
    """Wrap a control route's app so each successful change is queued for the log."""

    async def wrapper(scope: Scope, receive: Receive, send: Send) -> None:
        method = scope.get("method", "GET")
        if scope["type"] != "http" or method not in _VERBS:
            await app(scope, receive, send)
            return
        status = 0

        async def tap(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        await app(scope, receive, tap)
        if 200 <= status < 300:
            request = Request(scope)
            params = {k: str(v) for k, v in (scope.get("path_params") or {}).items()}
            audit_of(gw).submit(
                actor_of(request, gw),
                event_type_of(method, template),
                {
                    "method": method,
                    "path": scope.get("path", ""),
                    "route": template,
                    "params": params,
                    "status": status,
                },
                workspace_id=workspace_of(request, template, params),
            )

    return wrapper


def audit_routes(routes: list[BaseRoute], gw: ControlGateway) -> list[BaseRoute]:
    """Record changes made through any of ``routes`` (wrapped in place)."""
    if not isinstance(gw.store, SqlStore):
        return routes
    for route in routes:
        if isinstance(route, Route) and set(route.methods or ()) & set(_VERBS):
            route.app = audited(route.app, route.path, gw)
    return routes


def routes(gw: ControlGateway) -> list[BaseRoute]:
    if not isinstance(gw.store, SqlStore):
        return []

    @endpoint
    @spec(
        "audit log entries, newest first: every entry for the admin key, the key's own"
        " workspace's for a workspace key of an owner or admin (403 for another workspace"
        " or a lower role)",
        params=(
            LIMIT,
            query("cursor", {"type": "string", "pattern": _CURSOR.pattern}, "nextCursor"),
            *TIME_RANGE,
            query("actor"),
            query("eventType"),
            query("workspaceId"),
        ),
        response=obj(
            {"entries": array(ANY_OBJECT), "nextCursor": {"type": ["string", "null"]}},
            ["entries", "nextCursor"],
        ),
    )
    async def logs(request: Request) -> Response:
        """The admin key reads (and filters) every workspace; a workspace key of an owner
        or admin its own only (another ``workspaceId`` 403); members and viewers 403."""
        caller = await principal(request, gw)
        workspace_id = query_str(request, "workspaceId")
        if caller.workspace_id is not None:  # a workspace key: its own workspace, admin+
            await require_role(request, gw, workspace_id or caller.workspace_id, "admin")
            workspace_id = caller.workspace_id
        limit = query_limit(request)
        cursor = query_str(request, "cursor")
        before: int | None = None
        if cursor is not None:
            if _CURSOR.fullmatch(cursor) is None:  # a sequence number (fits SQL's bigint)
                raise ValidationError("invalid cursor", {"cursor": "not a cursor from this API"})
            before = int(cursor)
        since, until = query_time(request, "from"), query_time(request, "to")
        if since is not None and until is not None and since > until:
            raise ValidationError("invalid time range", {"from": "must not be after 'to'"})
        audit = audit_of(gw)
        with contextlib.suppress(TimeoutError):  # this worker's own queued changes first
            async with asyncio.timeout(2):
                await audit.flush()
        entries = await audit.query(
            actor=query_str(request, "actor"),
            event_type=query_str(request, "eventType"),
            since=since,
            until=until,
            workspace_id=workspace_id,
            before_seq=before,
            limit=limit,
        )
        next_cursor = str(entries[-1].seq) if len(entries) == limit and entries else None
        response = json_response(
            {"entries": [e.to_json() for e in entries], "nextCursor": next_cursor}
        )
        if next_cursor is not None:
            url = request.url.include_query_params(cursor=next_cursor, limit=limit)
            response.headers["Link"] = f'<{url}>; rel="next"'
        return response

    @endpoint
    @spec(
        "check the whole hash chain (admin key: the chain links every workspace's"
        " entries, so it is only checked whole)",
        response=obj(
            {"valid": {"type": "boolean"}, "checkedCount": {"type": "integer"}}, closed=False
        ),
        auth=ADMIN,
    )
    async def verify(request: Request) -> Response:
        """The whole chain, admin key only: each hash covers the previous entry of any
        workspace, so a check over one workspace's entries (a filtered subset) would be
        meaningless; a workspace key is 403."""
        if (await principal(request, gw)).workspace_id is not None:
            raise Forbidden("the chain is checked whole, across workspaces: the admin key only")
        require_admin(request, gw)
        return json_response(await audit_of(gw).verify())

    return [
        Route("/v1/audit/logs", logs, methods=["GET"]),
        Route("/v1/audit/verify", verify, methods=["GET"]),
    ]
