"""The security stages of the data plane: sessions, policy and redaction before the
upstream call; the session settle after it.

``inbound`` runs after ``resolve`` and before the budgets reservation.  With a session id
(``x-gate-session-id`` or the body's ``session_id``) it first admits the request into
its session (429 ``session_killed`` and ``x-gate-session-killed: true`` when a breaker
refuses, ``guard/sessions.py``).  Then it checks the request text against the content
policies of the key's workspace (the config's rules and that workspace's own: 403
``policy_blocked`` with ``x-gate-policy-blocked: true`` and a ``policy.blocked`` webhook
for a ``block`` rule; ``x-gate-policy-warn`` for a ``warn`` rule), then masks secrets
and personal data in place (``x-gate-redacted: N``).  What a key gets is its preset's
choice (``guard/presets.py``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import orjson

from tollhouse import native
from tollhouse.errors import AuditBlocked, PolicyBlocked, SessionKilled
from tollhouse.events.types import AUDIT_FLAGGED, POLICY_BLOCKED, Event
from tollhouse.gateway import Gateway
from tollhouse.guard.audit import BLOCKING_RISKS, FLAG_RISKS, Verdict
from tollhouse.guard.loops import fingerprint
from tollhouse.guard.policies import DEFAULT_WORKSPACE
from tollhouse.guard.presets import Preset, preset_of
from tollhouse.guard.redaction import Leaf, message_groups, request_text
from tollhouse.guard.response_scan import StreamScanner, scan_completion
from tollhouse.guard.snapshots import snapshot_request, snapshot_url
from tollhouse.proxy import asgi, budget
from tollhouse.proxy._settle import settle_shielded
from tollhouse.proxy.pipeline import Exchange, completion_text

log = logging.getLogger("tollhouse.guard")

REDACTED = b"x-gate-redacted"
POLICY_BLOCKED_HEADER = b"x-gate-policy-blocked"
POLICY_WARN = b"x-gate-policy-warn"
RESPONSE_REDACTED = b"x-gate-response-redacted"
AUDIT = b"x-gate-audit"
AUDIT_ID = b"x-gate-audit-id"
AUDIT_RISK = b"x-gate-audit-risk"
AUDIT_PASSED = b"x-gate-audit-passed"
SNAPSHOT = b"x-gate-snapshot"
SNAPSHOT_ID = b"x-gate-snapshot-id"
SESSION_ID = b"x-gate-session-id"
SESSION_KILLED = b"x-gate-session-killed"
MAX_SESSION_ID = 200


def _emit(gw: Gateway, ex: Exchange, event_type: str, data: dict[str, Any]) -> None:
    key = ex.key
    data = {"requestId": ex.request_id, **data}
    if ex.route is not None:
        data.setdefault("model", ex.route.model)
    event = Event(
        event_type,
        data,
        team_id=key.team if key is not None else None,
        key_name=key.name if key is not None else None,
        workspace_id=key.workspace_id if key is not None else None,
    )
    gw.events.emit(event)


def _match_data(m: native.PolicyMatch) -> dict[str, str]:
    return {"ruleId": m.rule_id, "action": m.action, "kind": m.kind, "detail": m.detail}


def session_id(ex: Exchange, headers: list[asgi.Header]) -> str | None:
    raw = asgi.header(headers, SESSION_ID)
    sid: Any = raw.decode("latin-1").strip() if raw else None
    if not sid and ex.body is not None:
        sid = ex.body.get("session_id")
    return sid if isinstance(sid, str) and 0 < len(sid) <= MAX_SESSION_ID else None


def _notifier(gw: Gateway, ex: Exchange) -> Any:
    return lambda event_type, data: _emit(gw, ex, event_type, data)


async def _session(
    gw: Gateway, ex: Exchange, sid: str, preset: Preset, groups: list[list[Leaf]]
) -> None:
    key, body = ex.key, ex.body or {}
    model = ex.route.model if ex.route is not None else ""
    fp = fingerprint(body, model, groups) if preset.loop_detection else None
    try:
        ex.session = await gw.security.sessions.admit(
            key.hash if key is not None else "", sid, preset, fp, _now_ms(), _notifier(gw, ex)
        )
    except SessionKilled:
        ex.guard_headers.append((SESSION_KILLED, b"true"))
        raise


def _now_ms() -> int:
    return int(time.time() * 1000)


async def inbound(
    gw: Gateway, ex: Exchange, headers: list[asgi.Header], raw: bytes | None
) -> bytes | None:
    """Session check, policy check, then redaction of ``ex.body`` in place.  Returns
    ``raw`` while the body is unchanged, ``None`` once something was masked (the body
    must be re-encoded).  A request that passed starts its snapshot, if any."""
    sent = await _checks(gw, ex, headers, raw)
    snap = (asgi.header(headers, SNAPSHOT) or b"").strip().lower() == b"true"
    url = snapshot_url(ex.key, snap)
    if url is not None:  # runs beside the upstream call; awaited before the headers
        model = ex.route.model if ex.route is not None else ""
        payload = snapshot_request(ex.key, session_id(ex, headers), model)
        ex.snapshot = asyncio.ensure_future(gw.security.snapshots.take(url, ex.key, payload))
    return sent


async def _checks(
    gw: Gateway, ex: Exchange, headers: list[asgi.Header], raw: bytes | None
) -> bytes | None:
    body, key = ex.body, ex.key
    if body is None:
        return raw
    sec = gw.security
    preset = preset_of(key)
    forced = (asgi.header(headers, AUDIT) or b"").strip().lower() == b"true"
    ex.audit_mode = sec.auditor.mode_for(key, preset, forced)
    sid = session_id(ex, headers)
    groups = message_groups(body)
    if preset.sessions and sid is not None:
        await _session(gw, ex, sid, preset, groups)
    if not groups:
        return raw
    rules = sec.policies.of(key.workspace_id if key is not None else DEFAULT_WORKSPACE)
    if preset.policies and not rules.empty:
        model = ex.route.model if ex.route is not None else None
        tokens = budget.prompt_tokens(ex) if rules.needs_tokens else None
        verdict = rules.check(request_text(groups), model, tokens)
        if verdict.warns:
            ids = ",".join(m.rule_id for m in verdict.warns)
            ex.guard_headers.append((POLICY_WARN, ids.encode()))
            for m in verdict.warns:
                _emit(gw, ex, POLICY_BLOCKED, {**_match_data(m), "blocked": False})
        if verdict.blocks:
            first = verdict.blocks[0]
            ex.guard_headers.append((POLICY_BLOCKED_HEADER, b"true"))
            _emit(gw, ex, POLICY_BLOCKED, {**_match_data(first), "blocked": True})
            raise PolicyBlocked(
                f"blocked by policy rule {first.rule_id!r} ({first.kind}: {first.detail})"
            )
    modes = sec.redaction.modes_for(key)
    outcome = sec.redaction.apply(groups, preset, modes)
    if outcome.blocked:
        ex.guard_headers.append((POLICY_BLOCKED_HEADER, b"true"))
        detail = ",".join(outcome.blocked)
        _emit(
            gw,
            ex,
            POLICY_BLOCKED,
            {"ruleId": "redaction", "action": "block", "kind": "redaction", "detail": detail},
        )
        raise PolicyBlocked(f"the request contains content this key may not send: {detail}")
    if outcome.count:
        ex.redacted = outcome.count
        ex.guard_headers.append((REDACTED, str(outcome.count).encode()))
        return None
    return raw


async def snapshot_header(ex: Exchange) -> None:
    """Wait for the snapshot (bounded by its own timeout) and name it in the headers."""
    task, ex.snapshot = ex.snapshot, None
    if task is None:
        return
    snapshot_id = await task
    if snapshot_id is not None:
        ex.snapshot_id = snapshot_id
        ex.guard_headers.append((SNAPSHOT_ID, snapshot_id.encode("latin-1", "replace")))


async def settle(gw: Gateway, ex: Exchange) -> None:
    """Charge the session with what the request used (shielded; never raises)."""
    if ex.snapshot is not None:  # the request failed before its headers
        ex.snapshot.cancel()
        ex.snapshot = None
    ticket, ex.session = ex.session, None
    if ticket is None:
        return
    settle_ = gw.security.sessions.settle(
        ticket, ex.cost_micros, ex.tokens_used(), _now_ms(), _notifier(gw, ex)
    )
    await settle_shielded(settle_, f"settling session {ticket.session_id}")


# -- after the upstream call --------------------------------------------------------


def scan_reply(gw: Gateway, ex: Exchange, data: dict[str, Any], body: bytes) -> bytes:
    """The answer to send: redacted and re-encoded when the key's preset scans responses
    (``x-gate-response-redacted: N``), else ``body`` as it came."""
    preset = preset_of(ex.key)
    if not preset.response_scan:
        return body
    red = gw.security.redaction
    count = scan_completion(data, red.redactor(preset), red.modes_for(ex.key))
    if not count:
        return body
    ex.guard_headers.append((RESPONSE_REDACTED, str(count).encode()))
    return orjson.dumps(data)


def stream_scanner(gw: Gateway, ex: Exchange) -> StreamScanner | None:
    preset = preset_of(ex.key)
    if not preset.response_scan:
        return None
    red = gw.security.redaction
    return StreamScanner(red.redactor(preset), red.modes_for(ex.key))


def _audit_done(gw: Gateway, ex: Exchange, verdict: Verdict) -> None:
    if verdict.risk in FLAG_RISKS:
        _emit(
            gw,
            ex,
            AUDIT_FLAGGED,
            {"auditId": verdict.id, "risk": verdict.risk, "mode": verdict.mode},
        )


async def audit_reply(gw: Gateway, ex: Exchange, data: dict[str, Any]) -> None:
    """Audit the answer ``data`` (a chat completion): in the background (async) or now
    (blocking, 451 for a high or critical risk).  Sets the ``x-gate-audit-*`` headers.
    Without an audit the answer's text is never gathered."""
    mode = ex.audit_mode
    if mode is None:
        return
    answer = completion_text(data)
    auditor = gw.security.auditor
    verdict = auditor.open(ex.request_id, ex.key, mode)
    ex.guard_headers.append((AUDIT_ID, verdict.id.encode()))
    prompt = request_text(message_groups(ex.body or {}))
    if mode != "blocking":
        auditor.run_later(verdict, prompt, answer, lambda v: _audit_done(gw, ex, v))
        return
    await auditor.run(verdict, prompt, answer)
    _audit_done(gw, ex, verdict)
    if verdict.risk is not None:
        ex.guard_headers.append((AUDIT_RISK, verdict.risk.encode()))
    if verdict.passed is not None:
        ex.guard_headers.append((AUDIT_PASSED, b"true" if verdict.passed else b"false"))
    if verdict.risk in BLOCKING_RISKS:
        raise AuditBlocked(
            f"the answer was withheld: the audit rated its risk {verdict.risk} ({verdict.id})"
        )
