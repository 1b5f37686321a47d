"""The hash-chained audit log in the store (migration ``0004_audit_log``).

Each entry's hash covers its own fields and the previous entry's hash, so changing,
removing or reordering any stored entry breaks the chain from that entry on.  An append
reads the chain head and inserts at ``seq + 1``; ``seq`` is the primary key, so two
writers (workers, replicas) racing for one position collide and the loser retries on the
new head.  Producers on a request path call ``submit``, which only queues: one background
task per process appends in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import orjson

from tollhouse.control._http import iso
from tollhouse.control._per_store import per_store
from tollhouse.errors import Conflict, TollhouseError
from tollhouse.events.types import Event
from tollhouse.store import SqlStore

log = logging.getLogger("tollhouse.audit")

GENESIS = "0" * 64
_COLUMNS = "seq, id, ts, actor, event_type, workspace_id, payload, prev_hash, hash"
_SELECT = f"SELECT {_COLUMNS} FROM audit_log"  # noqa: S608 - constant columns
_INSERT = f"INSERT INTO audit_log ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"  # noqa: S608
_VERIFY_BATCH = 1000
# Enforcement events the gateway emits that the log records (alerts are not enforcement).
ENFORCEMENT_EVENTS = frozenset(
    {
        "budget.exceeded",
        "session.killed",
        "loop.detected",
        "policy.blocked",
        "audit.flagged",
        "provider.failover",
    }
)


@dataclass(frozen=True)
class AuditEntry:
    seq: int
    id: str
    ts: float
    actor: str
    event_type: str
    workspace_id: str | None
    payload: dict[str, Any]
    prev_hash: str
    hash: str

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "seq": self.seq,
            "timestamp": iso(self.ts),
            "actor": self.actor,
            "eventType": self.event_type,
            "workspaceId": self.workspace_id,
            "payload": self.payload,
            "prevHash": self.prev_hash,
            "hash": self.hash,
        }


def entry_hash(
    seq: int,
    entry_id: str,
    ts: float,
    actor: str,
    event_type: str,
    workspace_id: str | None,
    payload: dict[str, Any],
    prev_hash: str,
) -> str:
    """SHA-256 (hex) of the entry's canonical JSON, previous hash included."""
    body = orjson.dumps(
        {
            "seq": seq,
            "id": entry_id,
            "ts": ts,
            "actor": actor,
            "eventType": event_type,
            "workspaceId": workspace_id,
            "payload": payload,
            "prevHash": prev_hash,
        },
        option=orjson.OPT_SORT_KEYS,
    )
    return hashlib.sha256(body).hexdigest()


def _entry(row: tuple[Any, ...]) -> AuditEntry:
    return AuditEntry(
        seq=int(row[0]),
        id=row[1],
        ts=float(row[2]),
        actor=row[3],
        event_type=row[4],
        workspace_id=row[5],
        payload=orjson.loads(row[6]),
        prev_hash=row[7],
        hash=row[8],
    )


@dataclass
class _Pending:
    actor: str
    event_type: str
    payload: dict[str, Any]
    workspace_id: str | None
    ts: float = field(default_factory=time.time)


class AuditLog:
    """Append, query and verify the chain; ``submit`` queues for the background appender."""

    def __init__(self, store: SqlStore, *, max_queue: int = 10_000, attempts: int = 50) -> None:
        self._store = store
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue(max_queue)
        self._task: asyncio.Task[None] | None = None
        self._attempts = attempts
        self.appended = 0
        self.dropped = 0

    # -- writing ------------------------------------------------------------------------

    async def append(
        self,
        actor: str,
        event_type: str,
        payload: dict[str, Any],
        *,
        workspace_id: str | None = None,
        ts: float | None = None,
    ) -> AuditEntry:
        """Append one entry at the chain head (retrying when another writer took it)."""
        at = time.time() if ts is None else ts
        entry_id = "aud_" + uuid.uuid4().hex
        for attempt in range(self._attempts):
            head = await self._store._fetch(
                "SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1"
            )
            seq, prev = (int(head[0][0]) + 1, head[0][1]) if head else (1, GENESIS)
            digest = entry_hash(seq, entry_id, at, actor, event_type, workspace_id, payload, prev)
            params = (
                seq,
                entry_id,
                at,
                actor,
                event_type,
                workspace_id,
                orjson.dumps(payload).decode(),
                prev,
                digest,
            )
            try:
                await self._store._transaction([(_INSERT, params)])
            except Conflict:
                await asyncio.sleep(0.001 * (attempt % 10))
                continue
            self.appended += 1
            return AuditEntry(
                seq, entry_id, at, actor, event_type, workspace_id, payload, prev, digest
            )
        raise Conflict("the audit log is busy: could not append")

    def submit(
        self,
        actor: str,
        event_type: str,
        payload: dict[str, Any],
        *,
        workspace_id: str | None = None,
    ) -> None:
        """Queue an entry; never blocks (a full queue drops it, counted and logged)."""
        try:
            self._queue.put_nowait(_Pending(actor, event_type, payload, workspace_id))
        except asyncio.QueueFull:
            self.dropped += 1
            log.error("audit queue full: dropped %s by %s", event_type, actor)
            return
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._drain(), name="audit-log")

    async def _drain(self) -> None:
        while True:
            item = await self._queue.get()
            try:
                for delay in (0.05, 0.2, 1.0, None):
                    try:
                        await self.append(
                            item.actor,
                            item.event_type,
                            item.payload,
                            workspace_id=item.workspace_id,
                            ts=item.ts,
                        )
                        break
                    except TollhouseError as exc:
                        if delay is None:
                            self.dropped += 1
                            log.error("audit append of %s failed: %s", item.event_type, exc)
                        else:
                            await asyncio.sleep(delay)
            finally:
                self._queue.task_done()

    def record_event(self, event: Event) -> None:
        """A ``WebhookDispatcher.listen`` listener: queue the enforcement events."""
        if event.type in ENFORCEMENT_EVENTS:
            payload = {
                "eventId": event.id,
                "teamId": event.team_id,
                "keyName": event.key_name,
                "data": event.data,
            }
            self.submit("gateway", event.type, payload, workspace_id=event.workspace_id)

    async def flush(self) -> None:
        """Wait until every submitted entry is appended (or given up on)."""
        await self._queue.join()

    async def stop(self, timeout: float = 30.0) -> None:
        """Append what is queued (within ``timeout`` s; what is left then is logged as lost)."""
        if self._task is not None:
            try:
                async with asyncio.timeout(timeout):
                    await self.flush()
            except TimeoutError:
                log.error("audit log stopping: %d queued entries not appended", self.pending)
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    @property
    def pending(self) -> int:
        return self._queue.qsize()

    # -- reading ------------------------------------------------------------------------

    async def query(
        self,
        *,
        actor: str | None = None,
        event_type: str | None = None,
        since: float | None = None,
        until: float | None = None,
        workspace_id: str | None = None,
        before_seq: int | None = None,
        limit: int = 25,
    ) -> list[AuditEntry]:
        """Entries newest first, filtered; ``before_seq`` continues a previous page."""
        where: list[str] = []
        params: list[Any] = []
        for clause, value in (
            ("actor = ?", actor),
            ("event_type = ?", event_type),
            ("ts >= ?", since),
            ("ts <= ?", until),
            ("workspace_id = ?", workspace_id),
            ("seq < ?", before_seq),
        ):
            if value is not None:
                where.append(clause)
                params.append(value)
        sql = _SELECT + (f" WHERE {' AND '.join(where)}" if where else "")
        rows = await self._store._fetch(f"{sql} ORDER BY seq DESC LIMIT ?", [*params, limit])
        return [_entry(r) for r in rows]

    async def verify(self) -> dict[str, Any]:
        """Walk the chain from the start: ``{valid, checkedCount}`` and the first bad entry."""
        prev, last_seq, checked = GENESIS, 0, 0
        while True:
            rows = await self._store._fetch(
                f"{_SELECT} WHERE seq > ? ORDER BY seq LIMIT ?", (last_seq, _VERIFY_BATCH)
            )
            if not rows:
                return {"valid": True, "checkedCount": checked}
            for row in rows:
                try:
                    e = _entry(row)
                except (ValueError, TypeError):
                    return _bad(checked, int(row[0]), str(row[1]), "entry is not readable")
                reason = None
                if e.seq != last_seq + 1:
                    reason = f"sequence gap: expected {last_seq + 1}"
                elif e.prev_hash != prev:
                    reason = "prevHash does not match the previous entry's hash"
                elif e.hash != entry_hash(
                    e.seq, e.id, e.ts, e.actor, e.event_type, e.workspace_id, e.payload, e.prev_hash
                ):
                    reason = "hash does not match the entry's contents"
                if reason is not None:
                    return _bad(checked, e.seq, e.id, reason)
                prev, last_seq, checked = e.hash, e.seq, checked + 1


# The audit log of a store (one per store object, made on first use).
audit_for = per_store(AuditLog)


def _bad(checked: int, seq: int, entry_id: str, reason: str) -> dict[str, Any]:
    return {
        "valid": False,
        "checkedCount": checked,
        "firstBadEntry": {"id": entry_id, "seq": seq, "reason": reason},
    }
