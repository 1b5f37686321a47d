"""The SQL both backends share: queries, row <-> record conversion, key versioning.

A backend supplies four primitives (``_fetch``, ``_transaction``, ``_insert_many`` and
the lifecycle); everything the ``Store`` protocol promises is written once here.  SQL is
written with ``?`` placeholders and the PostgreSQL backend rewrites them to ``%s``.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

import orjson

from tollhouse.errors import ValidationError
from tollhouse.store._migrations import Dialect
from tollhouse.store.base import KeyRecord, SpendRow

Params = Sequence[Any]
Step = tuple[str, Params]

KEY_COLUMNS = (
    "hash",
    "name",
    "label",
    "created_at",
    "updated_at",
    "disabled",
    "limit_micros",
    "limit_reset",
    "rpm",
    "tpm",
    "models",
    "team",
    "expires_at",
    "metadata",
    "workspace_id",
)
SPEND_COLUMNS = (
    "id",
    "key_hash",
    "model",
    "provider",
    "upstream_model",
    "created_at",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "cost_micros",
    "latency_ms",
    "ttft_ms",
    "status",
    "error_code",
    "streamed",
    "cancelled",
    "finish_reason",
    "team",
    "metadata",
    "workspace_id",
)
# Fields ``update_key`` accepts (``hash`` and ``created_at`` never change).
UPDATABLE = frozenset(KEY_COLUMNS) - {"hash", "created_at", "updated_at"}

_KEYS_SELECT = f"SELECT {', '.join(KEY_COLUMNS)} FROM keys"  # noqa: S608 - constant columns
_SPEND_SELECT = f"SELECT {', '.join(SPEND_COLUMNS)} FROM spend"  # noqa: S608
_INSERT_KEY = (
    f"INSERT INTO keys ({', '.join(KEY_COLUMNS)}) VALUES ({', '.join('?' * len(KEY_COLUMNS))})"  # noqa: S608
)
INSERT_SPEND = (
    f"INSERT INTO spend ({', '.join(SPEND_COLUMNS)}) "  # noqa: S608
    f"VALUES ({', '.join('?' * len(SPEND_COLUMNS))}) ON CONFLICT (id) DO NOTHING"
)
_BUMP = "UPDATE store_meta SET value = value + 1 WHERE name = 'keys_version'"
_ADD_DAILY = (
    "INSERT INTO spend_daily (key_hash, day, requests, cost_micros) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (key_hash, day) DO UPDATE SET "
    "requests = spend_daily.requests + excluded.requests, "
    "cost_micros = spend_daily.cost_micros + excluded.cost_micros"
)
DAY_SECONDS = 86_400
_DAY = {
    "sqlite": "date(created_at, 'unixepoch')",
    "postgres": "to_char(to_timestamp(created_at) AT TIME ZONE 'UTC', 'YYYY-MM-DD')",
}


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


def key_params(key: KeyRecord) -> tuple[Any, ...]:
    return (
        key.hash,
        key.name,
        key.label,
        key.created_at,
        key.updated_at,
        bool(key.disabled),
        key.limit_micros,
        key.limit_reset,
        key.rpm,
        key.tpm,
        None if key.models is None else _json(list(key.models)),
        key.team,
        key.expires_at,
        _json(key.metadata),
        key.workspace_id,
    )


def key_from_row(row: Sequence[Any]) -> KeyRecord:
    models = row[10]
    return KeyRecord(
        hash=row[0],
        name=row[1],
        label=row[2],
        created_at=float(row[3]),
        updated_at=float(row[4]),
        disabled=bool(row[5]),
        limit_micros=None if row[6] is None else int(row[6]),
        limit_reset=row[7],
        rpm=None if row[8] is None else int(row[8]),
        tpm=None if row[9] is None else int(row[9]),
        models=None if models is None else tuple(orjson.loads(models)),
        team=row[11],
        expires_at=None if row[12] is None else float(row[12]),
        metadata=orjson.loads(row[13]) if row[13] else {},
        workspace_id=row[14],
    )


def spend_params(row: SpendRow) -> tuple[Any, ...]:
    return (
        row.id,
        row.key_hash,
        row.model,
        row.provider,
        row.upstream_model,
        row.created_at,
        row.prompt_tokens,
        row.completion_tokens,
        row.cached_tokens,
        row.cost_micros,
        row.latency_ms,
        row.ttft_ms,
        row.status,
        row.error_code,
        bool(row.streamed),
        bool(row.cancelled),
        row.finish_reason,
        row.team,
        _json(row.metadata),
        row.workspace_id,
    )


def spend_from_row(row: Sequence[Any]) -> SpendRow:
    return SpendRow(
        id=row[0],
        key_hash=row[1],
        model=row[2],
        provider=row[3],
        upstream_model=row[4],
        created_at=float(row[5]),
        prompt_tokens=int(row[6]),
        completion_tokens=int(row[7]),
        cached_tokens=int(row[8]),
        cost_micros=int(row[9]),
        latency_ms=float(row[10]),
        ttft_ms=None if row[11] is None else float(row[11]),
        status=int(row[12]),
        error_code=row[13],
        streamed=bool(row[14]),
        cancelled=bool(row[15]),
        finish_reason=row[16],
        team=row[17],
        metadata=orjson.loads(row[18]) if row[18] else {},
        workspace_id=row[19],
    )


def _day_aligned(ts: float) -> bool:
    return ts >= 0 and ts % DAY_SECONDS == 0


def _update_value(name: str, value: Any) -> Any:
    if name == "models":
        return None if value is None else _json(list(value))
    if name == "metadata":
        return _json(value or {})
    if name == "disabled":
        return bool(value)
    return value


class SqlStore(ABC):
    """``Store`` on a SQL database; subclasses supply the connection primitives."""

    dialect: Dialect

    # -- primitives ---------------------------------------------------------------------

    @abstractmethod
    async def open(self) -> None: ...

    @abstractmethod
    async def close(self) -> None: ...

    @abstractmethod
    async def _fetch(self, sql: str, params: Params = ()) -> list[tuple[Any, ...]]:
        """Rows of one read query."""

    @abstractmethod
    async def _transaction(self, steps: Sequence[Step]) -> list[int]:
        """Run statements in one transaction; their row counts.

        A unique-key violation raises ``errors.Conflict``; an unreachable or broken
        database raises ``errors.Unavailable``.
        """

    @abstractmethod
    async def _insert_many(self, batches: Sequence[tuple[str, Sequence[Params]]]) -> None:
        """Each statement over its parameter rows (``executemany``), all in one
        transaction."""

    # -- health -------------------------------------------------------------------------

    async def ping(self) -> bool:
        try:
            rows = await self._fetch("SELECT 1")
        except Exception:
            return False
        return bool(rows) and rows[0][0] == 1

    # -- keys ---------------------------------------------------------------------------

    async def create_key(self, key: KeyRecord) -> None:
        await self._transaction([(_INSERT_KEY, key_params(key)), (_BUMP, ())])

    async def get_key(self, key_hash: str) -> KeyRecord | None:
        rows = await self._fetch(f"{_KEYS_SELECT} WHERE hash = ?", (key_hash,))
        return key_from_row(rows[0]) if rows else None

    async def list_keys(
        self, offset: int = 0, limit: int = 100, *, include_disabled: bool = True
    ) -> list[KeyRecord]:
        where = "" if include_disabled else f" WHERE disabled = {self._false}"
        rows = await self._fetch(
            f"{_KEYS_SELECT}{where} ORDER BY created_at, hash LIMIT ? OFFSET ?",
            (max(0, limit), max(0, offset)),
        )
        return [key_from_row(r) for r in rows]

    async def all_keys(self) -> list[KeyRecord]:
        return [key_from_row(r) for r in await self._fetch(_KEYS_SELECT)]

    async def update_key(self, key_hash: str, changes: dict[str, Any]) -> KeyRecord | None:
        unknown = sorted(set(changes) - UPDATABLE)
        if unknown:
            raise ValidationError(
                "unknown key fields", {name: "cannot be updated" for name in unknown}
            )
        names = sorted(changes)
        assignments = ", ".join(f"{n} = ?" for n in [*names, "updated_at"])
        params = [_update_value(n, changes[n]) for n in names]
        sql = f"UPDATE keys SET {assignments} WHERE hash = ?"  # noqa: S608 - names whitelisted
        counts = await self._transaction([(sql, [*params, time.time(), key_hash]), (_BUMP, ())])
        if counts[0] == 0:
            return None
        return await self.get_key(key_hash)

    async def delete_key(self, key_hash: str) -> bool:
        counts = await self._transaction(
            [("DELETE FROM keys WHERE hash = ?", (key_hash,)), (_BUMP, ())]
        )
        return counts[0] > 0

    async def keys_version(self) -> int:
        rows = await self._fetch("SELECT value FROM store_meta WHERE name = 'keys_version'")
        return int(rows[0][0]) if rows else 0

    # -- spend --------------------------------------------------------------------------

    async def insert_spend(self, rows: list[SpendRow]) -> None:
        """Insert spend rows and add them to the per-day rollup, in one transaction.

        Idempotent on ``id``: rows already stored (a batch retried after a commit whose
        outcome the writer did not see) are skipped by both.  Ids are unique per request
        and only their own writer retries them, one batch at a time, so reading the
        stored ids before the transaction is enough.
        """
        if not rows:
            return
        ids = list({r.id for r in rows})
        marks = ", ".join("?" for _ in ids)
        stored = {
            r[0]
            for r in await self._fetch(f"SELECT id FROM spend WHERE id IN ({marks})", ids)  # noqa: S608
        }
        fresh: dict[str, SpendRow] = {}
        for r in rows:
            if r.id not in stored:
                fresh.setdefault(r.id, r)
        if not fresh:
            return
        daily: dict[tuple[str, int], list[int]] = {}
        for r in fresh.values():
            agg = daily.setdefault((r.key_hash, int(r.created_at // DAY_SECONDS)), [0, 0])
            agg[0] += 1
            agg[1] += r.cost_micros
        await self._insert_many(
            [
                (INSERT_SPEND, [spend_params(r) for r in fresh.values()]),
                (_ADD_DAILY, [(k, d, n, c) for (k, d), (n, c) in daily.items()]),
            ]
        )

    async def get_generation(self, generation_id: str) -> SpendRow | None:
        rows = await self._fetch(f"{_SPEND_SELECT} WHERE id = ?", (generation_id,))
        return spend_from_row(rows[0]) if rows else None

    async def key_spend_since(self, key_hash: str, since: float) -> int:
        if _day_aligned(since):
            return (await self.key_usage([key_hash], [since]))[key_hash][0]
        rows = await self._fetch(
            "SELECT COALESCE(SUM(cost_micros), 0) FROM spend "
            "WHERE key_hash = ? AND created_at >= ?",
            (key_hash, since),
        )
        return int(rows[0][0])

    async def key_usage(
        self, key_hashes: Sequence[str], since: Sequence[float]
    ) -> dict[str, list[int]]:
        """Spend (micro-dollars) of each key since each timestamp, in one query.

        Keys without spend map to zeros; ``since`` of 0 means all time.  When every
        ``since`` is a UTC midnight (period starts, all time) the per-day rollup answers
        without touching the spend rows.
        """
        out = {h: [0] * len(since) for h in key_hashes}
        if not key_hashes or not since:
            return out
        if all(_day_aligned(s) for s in since):
            table, column = "spend_daily", "day"
            bounds: list[float] = [int(s // DAY_SECONDS) for s in since]
        else:
            table, column, bounds = "spend", "created_at", list(since)
        sums = ", ".join(
            f"COALESCE(SUM(CASE WHEN {column} >= ? THEN cost_micros ELSE 0 END), 0)" for _ in since
        )
        marks = ", ".join("?" for _ in key_hashes)
        sql = (
            f"SELECT key_hash, {sums} FROM {table} "  # noqa: S608 - constant names
            f"WHERE key_hash IN ({marks}) GROUP BY key_hash"
        )
        for row in await self._fetch(sql, [*bounds, *key_hashes]):
            out[row[0]] = [int(v) for v in row[1:]]
        return out

    async def activity(self, key_hash: str | None, since: float) -> list[dict[str, Any]]:
        """Per-UTC-day, per-model aggregates since ``since`` (money in micro-dollars).

        Each item: ``date`` (YYYY-MM-DD), ``model``, ``provider_name``, ``requests``,
        ``prompt_tokens``, ``completion_tokens``, ``cached_tokens``, ``cost_micros``.
        """
        day = _DAY[self.dialect]
        where = "created_at >= ?"
        params: list[Any] = [since]
        if key_hash is not None:
            where += " AND key_hash = ?"
            params.append(key_hash)
        sql = (
            f"SELECT {day} AS day, model, provider, COUNT(*), "  # noqa: S608 - constant parts
            "COALESCE(SUM(prompt_tokens), 0), COALESCE(SUM(completion_tokens), 0), "
            "COALESCE(SUM(cached_tokens), 0), COALESCE(SUM(cost_micros), 0) "
            f"FROM spend WHERE {where} GROUP BY day, model, provider "
            "ORDER BY day DESC, model, provider"
        )
        return [
            {
                "date": r[0],
                "model": r[1],
                "provider_name": r[2],
                "requests": int(r[3]),
                "prompt_tokens": int(r[4]),
                "completion_tokens": int(r[5]),
                "cached_tokens": int(r[6]),
                "cost_micros": int(r[7]),
            }
            for r in await self._fetch(sql, params)
        ]

    @property
    def _false(self) -> str:
        return "0" if self.dialect == "sqlite" else "FALSE"
