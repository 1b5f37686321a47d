"""Slack incoming-webhook bodies (``{"text", "blocks"}``) for events."""

from __future__ import annotations

from typing import Any

import orjson

from tollhouse.events.types import Event

_TITLES = {
    "budget.alert": ":warning: Budget alert",
    "budget.exceeded": ":no_entry: Budget exceeded",
    "session.killed": ":octagonal_sign: Session killed",
    "loop.detected": ":repeat: Loop detected",
    "policy.blocked": ":shield: Policy blocked a request",
    "audit.flagged": ":mag: Audit flagged a response",
    "provider.failover": ":twisted_rightwards_arrows: Provider failover",
    "incident.opened": ":rotating_light: Incident opened",
    "alert.fired": ":rotating_light: Alert firing",
    "alert.resolved": ":white_check_mark: Alert resolved",
}
_MAX_FIELDS = 10  # Slack's limit for a section's fields
_MAX_FIELD_CHARS = 1900


def _fmt(value: Any) -> str:
    if isinstance(value, str):
        text = value
    elif isinstance(value, bool) or value is None:
        text = orjson.dumps(value).decode()
    elif isinstance(value, int | float):
        text = f"{value:g}" if isinstance(value, float) else str(value)
    else:
        text = orjson.dumps(value).decode()
    return text if len(text) <= _MAX_FIELD_CHARS else text[: _MAX_FIELD_CHARS - 1] + "…"


def summary(event: Event) -> str:
    """One line that names the event and its subject; also the notification text."""
    title = _TITLES.get(event.type, event.type)
    if event.type.startswith("alert.") and "rule" in event.data:
        head, detail = f"{title}: {event.data['rule']}", event.data.get("summary")
        return f"{head} ({detail})" if detail else head
    subject = event.key_name or event.data.get("scope") or event.team_id
    if event.type.startswith("budget.") and "percentUsed" in event.data:
        return f"{title}: {subject} at {_fmt(event.data['percentUsed'])}% of its limit"
    return f"{title}: {subject}" if subject else title


def slack_body(event: Event) -> dict[str, Any]:
    fields = [
        {"type": "mrkdwn", "text": f"*{k}*\n{_fmt(v)}"}
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
