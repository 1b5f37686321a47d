"""``/v1/workspaces/{id}/incidents``: what went wrong, when, and what happened around it.

- ``GET …/incidents``: newest first by default; ``?status=open|acknowledged|resolved|
  active`` (``active``: open or acknowledged; comma-separated lists work too),
  ``?severity=``, ``?route_id=``, ``?provider=``, ``?source=alert_rule|breaker|manual``,
  ``?sort=created_at|updated_at|opened_at|severity|status:asc|desc``, ``?page=&limit=``
  with ``Link``.
- ``POST …/incidents``: a person opens one (``{title, severity, route_id?, provider?,
  model?, description?}``); alert rules and breakers open theirs through
  ``control.incidents_book.IncidentBook.open_or_join``.
- ``GET …/incidents/{incidentId}``: the incident with its ``timeline`` (its own entries
  and everything joined at read time: ``related_events``, ``policy_violations``,
  ``failover_actions`` — see ``_incident_join``).
- ``POST …/incidents/{incidentId}/notes`` ``{text}``: a note by the caller.
- ``PATCH …/incidents/{incidentId}/status`` ``{status}`` (the lifecycle endpoint shape of
  the Cendriix reference): ``open -> acknowledged -> resolved`` (or ``open -> resolved``);
  any other move is 409 ``conflict``, an unknown status 422.

Viewers read; members and up open, note and move.  Every change is recorded in the audit
chain by the control plane's audit wrapper (``incident.opened`` by the book itself).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from tollhouse.control._access import require_role, sql_store
from tollhouse.control._auth import ControlGateway
from tollhouse.control._http import endpoint, iso, json_object, json_response
from tollhouse.control._incident_join import join
from tollhouse.control._pagination import fetch_page, page_of, page_response, sort_of
from tollhouse.control._schema import (
    ANY_OBJECT,
    PAGE,
    TIMESTAMP,
    Param,
    Schema,
    array,
    choice,
    envelope,
    listing,
    obj,
    query,
    sort_param,
    spec,
    text,
)
from tollhouse.control._validation import Body, query_str
from tollhouse.control.incidents_book import (
    COLUMNS,
    SEVERITIES,
    SOURCE_KINDS,
    STATUSES,
    Incident,
    TimelineEntry,
    book_for,
    summary,
)
from tollhouse.errors import ValidationError

BASE = "/v1/workspaces/{id}/incidents"
SORTS = ("created_at", "updated_at", "opened_at", "severity", "status")
_ORDER = {
    "created_at": "opened_at",
    "opened_at": "opened_at",
    "updated_at": "updated_at",
    "severity": (
        "CASE severity WHEN 'low' THEN 0 WHEN 'medium' THEN 1 WHEN 'high' THEN 2 ELSE 3 END"
    ),
    "status": "CASE status WHEN 'open' THEN 0 WHEN 'acknowledged' THEN 1 ELSE 2 END",
}
MAX_NOTE = 10_000
OPEN = obj(
    {
        "title": text(),
        "severity": choice(SEVERITIES),
        "route_id": text(nullable=True),
        "provider": text(nullable=True),
        "model": text(nullable=True),
        "description": text(MAX_NOTE, nullable=True),
    },
    ["title", "severity"],
)
NOTE = obj({"text": text(MAX_NOTE)}, ["text"])
MOVE = obj({"status": choice(STATUSES)}, ["status"], description="open -> acknowledged -> resolved")
_STRING: Schema = {"type": "string"}
_MAYBE: Schema = {"type": ["string", "null"]}
INCIDENT = obj(
    {
        "id": _STRING,
        "incident_id": _STRING,
        "workspace_id": _STRING,
        "title": _STRING,
        "severity": choice(SEVERITIES),
        "status": choice(STATUSES),
        "source": obj(
            {"kind": choice(SOURCE_KINDS), "ref": _MAYBE},
            ["kind", "ref"],
            description="what opened it: an alert rule's id, a deployment's breaker, a person",
        ),
        "route_id": _MAYBE,
        "provider": _MAYBE,
        "model": _MAYBE,
        "opened_at": TIMESTAMP,
        "acknowledged_at": TIMESTAMP,
        "resolved_at": TIMESTAMP,
        "created_at": TIMESTAMP,
        "updated_at": TIMESTAMP,
    },
    ["id", "incident_id", "workspace_id", "title", "severity", "status", "source"],
    closed=False,
)
ENTRY = obj(
    {"id": _STRING, "at": TIMESTAMP, "kind": _STRING, "data": ANY_OBJECT},
    ["id", "at", "kind", "data"],
    closed=False,
    description="opened, joined, note, acknowledged, resolved, breaker.closed, "
    "alert.resolved, ingest.runtime, ingest.change, provider.failover, policy.blocked",
)
_JOINED = ("related_events", "policy_violations", "failover_actions")
DETAIL = obj(
    {**INCIDENT["properties"], "timeline": array(ENTRY), **{k: array(ENTRY) for k in _JOINED}},
    [*INCIDENT["required"], "timeline", *_JOINED],
    closed=False,
)


def _list_of(name: str, options: tuple[str, ...]) -> Param:
    """``?name=a,b`` (what ``_choices`` reads)."""
    one = f"({'|'.join(options)})"
    schema: Schema = {"type": "string", "pattern": f"^ *{one} *(, *{one} *)*$", "maxLength": 200}
    return query(name, schema, f"comma-separated: {', '.join(options)}")


LIST_PARAMS = (
    *PAGE,
    _list_of("status", (*STATUSES, "active")),
    _list_of("severity", SEVERITIES),
    _list_of("source", SOURCE_KINDS),
    query("route_id"),
    query("provider"),
    sort_param(SORTS),
)


def _choices(request: Request, name: str, options: tuple[str, ...]) -> list[str]:
    """``?name=a,b`` checked against ``options`` (422 naming the parameter)."""
    raw = query_str(request, name)
    if raw is None:
        return []
    wanted = [v.strip() for v in raw.split(",") if v.strip()]
    bad = [v for v in wanted if v not in options]
    if bad or not wanted:
        raise ValidationError(f"invalid {name}", {name: f"one or more of {', '.join(options)}"})
    return wanted


def _in(column: str, values: list[str], where: list[str], params: list[Any]) -> None:
    if values:
        where.append(f"{column} IN ({', '.join('?' for _ in values)})")
        params.extend(values)


def _entry(e: TimelineEntry) -> dict[str, Any]:
    return {"id": e.id, "at": iso(e.at), "kind": e.kind, "data": e.data, "_ts": e.at}


def routes(gw: ControlGateway) -> list[BaseRoute]:
    store = sql_store(gw)
    book = book_for(store)

    async def detail(incident: Incident) -> dict[str, Any]:
        joined = await join(store, incident)
        timeline = [_entry(e) for e in await book.timeline(incident.id)] + joined.entries()
        timeline.sort(key=lambda e: (e["_ts"], e["id"]))
        for e in timeline:
            e.pop("_ts", None)
        return {
            **summary(incident),
            "timeline": timeline,
            "related_events": joined.related_events,
            "policy_violations": joined.policy_violations,
            "failover_actions": joined.failover_actions,
        }

    @endpoint
    @spec("the workspace's incidents, newest first", params=LIST_PARAMS, response=listing(INCIDENT))
    async def list_all(request: Request) -> Response:
        wid = request.path_params["id"]
        await require_role(request, gw, wid, "viewer")
        page = page_of(request)
        statuses = _choices(request, "status", (*STATUSES, "active"))
        if "active" in statuses:
            statuses = [s for s in statuses if s != "active"] + ["open", "acknowledged"]
        where, params = ["workspace_id = ?"], [wid]
        _in("status", statuses, where, params)
        _in("severity", _choices(request, "severity", SEVERITIES), where, params)
        _in("source_kind", _choices(request, "source", SOURCE_KINDS), where, params)
        for name in ("route_id", "provider"):
            value = query_str(request, name)
            if value is not None:
                where.append(f"{name} = ?")
                params.append(value)
        field, descending = sort_of(request, SORTS, "created_at:desc")
        order = "DESC" if descending else "ASC"
        rows, total = await fetch_page(
            store,
            page,
            table="incidents",
            columns=COLUMNS,
            where=" AND ".join(where),
            params=params,
            order=f"{_ORDER[field]} {order}, opened_at {order}, id {order}",
        )
        return page_response(request, page, [summary(Incident.from_row(r)) for r in rows], total)

    @endpoint
    @spec("open an incident by hand (member)", body=OPEN, status=201, response=envelope(DETAIL))
    async def create(request: Request) -> Response:
        wid = request.path_params["id"]
        who = await require_role(request, gw, wid, "member")
        body = Body(await json_object(request), OPEN)
        title = body.text("title")
        severity = body.choice("severity")
        route, provider, model = (body.text(n) for n in ("route_id", "provider", "model"))
        description = body.text("description")
        body.done()
        assert title is not None and severity is not None  # noqa: S101 - checked by done()
        incident = await book.open_manual(
            wid,
            title=title,
            severity=severity,
            actor=who.actor,
            route=route,
            provider=provider,
            model=model,
            description=description,
        )
        return json_response({"data": await detail(incident)}, status=201)

    @endpoint
    @spec("the incident with its timeline", response=envelope(DETAIL))
    async def read(request: Request) -> Response:
        wid, iid = request.path_params["id"], request.path_params["incidentId"]
        await require_role(request, gw, wid, "viewer")
        return json_response({"data": await detail(await book.get(wid, iid))})

    @endpoint
    @spec(
        "add a note (member)",
        body=NOTE,
        status=201,
        response=envelope(obj({"incident_id": _STRING, **ENTRY["properties"]}, closed=False)),
    )
    async def note(request: Request) -> Response:
        wid, iid = request.path_params["id"], request.path_params["incidentId"]
        who = await require_role(request, gw, wid, "member")
        await book.get(wid, iid)
        body = Body(await json_object(request), NOTE)
        text = body.text("text")
        body.done()
        entry = await book.append(iid, "note", {"author": who.actor, "text": text})
        out = _entry(entry)
        out.pop("_ts")
        return json_response({"data": {"incident_id": iid, **out}}, status=201)

    @endpoint
    @spec("move the incident along its lifecycle (member)", body=MOVE, response=envelope(INCIDENT))
    async def move(request: Request) -> Response:
        wid, iid = request.path_params["id"], request.path_params["incidentId"]
        who = await require_role(request, gw, wid, "member")
        await book.get(wid, iid)
        body = Body(await json_object(request), MOVE)
        status = body.choice("status")
        body.done()
        assert status is not None  # noqa: S101 - checked by done()
        incident = await book.move(wid, iid, status, actor=who.actor)
        return json_response({"data": summary(incident)})

    return [
        Route(BASE, list_all, methods=["GET"]),
        Route(BASE, create, methods=["POST"]),
        Route(BASE + "/{incidentId}", read, methods=["GET"]),
        Route(BASE + "/{incidentId}/notes", note, methods=["POST"]),
        Route(BASE + "/{incidentId}/status", move, methods=["PATCH"]),
    ]
