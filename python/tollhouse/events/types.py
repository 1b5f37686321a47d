"""Webhook event names and the ``Event`` record.

The wire shape follows the AnuraGate webhook document
(``{"event", "teamId", "keyName", "data", "timestamp"}``) with an ``id`` added so a
receiver can de-duplicate retried deliveries (the same id travels in ``webhook-id``).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, Literal, get_args

import orjson

from tollhouse.errors import InvalidRequest

EventType = Literal[
    "budget.alert",
    "budget.exceeded",
    "session.killed",
    "loop.detected",
    "policy.blocked",
    "audit.flagged",
    "provider.failover",
    "incident.opened",
    "alert.fired",
    "alert.resolved",
]
EVENT_TYPES: Final[tuple[str, ...]] = get_args(EventType)

BUDGET_ALERT: Final = "budget.alert"
BUDGET_EXCEEDED: Final = "budget.exceeded"
SESSION_KILLED: Final = "session.killed"
LOOP_DETECTED: Final = "loop.detected"
POLICY_BLOCKED: Final = "policy.blocked"
AUDIT_FLAGGED: Final = "audit.flagged"
PROVIDER_FAILOVER: Final = "provider.failover"
INCIDENT_OPENED: Final = "incident.opened"
# An alert rule's condition became true / false again (the background evaluator).
ALERT_FIRED: Final = "alert.fired"
ALERT_RESOLVED: Final = "alert.resolved"

MICROS_PER_USD: Final = 1_000_000


def usd(micros: int) -> float:
    """Integer micro-dollars to a USD float, for the JSON edge only."""
    return round(micros / MICROS_PER_USD, 6)


def new_event_id() -> str:
    return "evt_" + secrets.token_hex(12)


def _iso_ms(ts: datetime) -> str:
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z"


@dataclass(frozen=True, slots=True)
class Event:
    """One occurrence of an ``EventType``; immutable once built, JSON-encoded once."""

    type: str
    data: dict[str, Any]
    id: str = field(default_factory=new_event_id)
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    team_id: str | None = None
    key_name: str | None = None
    # The workspace of the virtual key (or failover policy) that caused it: the audit log
    # files enforcement events under it.  Not part of the webhook payload.
    workspace_id: str | None = None

    def __post_init__(self) -> None:
        if self.type not in EVENT_TYPES:
            raise InvalidRequest(
                f"unknown event type {self.type!r} (expected one of: {', '.join(EVENT_TYPES)})"
            )
        if not self.id.startswith("evt_"):
            raise InvalidRequest(f"event id must start with 'evt_', got {self.id!r}")
        if self.created_at.tzinfo is None:
            raise InvalidRequest("event created_at must be timezone-aware")

    @property
    def timestamp(self) -> str:
        """``created_at`` as the document prints it: ``2026-02-18T10:30:00.000Z``."""
        return _iso_ms(self.created_at)

    def payload(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "event": self.type,
            "teamId": self.team_id,
            "keyName": self.key_name,
            "data": self.data,
            "timestamp": self.timestamp,
        }

    def body(self) -> bytes:
        return orjson.dumps(self.payload())

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> Event:
        """Rebuild an event from ``payload()`` (used by the spool and by receivers)."""
        try:
            created = datetime.fromisoformat(str(payload["timestamp"]).replace("Z", "+00:00"))
            data = payload["data"]
            if not isinstance(data, dict):
                raise TypeError("data must be an object")
            return cls(
                type=str(payload["event"]),
                data=data,
                id=str(payload["id"]),
                created_at=created,
                team_id=payload.get("teamId"),
                key_name=payload.get("keyName"),
            )
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, InvalidRequest):
                raise
            raise InvalidRequest(f"malformed event payload: {exc}") from None
