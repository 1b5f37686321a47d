"""Guardrails in the store, and the in-memory copy the hot path reads.

``GuardrailStore`` persists records and assignments through the SQL store's primitives
(migration ``0002_guardrails``); each write bumps ``guardrails_version`` in the same
transaction.  ``GuardrailCache`` polls that version (like the key cache) so a guardrail
created or assigned through any worker applies on every worker within one interval; the
hot path calls the cache and gets an immutable tuple.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from typing import Any, Literal

import orjson

from tollhouse.guard.guardrails import Guardrail
from tollhouse.store import SqlStore

log = logging.getLogger("tollhouse.guardrails")

Kind = Literal["key", "member"]
_BUMP = "UPDATE store_meta SET value = value + 1 WHERE name = 'guardrails_version'"
_SELECT = "SELECT id, body, created_at, updated_at FROM guardrails"


class GuardrailStore:
    def __init__(self, store: SqlStore) -> None:
        self._store = store

    async def _fetch(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return await self._store._fetch(sql, params)

    async def _tx(self, steps: list[tuple[str, Sequence[Any]]]) -> list[int]:
        return await self._store._transaction([*steps, (_BUMP, ())])

    async def version(self) -> int:
        rows = await self._fetch("SELECT value FROM store_meta WHERE name = 'guardrails_version'")
        return int(rows[0][0]) if rows else 0

    async def create(self, g: Guardrail) -> None:
        sql = (
            "INSERT INTO guardrails (id, name, body, created_at, updated_at) VALUES (?, ?, ?, ?, ?)"
        )
        body = orjson.dumps(g.to_record()).decode()
        await self._tx([(sql, (g.id, g.name, body, g.created_at, g.updated_at))])

    async def update(self, g: Guardrail) -> bool:
        sql = "UPDATE guardrails SET name = ?, body = ?, updated_at = ? WHERE id = ?"
        body = orjson.dumps(g.to_record()).decode()
        counts = await self._tx([(sql, (g.name, body, g.updated_at, g.id))])
        return counts[0] > 0

    async def delete(self, gid: str) -> bool:
        counts = await self._tx(
            [
                ("DELETE FROM guardrails WHERE id = ?", (gid,)),
                ("DELETE FROM guardrail_assignments WHERE guardrail_id = ?", (gid,)),
            ]
        )
        return counts[0] > 0

    async def _targets(self, gids: Sequence[str]) -> dict[str, dict[str, set[str]]]:
        out: dict[str, dict[str, set[str]]] = {g: {"key": set(), "member": set()} for g in gids}
        if not gids:
            return out
        marks = ", ".join("?" for _ in gids)
        sql = (
            "SELECT guardrail_id, kind, target FROM guardrail_assignments "  # noqa: S608
            f"WHERE guardrail_id IN ({marks})"
        )
        for gid, kind, target in await self._fetch(sql, list(gids)):
            out[gid][kind].add(target)
        return out

    def _build(self, row: tuple[Any, ...], targets: dict[str, set[str]]) -> Guardrail:
        gid, body, created, updated = row
        return Guardrail.from_record(
            gid,
            orjson.loads(body),
            float(created),
            None if updated is None else float(updated),
            frozenset(targets["key"]),
            frozenset(targets["member"]),
        )

    async def get(self, gid: str) -> Guardrail | None:
        rows = await self._fetch(f"{_SELECT} WHERE id = ?", (gid,))
        if not rows:
            return None
        return self._build(rows[0], (await self._targets([gid]))[gid])

    async def page(self, offset: int = 0, limit: int = 100) -> tuple[list[Guardrail], int]:
        rows = await self._fetch(
            f"{_SELECT} ORDER BY created_at, id LIMIT ? OFFSET ?", (limit, offset)
        )
        targets = await self._targets([r[0] for r in rows])
        total = int((await self._fetch("SELECT COUNT(*) FROM guardrails"))[0][0])
        return [self._build(r, targets[r[0]]) for r in rows], total

    async def all(self) -> list[Guardrail]:
        rows = await self._fetch(f"{_SELECT} ORDER BY created_at, id")
        targets = await self._targets([r[0] for r in rows])
        return [self._build(r, targets[r[0]]) for r in rows]

    async def assign(self, gid: str, kind: Kind, targets: Sequence[str]) -> int:
        now = time.time()
        sql = (
            "INSERT INTO guardrail_assignments (guardrail_id, kind, target, created_at) "
            "VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING"
        )
        counts = await self._tx([(sql, (gid, kind, t, now)) for t in dict.fromkeys(targets)])
        return sum(max(0, c) for c in counts[:-1])

    async def unassign(self, gid: str, kind: Kind, targets: Sequence[str]) -> int:
        sql = "DELETE FROM guardrail_assignments WHERE guardrail_id = ? AND kind = ? AND target = ?"
        counts = await self._tx([(sql, (gid, kind, t)) for t in dict.fromkeys(targets)])
        return sum(max(0, c) for c in counts[:-1])

    async def assignments(
        self, kind: Kind, gid: str | None, offset: int = 0, limit: int = 100
    ) -> tuple[list[tuple[str, str, float]], int]:
        """``(guardrail_id, target, created_at)`` rows and the total count."""
        where = "kind = ?"
        params: list[str] = [kind]
        if gid is not None:
            where += " AND guardrail_id = ?"
            params.append(gid)
        rows = await self._fetch(
            "SELECT guardrail_id, target, created_at FROM guardrail_assignments "  # noqa: S608
            f"WHERE {where} ORDER BY created_at, guardrail_id, target LIMIT ? OFFSET ?",
            [*params, limit, offset],
        )
        count = await self._fetch(
            f"SELECT COUNT(*) FROM guardrail_assignments WHERE {where}",  # noqa: S608
            params,
        )
        return [(str(r[0]), str(r[1]), float(r[2])) for r in rows], int(count[0][0])


class GuardrailCache:
    """Every guardrail in memory; calling the cache returns the current tuple."""

    def __init__(self, repo: GuardrailStore, refresh_interval: float = 0.5) -> None:
        self.repo = repo
        self.refresh_interval = refresh_interval
        self._all: tuple[Guardrail, ...] = ()
        self._version: int | None = None
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    def __call__(self) -> tuple[Guardrail, ...]:
        return self._all

    async def start(self) -> None:
        await self.refresh(force=True)
        if self._task is None:
            self._task = asyncio.create_task(self._poll(), name="tollhouse-guardrail-cache")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def refresh(self, *, force: bool = False) -> bool:
        async with self._lock:
            version = await self.repo.version()
            if not force and version == self._version:
                return False
            self._all = tuple(await self.repo.all())
            self._version = version
            return True

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.refresh_interval)
            try:
                await self.refresh()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # keep enforcing the last good set
                log.warning("guardrail cache refresh failed (%s); using the last set", exc)
