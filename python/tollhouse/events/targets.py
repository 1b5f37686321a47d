"""Send one event to one stored delivery target (``webhook``, ``slack`` or ``email``), now.

The one path every sender uses: a target's ``verify``, an alert rule's ``test``, and alert
firing.  Webhook and Slack targets go through ``WebhookDispatcher.send_once`` (signed with
the target's secret, SSRF-guarded, Slack-formatted for Slack); email targets through
``events.email.send_email`` with the same SSRF guard and timeout.  A delivery that fails
is an outcome, never an exception.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tollhouse.config import Secret
from tollhouse.events.config import WebhookEndpoint
from tollhouse.events.dispatcher import AttemptResult, WebhookDispatcher
from tollhouse.events.email import SmtpTarget, send_email
from tollhouse.events.types import Event

TARGET_TYPES = ("webhook", "slack", "email")
# What ``deliver`` answers (and ``not_sent`` for a target that was not tried).
RESULT_FIELDS = ("target", "type", "delivered", "retryable", "status", "detail", "event_id")


async def send_to_target(
    dispatcher: WebhookDispatcher, target: Mapping[str, Any], event: Event
) -> AttemptResult:
    """One attempt to deliver ``event`` to ``target`` (a stored delivery record:
    ``{id, name, type, config}``).  ``outcome``: delivered | retry | failed | blocked."""
    kind, config = target.get("type"), target.get("config")
    name = str(target.get("name") or "")
    if kind not in TARGET_TYPES or not isinstance(config, Mapping):
        return AttemptResult("failed", detail=f"unknown delivery target type {kind!r}")
    if kind == "email":
        try:
            smtp = SmtpTarget.from_config(config)
        except ValueError as exc:
            return AttemptResult("failed", detail=f"unusable email target: {exc}")
        return await send_email(
            smtp, event, guard=dispatcher.guard, timeout=dispatcher.timeout, name=name
        )
    url = config.get("url") if kind == "webhook" else config.get("webhook_url")
    if not isinstance(url, str) or not url:
        return AttemptResult("failed", detail="the target has no URL")
    secret = config.get("secret")
    endpoint = WebhookEndpoint(
        url=url,
        secret=Secret(secret) if isinstance(secret, str) and secret else None,
        type="slack" if kind == "slack" else "webhook",
        name=name,
    )
    return await dispatcher.send_once(endpoint, event)


async def deliver(
    dispatcher: WebhookDispatcher, target: Mapping[str, Any], event: Event
) -> dict[str, Any]:
    """``send_to_target`` as the JSON the control plane answers: ``{target, type,
    delivered, retryable, status, detail, event_id}``.  ``status`` is the HTTP status for
    webhook and Slack targets, the SMTP reply code for email (where 4xx is the temporary
    failure and 5xx the permanent one), so ``retryable`` says whether another attempt
    later may succeed (no answer, timeout, HTTP 429/5xx, SMTP 4xx)."""
    result = await send_to_target(dispatcher, target, event)
    return {
        "target": target.get("id"),
        "type": target.get("type"),
        "delivered": result.outcome == "delivered",
        "retryable": result.outcome == "retry",
        "status": result.status,
        "detail": result.detail,
        "event_id": event.id,
    }


def not_sent(target_id: str, event: Event, detail: str, *, retryable: bool) -> dict[str, Any]:
    """The ``deliver`` answer for a target nothing was sent to: deleted meanwhile
    (``retryable`` false) or its sender raised."""
    return {
        "target": target_id,
        "type": None,
        "delivered": False,
        "retryable": retryable,
        "status": None,
        "detail": detail,
        "event_id": event.id,
    }
