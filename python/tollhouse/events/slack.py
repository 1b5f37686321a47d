"""Slack incoming-webhook bodies (``{"text", "blocks"}``) for events."""

from __future__ import annotations

from typing import Any

import orjson

from tollhouse.events.types import Event

TITLES = {
    "budget.alert": "Budget alert",
    "budget.exceeded": "Budget exceeded",
    "session.killed": "Session killed",
    "loop.detected": "Loop detected",
    "policy.blocked": "Policy blocked a request",
    "audit.flagged": "Audit flagged a response",
    "provider.failover": "Provider failover",
    "incident.opened": "Incident opened",
    "alert.fired": "Alert firing",
    "alert.resolved": "Alert resolved",
}
_EMOJI = {
    "budget.alert": ":warning:",
    "budget.exceeded": ":no_entry:",
    "session.killed": ":octagonal_sign:",
    "loop.detected": ":repeat:",
    "policy.blocked": ":shield:",
    "audit.flagged": ":mag:",
    "provider.failover": ":twisted_rightwards_arrows:",
    "incident.opened": ":rotating_light:",
    "alert.fired": ":rotating_light:",
    "alert.resolved": ":white_check_mark:",
}
_MAX_FIELDS = 10  # Slack's limit for a section's fields
_MAX_FIELD_CHARS = 1900


def format_value(value: Any, limit: int = _MAX_FIELD_CHARS) -> str:
    """A data value as text, cut to ``limit`` characters."""
    if isinstance(value, str):
        text = value
    elif isinstance(value, bool) or value is None:
        text = orjson.dumps(value).decode()
    elif isinstance(value, int | float):
        text = f"{value:g}" if isinstance(value, float) else str(value)
    else:
        text = orjson.dumps(value).decode()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def summary(event: Event, *, emoji: bool = True) -> str:
    """One line that names the event and its subject; also the notification text (and,
    without the emoji, an email's subject)."""
    title = TITLES.get(event.type, event.type)
    if emoji and event.type in _EMOJI:
        title = f"{_EMOJI[event.type]} {title}"
    if event.type.startswith("alert.") and "rule" in event.data:
        head, detail = f"{title}: {event.data['rule']}", event.data.get("summary")
        return f"{head} ({detail})" if detail else head
    subject = event.key_name or event.data.get("scope") or event.team_id
    if event.type.startswith("budget.") and "percentUsed" in event.data:
        return f"{title}: {subject} at {format_value(event.data['percentUsed'])}% of its limit"
    return f"{title}: {subject}" if subject else title


def slack_body(event: Event) -> dict[str, Any]:
    fields = [
        {"type": "mrkdwn", "text": f"*{k}*\n{format_value(v)}"}
        for k, v in list(event.data.items())[:_MAX_FIELDS]
    ]
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": f"*{summary(event)}*"}}
    ]
    if fields:
        blocks.append({"type": "section", "fields": fields})
    context = [f"`{event.type}`", event.id, event.timestamp]
    if event.team_id:
        context.append(f"team {event.team_id}")
    blocks.append(
        {"type": "context", "elements": [{"type": "mrkdwn", "text": " · ".join(context)}]}
    )
    return {"text": summary(event), "blocks": blocks}


def slack_bytes(event: Event) -> bytes:
    return orjson.dumps(slack_body(event))
