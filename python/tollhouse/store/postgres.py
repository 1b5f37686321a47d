"""PostgreSQL backend: psycopg 3 with an async connection pool.

Shared by every replica of a distributed deployment.  Migrations run under a
transaction-scoped advisory lock so that replicas starting together apply each one once.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg import errors as pg_errors
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from tollhouse.errors import Conflict, Unavailable
from tollhouse.store._migrations import CREATE_TABLE, migrations
from tollhouse.store._sql import Params, SqlStore, Step

# An arbitrary constant that names "Tollhouse schema migrations" among advisory locks.
_MIGRATION_LOCK = 0x70_11_40_05_E0


def _pg(sql: str) -> str:
    return sql.replace("?", "%s")


def _safe_url(url: str) -> str:
    """The URL without credentials, for messages."""
    scheme, sep, rest = url.partition("://")
    return f"{scheme}{sep}{rest.rpartition('@')[2]}" if sep else "postgresql://..."


class PostgresStore(SqlStore):
    dialect = "postgres"

    def __init__(
        self, url: str, *, min_size: int = 1, max_size: int = 8, timeout: float = 10.0
    ) -> None:
        self.url = url
        self._min_size = min_size
        self._max_size = max_size
        self._timeout = timeout
        self._pool: AsyncConnectionPool[psycopg.AsyncConnection[Any]] | None = None

    def __repr__(self) -> str:
        return f"PostgresStore({_safe_url(self.url)!r})"

    def _require_pool(self) -> AsyncConnectionPool[psycopg.AsyncConnection[Any]]:
        if self._pool is None:
            raise Unavailable("store is not open")
        return self._pool

    # -- lifecycle ------------------------------------------------------------------------

    async def open(self) -> None:
        if self._pool is not None:
            return
        pool: AsyncConnectionPool[psycopg.AsyncConnection[Any]] = AsyncConnectionPool(
            self.url,
            min_size=self._min_size,
            max_size=self._max_size,
            timeout=self._timeout,
            open=False,
        )
        try:
            await pool.open(wait=True, timeout=self._timeout)
        except (PoolTimeout, psycopg.Error):
            await pool.close()
            raise Unavailable(f"cannot connect to PostgreSQL at {_safe_url(self.url)}") from None
        self._pool = pool
        try:
            await self._migrate()
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    async def _migrate(self) -> None:
        async with self._require_pool().connection() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
            await conn.execute(CREATE_TABLE)
            cur = await conn.execute("SELECT version FROM schema_migrations")
            applied = {row[0] for row in await cur.fetchall()}
            for mig in migrations("postgres"):
                if mig.version in applied:
                    continue
                for stmt in mig.statements:
                    await conn.execute(stmt)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name, applied_at) VALUES (%s, %s, %s)",
                    (mig.version, mig.name, time.time()),
                )

    # -- primitives -----------------------------------------------------------------------

    async def _fetch(self, sql: str, params: Params = ()) -> list[tuple[Any, ...]]:
        try:
            async with self._require_pool().connection() as conn:
                cur = await conn.execute(_pg(sql), tuple(params))
                return await cur.fetchall()
        except (PoolTimeout, psycopg.OperationalError, psycopg.InterfaceError) as exc:
            raise Unavailable(f"store unavailable ({type(exc).__name__})") from None

    async def _transaction(self, steps: Sequence[Step]) -> list[int]:
        try:
            async with self._require_pool().connection() as conn, conn.transaction():
                counts = []
                for sql, params in steps:
                    cur = await conn.execute(_pg(sql), tuple(params))
                    counts.append(cur.rowcount)
                return counts
        except pg_errors.UniqueViolation as exc:
            raise Conflict(f"already exists ({exc.diag.constraint_name})") from None
        except (PoolTimeout, psycopg.OperationalError, psycopg.InterfaceError) as exc:
            raise Unavailable(f"store unavailable ({type(exc).__name__})") from None

    async def _insert_many(self, batches: Sequence[tuple[str, Sequence[Params]]]) -> None:
        try:
            async with self._require_pool().connection() as conn, conn.transaction():
                async with conn.cursor() as cur:
                    for sql, rows in batches:
                        await cur.executemany(_pg(sql), rows)
        except (PoolTimeout, psycopg.OperationalError, psycopg.InterfaceError) as exc:
            raise Unavailable(f"store unavailable ({type(exc).__name__})") from None
