"""Send one message to a delivery target now: the ``verify`` and ``test`` calls.

Every target type goes through ``events.targets.deliver`` with the gateway's webhook
dispatcher (its SSRF guard, signing and timeout): webhook, Slack, and email over SMTP.  A
test alert is an ``incident.opened`` event marked ``"test": true`` (rules firing open
incidents).
"""

from __future__ import annotations

from typing import Any

from tollhouse.control._auth import ControlGateway
from tollhouse.control._schema import Schema, boolean, choice, obj
from tollhouse.errors import Unavailable
from tollhouse.events.dispatcher import WebhookDispatcher
from tollhouse.events.targets import RESULT_FIELDS, TARGET_TYPES, deliver
from tollhouse.events.types import INCIDENT_OPENED, Event

# One target's outcome (``events.targets.deliver`` / ``not_sent``).
RESULT: Schema = obj(
    {
        "target": {"type": "string", "description": "the delivery target's id"},
        "type": {**choice(TARGET_TYPES, nullable=True), "description": "null: target deleted"},
        "delivered": boolean(),
        "retryable": {
            **boolean(),
            "description": "a later attempt may succeed (no answer, timeout, HTTP 429/5xx, "
            "SMTP 4xx)",
        },
        "status": {
            "type": ["integer", "null"],
            "description": "the HTTP status (webhook, Slack) or SMTP reply code (email); "
            "null without an answer",
        },
        "detail": {"type": "string"},
        "event_id": {"type": "string", "description": "the id of the event sent"},
    },
    RESULT_FIELDS,
)


def dispatcher_of(gw: ControlGateway) -> WebhookDispatcher:
    events = getattr(gw, "events", None)
    if not isinstance(events, WebhookDispatcher):
        raise Unavailable("the webhook dispatcher is not running")
    return events


def test_event(workspace_id: str, data: dict[str, Any]) -> Event:
    return Event(INCIDENT_OPENED, {"test": True, **data}, team_id=workspace_id)


async def send(gw: ControlGateway, target: dict[str, Any], event: Event) -> dict[str, Any]:
    """Deliver ``event`` to one stored target now; the outcome as JSON."""
    return await deliver(dispatcher_of(gw), target, event)
