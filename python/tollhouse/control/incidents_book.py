"""The incident book: incidents of a workspace and their timelines (migration 0008).

``open_or_join`` is how anything opens an incident (an alert rule firing, a deployment's
circuit breaker opening): it opens one, or, while an incident for the same source
(``source_kind`` + ``source_ref``) is still open or acknowledged in the workspace, appends
the occurrence to that incident's timeline instead.  The dedupe is the database's: an
open incident holds ``open_key = "workspace|kind|ref"`` under a UNIQUE constraint (set
to NULL when it is resolved), so of two workers or replicas opening at once exactly one
insert wins and the other joins.  Only the winner fires ``incident.opened`` through the
dispatcher and records ``incident.opened`` in the audit chain.

Status moves forward only: ``open -> acknowledged -> resolved`` (``open -> resolved``
too); anything else is 409 ``conflict``.  A resolved incident frees its source, so the
next occurrence opens a new incident.

Get the book of a store with ``book_for(store)``; the running gateway gives it the
dispatcher's ``emit`` at start (``Gateway.incidents`` is the same object).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Final, Literal

import orjson

from tollhouse.control._http import iso
from tollhouse.control._per_store import per_store
from tollhouse.control.audit_chain import audit_for
from tollhouse.errors import Conflict, NotFound, Unavailable
from tollhouse.events.types import INCIDENT_OPENED, Event
from tollhouse.store import SqlStore

log = logging.getLogger("tollhouse.incidents")

Severity = Literal["low", "medium", "high", "critical"]
Status = Literal["open", "acknowledged", "resolved"]
SEVERITIES: Final[tuple[str, ...]] = ("low", "medium", "high", "critical")
STATUSES: Final[tuple[str, ...]] = ("open", "acknowledged", "resolved")
SOURCE_KINDS: Final[tuple[str, ...]] = ("alert_rule", "breaker", "manual")
# status -> the statuses it may move to
NEXT: Final[dict[str, tuple[str, ...]]] = {
    "open": ("acknowledged", "resolved"),
    "acknowledged": ("resolved",),
    "resolved": (),
}
COLUMNS: Final = (
    "id, workspace_id, title, severity, status, source_kind, source_ref, route_id, "
    "provider, model, opened_at, acknowledged_at, resolved_at, updated_at"
)
_INSERT = (
    f"INSERT INTO incidents ({COLUMNS}, open_key) "  # noqa: S608 - constant columns
    "VALUES (?, ?, ?, ?, 'open', ?, ?, ?, ?, ?, ?, NULL, NULL, ?, ?)"
)
_TIMELINE = "INSERT INTO incident_timeline (id, incident_id, at, kind, data) VALUES (?, ?, ?, ?, ?)"


@dataclass(frozen=True, slots=True)
class Incident:
    id: str
    workspace_id: str
    title: str
    severity: str
    status: str
    source_kind: str
    source_ref: str | None
    route_id: str | None
    provider: str | None
    model: str | None
    opened_at: float
    acknowledged_at: float | None
    resolved_at: float | None
    updated_at: float

    @classmethod
    def from_row(cls, row: tuple[Any, ...]) -> Incident:
        def ts(v: Any) -> float | None:
            return None if v is None else float(v)

        return cls(
            id=row[0],
            workspace_id=row[1],
            title=row[2],
            severity=row[3],
            status=row[4],
            source_kind=row[5],
            source_ref=row[6],
            route_id=row[7],
            provider=row[8],
            model=row[9],
            opened_at=float(row[10]),
            acknowledged_at=ts(row[11]),
            resolved_at=ts(row[12]),
            updated_at=float(row[13]),
        )


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    id: str
    at: float
    kind: str
    data: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Joined:
    """What ``open_or_join`` did: ``opened`` a new incident or joined ``incident_id``."""

    incident_id: str
    opened: bool


def _id(prefix: str) -> str:
    return prefix + uuid.uuid4().hex[:20]


def _event_data(event: Event | Mapping[str, Any] | None) -> dict[str, Any]:
    if event is None:
        return {}
    if isinstance(event, Event):
        return {"event": event.payload()}
    return {"event": dict(event)}


class IncidentBook:
    """Open, join, move and read the incidents kept in one store."""

    def __init__(self, store: SqlStore, emit: Callable[[Event], None] | None = None) -> None:
        self.store = store
        self.emit = emit  # the dispatcher's emit (set by the gateway at start)
        self.opened = 0
        self.joined = 0

    # -- writing --------------------------------------------------------------------------

    async def open_or_join(
        self,
        workspace_id: str,
        *,
        source_kind: str,
        source_ref: str,
        title: str,
        severity: str,
        route: str | None = None,
        provider: str | None = None,
        model: str | None = None,
        event: Event | Mapping[str, Any] | None = None,
    ) -> Joined:
        """Open an incident for this source, or append to the one still open for it.

        ``source_kind`` is ``alert_rule`` (``source_ref``: the rule id) or ``breaker``
        (the deployment id); ``event`` (an ``Event`` or any JSON object) is kept in the
        timeline entry.  Raises ``Unavailable`` when the store is down."""
        if source_kind not in SOURCE_KINDS:
            raise ValueError(f"source_kind must be one of {SOURCE_KINDS}, got {source_kind!r}")
        if severity not in SEVERITIES:
            raise ValueError(f"severity must be one of {SEVERITIES}, got {severity!r}")
        key = f"{workspace_id}|{source_kind}|{source_ref}"
        data = _event_data(event)
        for _ in range(5):
            rows = await self.store._fetch("SELECT id FROM incidents WHERE open_key = ?", (key,))
            if rows:
                incident_id = str(rows[0][0])
                await self.append(incident_id, "joined", {"title": title, **data})
                self.joined += 1
                return Joined(incident_id, opened=False)
            try:
                incident = await self._insert(
                    workspace_id, key, title, severity, source_kind, source_ref,
                    route, provider, model, data,
                )  # fmt: skip
            except Conflict:  # another worker opened it first: join theirs
                continue
            self._announce(incident)
            return Joined(incident.id, opened=True)
        raise Unavailable("incidents: could not open or join (source kept changing state)")

    async def open_manual(
        self,
        workspace_id: str,
        *,
        title: str,
        severity: str,
        actor: str,
        route: str | None = None,
        provider: str | None = None,
        model: str | None = None,
        description: str | None = None,
    ) -> Incident:
        """An incident a person opened (no dedupe: ``open_key`` stays NULL)."""
        data: dict[str, Any] = {"author": actor}
        if description is not None:
            data["description"] = description
        incident = await self._insert(
            workspace_id, None, title, severity, "manual", None, route, provider, model, data
        )
        self._announce(incident)
        return incident

    async def _insert(
        self,
        workspace_id: str,
        open_key: str | None,
        title: str,
        severity: str,
        source_kind: str,
        source_ref: str | None,
        route: str | None,
        provider: str | None,
        model: str | None,
        data: dict[str, Any],
    ) -> Incident:
        at = time.time()
        iid = _id("inc_")
        params = (
            iid, workspace_id, title, severity, source_kind, source_ref,
            route, provider, model, at, at, open_key,
        )  # fmt: skip
        entry = (_id("itl_"), iid, at, "opened", orjson.dumps(data).decode())
        await self.store._transaction([(_INSERT, params), (_TIMELINE, entry)])
        self.opened += 1
        return Incident(
            iid, workspace_id, title, severity, "open", source_kind, source_ref,
            route, provider, model, at, None, None, at,
        )  # fmt: skip

    def _announce(self, incident: Incident) -> None:
        """``incident.opened`` to the webhooks and the audit chain (the opener only)."""
        data = summary(incident)
        audit_for(self.store).submit(
            "gateway", INCIDENT_OPENED, {"data": data}, workspace_id=incident.workspace_id
        )
        if self.emit is None:
            return
        try:
            self.emit(Event(INCIDENT_OPENED, data))
        except Exception as exc:  # a webhook problem must not undo the incident
            log.warning("incident.opened event not sent: %s", exc)

    async def append(
        self, incident_id: str, kind: str, data: Mapping[str, Any], *, at: float | None = None
    ) -> TimelineEntry:
        """Append one entry to an incident's timeline (and touch its ``updated_at``)."""
        when = time.time() if at is None else at
        entry = TimelineEntry(_id("itl_"), when, kind, dict(data))
        await self.store._transaction(
            [
                (_TIMELINE, (entry.id, incident_id, when, kind, orjson.dumps(entry.data).decode())),
                ("UPDATE incidents SET updated_at = ? WHERE id = ?", (when, incident_id)),
            ]
        )
        return entry

    async def append_to_source(
        self,
        workspace_id: str,
        *,
        source_kind: str,
        source_ref: str,
        kind: str,
        data: Mapping[str, Any] | None = None,
    ) -> str | None:
        """Append ``kind`` to the open or acknowledged incident of this source (e.g. an
        alert rule clearing: ``kind="resolved"``); its id, or None when none is open."""
        rows = await self.store._fetch(
            "SELECT id FROM incidents WHERE open_key = ?",
            (f"{workspace_id}|{source_kind}|{source_ref}",),
        )
        if not rows:
            return None
        incident_id = str(rows[0][0])
        await self.append(incident_id, kind, data or {})
        return incident_id

    async def move(
        self, workspace_id: str, incident_id: str, status: str, *, actor: str
    ) -> Incident:
        """Move an incident to ``status``; 404 if unknown, 409 if the move is not allowed
        from its current status (checked and made in one UPDATE, so racing callers
        cannot both move it)."""
        current = await self.get(workspace_id, incident_id)
        if status not in NEXT[current.status]:
            raise Conflict(
                f"incident {incident_id!r} is {current.status}: it cannot become {status} "
                f"(allowed: {', '.join(NEXT[current.status]) or 'none'})"
            )
        at = time.time()
        stamp = "acknowledged_at" if status == "acknowledged" else "resolved_at"
        free = ", open_key = NULL" if status == "resolved" else ""
        sql = (
            f"UPDATE incidents SET status = ?, {stamp} = ?, updated_at = ?{free} "  # noqa: S608
            "WHERE id = ? AND workspace_id = ? AND status = ?"
        )
        counts = await self.store._transaction(
            [(sql, (status, at, at, incident_id, workspace_id, current.status))]
        )
        if counts[0] != 1:
            now = await self.get(workspace_id, incident_id)
            raise Conflict(f"incident {incident_id!r} changed meanwhile: it is {now.status}")
        await self.append(incident_id, status, {"actor": actor, "from": current.status}, at=at)
        if status == "acknowledged":
            return replace(current, status=status, acknowledged_at=at, updated_at=at)
        return replace(current, status=status, resolved_at=at, updated_at=at)

    # -- reading --------------------------------------------------------------------------

    async def get(self, workspace_id: str, incident_id: str) -> Incident:
        rows = await self.store._fetch(
            f"SELECT {COLUMNS} FROM incidents WHERE id = ? AND workspace_id = ?",  # noqa: S608
            (incident_id, workspace_id),
        )
        if not rows:
            raise NotFound(f"incident {incident_id!r} not found")
        return Incident.from_row(rows[0])

    async def timeline(self, incident_id: str) -> list[TimelineEntry]:
        rows = await self.store._fetch(
            "SELECT id, at, kind, data FROM incident_timeline WHERE incident_id = ? "
            "ORDER BY at, id",
            (incident_id,),
        )
        return [TimelineEntry(r[0], float(r[1]), r[2], orjson.loads(r[3])) for r in rows]


# The incident book of a store (one per store object, made on first use).
book_for = per_store(IncidentBook)


def summary(incident: Incident) -> dict[str, Any]:
    """The incident as the API and the ``incident.opened`` event show it."""
    return {
        "id": incident.id,
        "incident_id": incident.id,
        "workspace_id": incident.workspace_id,
        "title": incident.title,
        "severity": incident.severity,
        "status": incident.status,
        "source": {"kind": incident.source_kind, "ref": incident.source_ref},
        "route_id": incident.route_id,
        "provider": incident.provider,
        "model": incident.model,
        "opened_at": iso(incident.opened_at),
        "acknowledged_at": iso(incident.acknowledged_at),
        "resolved_at": iso(incident.resolved_at),
        "created_at": iso(incident.opened_at),
        "updated_at": iso(incident.updated_at),
    }


__all__ = [
    "NEXT",
    "SEVERITIES",
    "SOURCE_KINDS",
    "STATUSES",
    "Incident",
    "IncidentBook",
    "Joined",
    "TimelineEntry",
    "book_for",
    "summary",
]
