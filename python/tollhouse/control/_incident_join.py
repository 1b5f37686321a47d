"""What joins an incident at read time: ingested events, failover actions and policy
violations around it.

The window is from ``LOOKBACK_S`` before the incident opened (a provider change shortly
before an outage is the usual suspect) to its resolution (or now).  Within it:

- ``related_events``: ingested runtime events (``/v1/ingest/runtime``) of the
  incident's workspace whose ``route_id`` is the incident's route or whose ``provider``
  is its provider, and change events (``/v1/ingest/change``) of its provider (an
  incident naming neither route nor provider, e.g. a cost alert, joins them all);
- ``failover_actions``: ``provider.failover`` events of the workspace's failover
  policies (on the incident's route, when it has one);
- ``policy_violations``: ``policy.blocked`` events of the workspace's traffic (the audit
  entry's workspace: the blocked request's virtual key's); entries recorded before keys
  had workspaces go by their rule (one of the workspace's policies; config rules and
  redaction blocks belong to ``default``); on the incident's route when both name a model.

Joining on read keeps the ingest path and the data plane free of incident lookups, and
an event ingested by any replica joins every incident it matches.  Enforcement events are
read from the audit chain, where the gateway records them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import orjson

from tollhouse.control._http import iso
from tollhouse.control.audit_chain import audit_for
from tollhouse.control.incidents_book import Incident
from tollhouse.events.types import POLICY_BLOCKED, PROVIDER_FAILOVER
from tollhouse.store import SqlStore

LOOKBACK_S = 900.0
MAX_EACH = 100  # newest kept of each list
_SCAN = 1000  # rows read per source


@dataclass
class Joined:
    related_events: list[dict[str, Any]] = field(default_factory=list)
    policy_violations: list[dict[str, Any]] = field(default_factory=list)
    failover_actions: list[dict[str, Any]] = field(default_factory=list)

    def entries(self) -> list[dict[str, Any]]:
        """All of them as timeline entries (``at`` as UNIX seconds under ``_ts``)."""
        return [*self.related_events, *self.policy_violations, *self.failover_actions]


def _same(a: Any, b: str | None) -> bool:
    return isinstance(a, str) and b is not None and a.lower() == b.lower()


def _entry(entry_id: str, ts: float, kind: str, data: dict[str, Any]) -> dict[str, Any]:
    return {"id": entry_id, "at": iso(ts), "kind": kind, "data": data, "_ts": ts}


async def join(store: SqlStore, incident: Incident) -> Joined:
    since = incident.opened_at - LOOKBACK_S
    until = incident.resolved_at if incident.resolved_at is not None else time.time()
    out = Joined()
    rows = await store._fetch(
        "SELECT id, kind, event, created_at FROM ingest_events "
        "WHERE scope = ? AND created_at >= ? AND created_at <= ? ORDER BY created_at DESC "
        "LIMIT ?",
        (incident.workspace_id, since, until, _SCAN),
    )
    for rid, kind, raw, at in rows:
        event = orjson.loads(raw)
        if incident.route_id is None and incident.provider is None:
            hit = True  # a workspace-wide incident (cost, budget): everything around it
        elif kind == "runtime":
            hit = _same(event.get("route_id"), incident.route_id) or _same(
                event.get("provider"), incident.provider
            )
        else:
            hit = _same(event.get("provider"), incident.provider)
        if hit and len(out.related_events) < MAX_EACH:
            out.related_events.append(_entry(rid, float(at), f"ingest.{kind}", event))
    log = audit_for(store)
    await log.flush()  # this worker's queued enforcement events first
    failovers = await log.query(event_type=PROVIDER_FAILOVER, since=since, until=until, limit=_SCAN)
    for e in failovers:
        data = e.payload.get("data") or {}
        if data.get("workspaceId") != incident.workspace_id:
            continue
        if incident.route_id is not None and not _same(data.get("routeId"), incident.route_id):
            continue
        if len(out.failover_actions) < MAX_EACH:
            out.failover_actions.append(_entry(e.id, e.ts, PROVIDER_FAILOVER, data))
    blocks = await log.query(event_type=POLICY_BLOCKED, since=since, until=until, limit=_SCAN)
    if blocks:
        rows = await store._fetch(
            "SELECT id, workspace_id FROM workspace_resources WHERE kind = 'policies'"
        )
        owner_of = {str(r[0]): str(r[1]) for r in rows}
        for e in blocks:
            data = e.payload.get("data") or {}
            owner = e.workspace_id or owner_of.get(str(data.get("ruleId")), "default")
            if owner != incident.workspace_id:
                continue
            model = data.get("model")
            if (
                incident.route_id is not None
                and model is not None
                and not (_same(model, incident.route_id) or _same(model, incident.model))
            ):
                continue
            if len(out.policy_violations) < MAX_EACH:
                out.policy_violations.append(_entry(e.id, e.ts, POLICY_BLOCKED, data))
    return out
