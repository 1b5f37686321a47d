"""SQLite backend: the standard-library ``sqlite3`` on one dedicated thread, WAL mode.

All statements of a store run on its own single-thread executor, so the connection is
used by one thread only and the event loop never blocks on disk.  Several processes
(gateway workers, the CLI) may open the same file: WAL lets readers proceed while one
writer commits, and ``busy_timeout`` makes a writer wait for the lock instead of failing.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from tollhouse.errors import ConfigError, Conflict, Unavailable
from tollhouse.store._migrations import CREATE_TABLE, migrations
from tollhouse.store._sql import Params, SqlStore, Step

T = TypeVar("T")
BUSY_TIMEOUT_MS = 10_000


def sqlite_path(url: str) -> str:
    """``sqlite:///rel.db`` -> ``rel.db``; ``sqlite:////abs.db`` -> ``/abs.db``."""
    if not url.startswith("sqlite:///"):
        raise ConfigError("store: expected sqlite:///PATH (e.g. sqlite:///./tollhouse.db)")
    path = url[len("sqlite:///") :]
    if not path:
        raise ConfigError("store: sqlite URL has no path")
    return path


class SqliteStore(SqlStore):
    dialect = "sqlite"

    def __init__(self, url: str) -> None:
        self.url = url
        self.path = sqlite_path(url)
        self._conn: sqlite3.Connection | None = None
        self._executor: ThreadPoolExecutor | None = None

    def __repr__(self) -> str:
        return f"SqliteStore({self.path!r})"

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._executor is None or self._conn is None:
            raise Unavailable("store is not open")
        conn = self._conn
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, fn, conn)
        except sqlite3.IntegrityError as exc:
            raise Conflict(f"already exists ({exc})") from None
        except sqlite3.Error as exc:
            raise Unavailable(f"store error: {exc}") from None

    # -- lifecycle ------------------------------------------------------------------------

    async def open(self) -> None:
        if self._conn is not None:
            return
        if self.path != ":memory:":
            parent = Path(self.path).expanduser().resolve().parent
            if not parent.is_dir():
                raise ConfigError(f"store: directory {parent} does not exist")
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tollhouse-sqlite")
        loop = asyncio.get_running_loop()
        try:
            self._conn = await loop.run_in_executor(self._executor, self._connect)
        except sqlite3.Error as exc:
            self._executor.shutdown(wait=False)
            self._executor = None
            raise Unavailable(f"cannot open SQLite store {self.path}: {exc}") from None
        await self._run(_migrate)

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT_MS / 1e3
        )
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        if self.path != ":memory:":
            conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        return conn

    async def close(self) -> None:
        conn, executor = self._conn, self._executor
        self._conn, self._executor = None, None
        if conn is not None and executor is not None:
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(executor, conn.close)
        if executor is not None:
            executor.shutdown(wait=True)

    # -- primitives -----------------------------------------------------------------------

    async def _fetch(self, sql: str, params: Params = ()) -> list[tuple[Any, ...]]:
        def run(conn: sqlite3.Connection) -> list[tuple[Any, ...]]:
            return conn.execute(sql, tuple(params)).fetchall()

        return await self._run(run)

    async def _transaction(self, steps: Sequence[Step]) -> list[int]:
        def run(conn: sqlite3.Connection) -> list[int]:
            with _immediate(conn):
                return [conn.execute(sql, tuple(params)).rowcount for sql, params in steps]

        return await self._run(run)

    async def _insert_many(self, batches: Sequence[tuple[str, Sequence[Params]]]) -> None:
        def run(conn: sqlite3.Connection) -> None:
            with _immediate(conn):
                for sql, rows in batches:
                    conn.executemany(sql, rows)

        await self._run(run)


class _immediate:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` (``ROLLBACK`` on error) on an autocommit connection."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> None:
        self.conn.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        self.conn.execute("COMMIT" if exc_type is None else "ROLLBACK")


def _migrate(conn: sqlite3.Connection) -> None:
    # The write lock is taken before reading the applied versions, so concurrent openers
    # serialise here and each migration runs once.
    with _immediate(conn):
        conn.execute(CREATE_TABLE)
        applied = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
        for mig in migrations("sqlite"):
            if mig.version in applied:
                continue
            for stmt in mig.statements:
                conn.execute(stmt)
            conn.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                (mig.version, mig.name, time.time()),
            )
