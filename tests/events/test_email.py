"""Email delivery targets against a real SMTP receiver (aiosmtpd) on 127.0.0.1."""

from __future__ import annotations

import asyncio
import logging
import shutil
import ssl
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.support.servers import free_port
from tests.support.smtp import SmtpReceiver, self_signed

from tollhouse.events.dispatcher import WebhookDispatcher
from tollhouse.events.email import SmtpTarget, body_text, send_email, subject
from tollhouse.events.ssrf import SSRFGuard
from tollhouse.events.targets import deliver
from tollhouse.events.types import INCIDENT_OPENED, POLICY_BLOCKED, Event

PASSWORD = "pw-" + "Zq9" * 6
LOCAL = SSRFGuard(["127.0.0.1"])


@pytest.fixture
def smtp() -> Iterator[SmtpReceiver]:
    with SmtpReceiver() as receiver:
        yield receiver


@pytest.fixture
def smtp_auth() -> Iterator[SmtpReceiver]:
    with SmtpReceiver(users={"alerts": PASSWORD}) as receiver:
        yield receiver


@pytest.fixture
async def dispatcher() -> AsyncIterator[WebhookDispatcher]:
    d = WebhookDispatcher(allow_private=["127.0.0.1"], timeout=5.0)
    await d.start()
    try:
        yield d
    finally:
        await d.stop()


def event(**data: Any) -> Event:
    return Event(INCIDENT_OPENED, {"test": True, **data}, team_id="ws_1")


def target(port: int, **config: Any) -> dict[str, Any]:
    return {
        "id": "dlv_1",
        "name": "on-call",
        "type": "email",
        "config": {
            "to": ["oncall@example.com", "lead@example.com"],
            "smtp_host": "127.0.0.1",
            "smtp_port": port,
            "from": "gate@example.com",
            **config,
        },
    }


async def test_delivered_with_headers_and_body(
    dispatcher: WebhookDispatcher, smtp: SmtpReceiver
) -> None:
    ev = event(rule="High Latency", severity="high", condition={"metric": "latency"})
    out = await deliver(dispatcher, target(smtp.port), ev)
    assert out["delivered"] is True, out
    assert out["status"] == 250 and out["type"] == "email" and out["event_id"] == ev.id
    (got,) = smtp.wait(1)
    assert got.mail_from == "gate@example.com"
    assert got.rcpt_tos == ["oncall@example.com", "lead@example.com"]
    msg = got.message
    assert msg["From"] == "gate@example.com"
    assert msg["To"] == "oncall@example.com, lead@example.com"
    assert msg["Subject"] == "[Tollhouse] [high] Incident opened: ws_1 (test)"
    assert msg["X-Tollhouse-Event-Id"] == ev.id
    assert msg.get_content_type() == "text/plain"
    body = msg.get_content()
    assert ev.id in body and "rule: High Latency" in body and "on-call" in body
    assert not got.authenticated


def test_body_leaves_out_secrets_and_prompt_text() -> None:
    ev = Event(
        POLICY_BLOCKED,
        {
            "ruleId": "r1",
            "inputTokens": 12,
            "prompt": "my secret plan",
            "messages": [{"role": "user", "content": "hi"}],
            "apiKey": "sk-live-1",
            "nested": {"secret": "s3", "kept": 1},
        },
        team_id="t",
        key_name="ci",
    )
    body = body_text(ev)
    assert "ruleId: r1" in body and "inputTokens: 12" in body and '"kept":1' in body
    for hidden in ("my secret plan", "hi", "sk-live-1", "s3"):
        assert hidden not in body
    assert subject(ev) == "[Tollhouse] Policy blocked a request: ci"


async def test_auth_ok_wrong_password_and_no_leak(
    dispatcher: WebhookDispatcher, smtp_auth: SmtpReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    creds = {"smtp_user": "alerts", "smtp_password": PASSWORD, "starttls": False}
    ok = await deliver(dispatcher, target(smtp_auth.port, **creds), event())
    assert ok["delivered"] is True, ok
    (got,) = smtp_auth.wait(1)
    assert got.authenticated and smtp_auth.logins == [("alerts", True)]

    wrong = {**creds, "smtp_password": PASSWORD + "x"}
    bad = await deliver(dispatcher, target(smtp_auth.port, **wrong), event())
    assert bad["delivered"] is False
    assert bad["detail"].startswith("authentication failed (535")
    assert bad["retryable"] is False and bad["status"] == 535
    assert smtp_auth.logins[-1] == ("alerts", False) and len(smtp_auth.received) == 1
    for text in [str(ok), str(bad), *(r.getMessage() for r in caplog.records)]:
        assert PASSWORD not in text
    assert any("authentication failed" in r.getMessage() for r in caplog.records)


async def test_a_4xx_reply_is_retryable_and_a_5xx_final(
    dispatcher: WebhookDispatcher, smtp: SmtpReceiver, smtp_auth: SmtpReceiver
) -> None:
    """Whichever command the server answers (AUTH, RCPT for every recipient, DATA), a
    temporary 4xx reply says try again later and a 5xx one says never."""
    creds = {"smtp_user": "alerts", "smtp_password": PASSWORD, "starttls": False}
    cases = [
        (smtp_auth, "AUTH", "454 4.7.0 Temporary authentication failure", True),
        (smtp, "RCPT", "451 4.7.1 Greylisted, try again later", True),
        (smtp, "RCPT", "550 5.1.1 No such user", False),
        (smtp, "DATA", "451 4.3.0 Local error, try later", True),
        (smtp, "DATA", "554 5.7.1 Rejected as spam", False),
    ]
    for receiver, command, reply, retryable in cases:
        receiver.replies = {command: reply}
        config = creds if receiver is smtp_auth else {}
        out = await deliver(dispatcher, target(receiver.port, **config), event())
        code = int(reply[:3])
        assert (out["delivered"], out["retryable"], out["status"]) == (False, retryable, code), (
            command,
            out,
        )
        assert reply[:3] in out["detail"], out
    assert smtp.received == [] and smtp_auth.received == []
    smtp.replies = {}  # the same target once the server accepts again
    assert (await deliver(dispatcher, target(smtp.port), event()))["delivered"] is True


async def test_password_never_sent_in_clear_unless_told(
    dispatcher: WebhookDispatcher, smtp_auth: SmtpReceiver
) -> None:
    creds = {"smtp_user": "alerts", "smtp_password": PASSWORD}
    out = await deliver(dispatcher, target(smtp_auth.port, **creds), event())
    assert out["delivered"] is False and "does not offer STARTTLS" in out["detail"]
    required = await deliver(dispatcher, target(smtp_auth.port, starttls=True), event())
    assert required["delivered"] is False
    assert required["detail"] == "the server does not offer STARTTLS"
    assert smtp_auth.logins == [] and smtp_auth.received == []


async def test_connection_refused(dispatcher: WebhookDispatcher) -> None:
    port = free_port()  # nothing listens there
    out = await deliver(dispatcher, target(port), event())
    assert out["delivered"] is False
    assert out["detail"] == f"connection refused by 127.0.0.1:{port}"


async def test_timeout_is_bounded() -> None:
    """A server that accepts and never greets: the attempt ends at the timeout."""
    accepted: list[asyncio.StreamWriter] = []

    async def silent(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        smtp = SmtpTarget.from_config(target(port)["config"])
        t0 = time.monotonic()
        out = await send_email(smtp, event(), guard=LOCAL, timeout=0.4)
        elapsed = time.monotonic() - t0
    finally:
        for w in accepted:
            w.close()
        server.close()
        await server.wait_closed()
    assert out.outcome == "retry" and out.detail.startswith("timed out after 0.4 s")
    assert 0.35 < elapsed < 2.0


async def test_ssrf_guard_applies_to_the_smtp_host(smtp: SmtpReceiver) -> None:
    strict = WebhookDispatcher()  # no allow_private: loopback is internal
    for host in ("127.0.0.1", "localhost", "2130706433", "169.254.169.254"):
        out = await deliver(strict, target(smtp.port, smtp_host=host), event())
        assert out["delivered"] is False, host
        assert "internal address" in out["detail"] or "numeric" in out["detail"], out
    assert smtp.received == []


async def test_unusable_stored_config_is_an_outcome(dispatcher: WebhookDispatcher) -> None:
    broken = {"id": "dlv_x", "type": "email", "config": {"to": "nobody", "smtp_host": "h"}}
    out = await deliver(dispatcher, broken, event())
    assert out["delivered"] is False and out["detail"].startswith("unusable email target")
    injected = target(25, to=["a@b.io\r\nBcc: x@y.io"])
    out = await deliver(dispatcher, injected, event())
    assert out["delivered"] is False and "config.to" in out["detail"]


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl CLI")
async def test_starttls(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    with SmtpReceiver(users={"alerts": PASSWORD}, tls=(cert, key)) as receiver:
        config = target(receiver.port, smtp_user="alerts", smtp_password=PASSWORD)["config"]
        smtp = SmtpTarget.from_config(config)
        trusting = ssl.create_default_context(cafile=str(cert))
        out = await send_email(smtp, event(), guard=LOCAL, tls_context=trusting)
        assert out.outcome == "delivered", out
        (got,) = receiver.wait(1)
        assert got.authenticated
        # Without trusting the certificate the upgrade fails, and no password is sent.
        out = await send_email(smtp, event(), guard=LOCAL)
        assert out.outcome == "failed" and out.detail.startswith("TLS failed"), out
        assert receiver.logins == [("alerts", True)]
