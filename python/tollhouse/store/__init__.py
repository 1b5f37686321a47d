"""Persistence: virtual keys and spend rows on SQLite (default) or PostgreSQL."""

from __future__ import annotations

from tollhouse.errors import ConfigError
from tollhouse.store._sql import SqlStore
from tollhouse.store.base import KeyRecord, ResetPeriod, SpendRow, Store

__all__ = ["KeyRecord", "ResetPeriod", "SpendRow", "SqlStore", "Store", "open_store"]


def open_store(url: str) -> SqlStore:
    """The store for a ``store:`` URL, not yet opened: ``await store.open()`` applies
    the migrations and connects; ``await store.close()`` releases it."""
    if url.startswith("sqlite:"):
        from tollhouse.store.sqlite import SqliteStore

        return SqliteStore(url)
    if url.startswith(("postgresql://", "postgres://")):
        from tollhouse.store.postgres import PostgresStore

        return PostgresStore(url)
    raise ConfigError("store: expected sqlite:///PATH or postgresql://...")
