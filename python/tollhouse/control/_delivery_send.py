"""Send one message to a delivery target now: the ``verify`` and ``test`` calls.

Webhook and Slack targets go through the gateway's ``WebhookDispatcher.send_now`` (signed
with the target's secret, SSRF-guarded, Slack-formatted for Slack).  A test alert is an
``incident.opened`` event marked ``"test": true`` (rules firing open incidents).
"""

from __future__ import annotations

from typing import Any

from tollhouse.config import Secret
from tollhouse.control._auth import ControlGateway
from tollhouse.errors import Unavailable
from tollhouse.events.config import WebhookEndpoint
from tollhouse.events.dispatcher import WebhookDispatcher
from tollhouse.events.types import INCIDENT_OPENED, Event


def dispatcher_of(gw: ControlGateway) -> WebhookDispatcher:
    events = getattr(gw, "events", None)
    if not isinstance(events, WebhookDispatcher):
        raise Unavailable("the webhook dispatcher is not running")
    return events


def test_event(workspace_id: str, data: dict[str, Any]) -> Event:
    return Event(INCIDENT_OPENED, {"test": True, **data}, team_id=workspace_id)


async def send(gw: ControlGateway, target: dict[str, Any], event: Event) -> dict[str, Any]:
    """Deliver ``event`` to one stored target; the outcome as JSON."""
    kind, config = target.get("type"), target.get("config") or {}
    out: dict[str, Any] = {"target": target.get("id"), "type": kind}
    if kind == "email":
        return {**out, "delivered": False, "detail": "email delivery is not implemented yet"}
    url = config.get("url") if kind == "webhook" else config.get("webhook_url")
    secret = config.get("secret")
    endpoint = WebhookEndpoint(
        url=str(url),
        secret=Secret(secret) if isinstance(secret, str) and secret else None,
        type="slack" if kind == "slack" else "webhook",
        name=str(target.get("name") or ""),
    )
    result = await dispatcher_of(gw).send_now(endpoint, event)
    return {
        **out,
        "delivered": result.outcome == "delivered",
        "status": result.status,
        "detail": result.detail,
        "event_id": event.id,
    }
