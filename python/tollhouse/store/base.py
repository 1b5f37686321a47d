"""What crosses the store boundary: records and the ``Store`` protocol.

The data plane only reads keys from an in-memory cache and hands spend rows to a
background writer; it never awaits the store on the request path.  Both backends
(SQLite default, PostgreSQL) implement this protocol.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

ResetPeriod = Literal["daily", "weekly", "monthly"]


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """A virtual key as stored: only the SHA-256 ``hash`` of the raw key is kept."""

    hash: str
    name: str
    label: str
    created_at: float
    updated_at: float
    disabled: bool = False
    limit_micros: int | None = None
    limit_reset: ResetPeriod | None = None
    rpm: int | None = None
    tpm: int | None = None
    models: tuple[str, ...] | None = None
    team: str | None = None
    expires_at: float | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    workspace_id: str = "default"


@dataclass(slots=True)
class SpendRow:
    """One request's outcome; ``id`` is the generation id (= ``x-gate-request-id``)."""

    id: str
    key_hash: str
    model: str
    provider: str
    upstream_model: str
    created_at: float
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cost_micros: int = 0
    latency_ms: float = 0.0
    ttft_ms: float | None = None
    status: int = 200
    error_code: str | None = None
    streamed: bool = False
    cancelled: bool = False
    finish_reason: str | None = None
    team: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    workspace_id: str = "default"  # the key's, copied when the row is made


class Store(Protocol):
    """Persistence.  Every method is a coroutine run off the request path."""

    async def open(self) -> None: ...
    async def close(self) -> None: ...
    async def ping(self) -> bool: ...

    async def create_key(self, key: KeyRecord) -> None: ...
    async def get_key(self, key_hash: str) -> KeyRecord | None: ...
    async def list_keys(
        self, offset: int = 0, limit: int = 100, *, include_disabled: bool = True
    ) -> list[KeyRecord]: ...
    async def update_key(self, key_hash: str, changes: dict[str, Any]) -> KeyRecord | None: ...
    async def delete_key(self, key_hash: str) -> bool: ...
    async def keys_version(self) -> int:
        """A number that changes whenever any key changes (drives cache refresh)."""
        ...

    async def all_keys(self) -> list[KeyRecord]: ...

    async def insert_spend(self, rows: list[SpendRow]) -> None: ...
    async def get_generation(self, generation_id: str) -> SpendRow | None: ...
    async def key_spend_since(self, key_hash: str, since: float) -> int:
        """Sum of ``cost_micros`` for a key since a UNIX timestamp."""
        ...

    async def key_usage(
        self, key_hashes: Sequence[str], since: Sequence[float]
    ) -> dict[str, list[int]]:
        """For each key, its spend (micro-dollars) since each timestamp, in one query."""
        ...

    async def activity(self, key_hash: str | None, since: float) -> list[dict[str, Any]]:
        """Per-UTC-day, per-model aggregates (OpenRouter ``/activity`` rows, money in
        micro-dollars under ``cost_micros``)."""
        ...
