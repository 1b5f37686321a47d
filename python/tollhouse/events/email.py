"""Email delivery over SMTP for ``email`` delivery targets (aiosmtplib, on the event loop).

One message per call, with one bounded timeout over the whole conversation (resolve,
connect, EHLO, STARTTLS, AUTH, DATA).  The SMTP host goes through the webhooks' SSRF
guard: an IP literal or a name whose addresses are internal is refused unless listed in
``webhooks.allow_private``, and the connection is made to the address that was checked
(so a name cannot resolve to a public address for the check and a private one after).

TLS: port 465 speaks TLS from the first byte; on any other port the connection is
upgraded with STARTTLS when the server offers it, required with ``starttls: true`` and
never tried with ``starttls: false``.  The password is only sent over TLS, or in plain
text when the target says ``starttls: false``.  It is never logged and never part of an
outcome's ``detail``.

The message is plain text: what happened, when, and the event's data fields (fields that
could hold secrets or prompt text are left out).
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import re
import socket
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

import aiosmtplib

from tollhouse.config import Secret
from tollhouse.errors import DestinationBlocked
from tollhouse.events.dispatcher import AttemptResult, Outcome
from tollhouse.events.slack import format_value, summary
from tollhouse.events.ssrf import SSRFGuard
from tollhouse.events.types import Event

log = logging.getLogger("tollhouse.events")

SMTPS_PORT = 465
DEFAULT_FROM = "tollhouse@localhost"
_MAX_FIELDS = 30
_MAX_VALUE_CHARS = 300
_MAX_DETAIL_CHARS = 300
# Data fields an email never shows: credentials, and anything that may carry prompt or
# completion text.  ``inputTokens`` and friends are counts and stay.
_HIDDEN = re.compile(
    r"secret|passw|api_?key|authoriz|bearer|prompt|content|messages$|completion|token$",
    re.IGNORECASE,
)
_LOCAL_HOSTNAME = socket.gethostname() or "tollhouse"


@dataclass(frozen=True, slots=True)
class SmtpTarget:
    """An ``email`` delivery target's config (``to``, ``smtp_host``, ``smtp_port``,
    ``from``, ``smtp_user``, ``smtp_password``, ``starttls``)."""

    to: tuple[str, ...]
    host: str
    port: int | None = None
    sender: str | None = None
    user: str | None = None
    password: Secret | None = None
    starttls: bool | None = None

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> SmtpTarget:
        """Raises ValueError (naming the field, never showing a value) when a stored
        config is not usable."""
        to = config.get("to")
        if not isinstance(to, list) or not to or not all(is_address(a) for a in to):
            raise ValueError("config.to: expected a non-empty list of email addresses")
        host = config.get("smtp_host")
        if not isinstance(host, str) or not host or any(c.isspace() for c in host):
            raise ValueError("config.smtp_host: expected a host name or address")
        port = config.get("smtp_port")
        if port is not None and (type(port) is not int or not 1 <= port <= 65535):
            raise ValueError("config.smtp_port: expected a port number")
        sender = config.get("from")
        if sender is not None and not is_address(sender):
            raise ValueError("config.from: expected an email address")
        user, password = config.get("smtp_user"), config.get("smtp_password")
        for key, value in (("smtp_user", user), ("smtp_password", password)):
            if value is not None and not isinstance(value, str):
                raise ValueError(f"config.{key}: expected a string")
        starttls = config.get("starttls")
        if starttls is not None and not isinstance(starttls, bool):
            raise ValueError("config.starttls: expected true or false")
        return cls(
            to=tuple(to),
            host=host,
            port=port,
            sender=sender,
            user=user or None,
            password=Secret(password) if password else None,
            starttls=starttls,
        )

    @property
    def effective_port(self) -> int:
        if self.port is not None:
            return self.port
        return 587 if self.starttls else 25

    @property
    def implicit_tls(self) -> bool:
        return self.effective_port == SMTPS_PORT

    @property
    def from_address(self) -> str:
        if self.sender:
            return self.sender
        if self.user and is_address(self.user):
            return self.user
        return DEFAULT_FROM


def is_address(value: Any) -> bool:
    """One ``@``, no whitespace or control characters (no header injection)."""
    return (
        isinstance(value, str)
        and 3 <= len(value) <= 320
        and value.count("@") == 1
        and not any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in value)
    )


# -- the message ---------------------------------------------------------------------------


def _visible(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _visible(v) for k, v in value.items() if not _HIDDEN.search(str(k))}
    if isinstance(value, list):
        return [_visible(v) for v in value]
    return value


def subject(event: Event) -> str:
    parts = ["[Tollhouse]"]
    severity = event.data.get("severity")
    if isinstance(severity, str) and severity.isalpha() and len(severity) <= 20:
        parts.append(f"[{severity}]")
    parts.append(summary(event, emoji=False))
    if event.data.get("test") is True:
        parts.append("(test)")
    return " ".join(parts).replace("\r", " ").replace("\n", " ")[:250]


def body_text(event: Event, target_name: str = "") -> str:
    lines = [summary(event, emoji=False), ""]
    lines.append(f"Event:      {event.type}")
    lines.append(f"Event id:   {event.id}")
    lines.append(f"Time (UTC): {event.timestamp}")
    if event.team_id:
        lines.append(f"Workspace:  {event.team_id}")
    if event.key_name:
        lines.append(f"Key:        {event.key_name}")
    shown = [(k, v) for k, v in event.data.items() if not _HIDDEN.search(k)][:_MAX_FIELDS]
    if shown:
        lines += ["", "Details:"]
        lines += [f"  {k}: {format_value(_visible(v), _MAX_VALUE_CHARS)}" for k, v in shown]
    if event.data.get("test") is True:
        lines += ["", "This is a test message: nothing is wrong."]
    where = f' for the delivery target "{target_name}"' if target_name else ""
    lines += ["", f"-- Sent by Tollhouse{where}."]
    return "\n".join(lines) + "\n"


def build_message(event: Event, target: SmtpTarget, target_name: str = "") -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = target.from_address
    msg["To"] = ", ".join(target.to)
    msg["Subject"] = subject(event)
    msg["Date"] = email.utils.format_datetime(event.created_at)
    msg["Message-ID"] = f"<{event.id}@tollhouse>"
    msg["X-Tollhouse-Event"] = event.type
    msg["X-Tollhouse-Event-Id"] = event.id
    msg.set_content(body_text(event, target_name))
    return msg


# -- sending -------------------------------------------------------------------------------


async def _open_socket(host: str, port: int, guard: SSRFGuard) -> socket.socket:
    """A connected, non-blocking socket to an address of ``host`` the guard allows."""
    guard.check_host(host)
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    guard.check_resolved(host, [str(info[4][0]) for info in infos])
    last: OSError = OSError(f"{host} has no address")
    for family, kind, proto, _, address in infos:
        sock = socket.socket(family, kind, proto)
        try:
            sock.setblocking(False)
            await loop.sock_connect(sock, address)
            return sock
        except OSError as exc:
            sock.close()
            last = exc
        except BaseException:
            sock.close()
            raise
    raise last


async def _conversation(
    target: SmtpTarget,
    msg: EmailMessage,
    guard: SSRFGuard,
    timeout: float,
    tls_context: ssl.SSLContext | None,
) -> AttemptResult:
    sock = await _open_socket(target.host, target.effective_port, guard)
    try:
        smtp = aiosmtplib.SMTP(
            hostname=target.host,  # the TLS server name; the socket is already connected
            sock=sock,
            use_tls=target.implicit_tls,
            start_tls=False,
            timeout=timeout,
            local_hostname=_LOCAL_HOSTNAME,
            tls_context=tls_context,
        )
    except BaseException:
        sock.close()
        raise
    # From here the transport made in connect() owns the socket and closes it, also when
    # connect fails (a TLS transport only after its close_notify): closing it ourselves
    # could free the descriptor while the loop still watches it.
    try:
        await smtp.connect()
        await smtp.ehlo()
        tls = target.implicit_tls
        if not tls and target.starttls is not False:
            if smtp.supports_extension("starttls"):
                await smtp.starttls()
                tls = True
            elif target.starttls:
                return AttemptResult("failed", detail="the server does not offer STARTTLS")
        if target.user is not None:
            if not tls and target.starttls is None:
                return AttemptResult(
                    "failed",
                    detail="the server does not offer STARTTLS: the SMTP password is not "
                    "sent in plain text (set starttls: false to allow it)",
                )
            password = target.password.get() if target.password is not None else ""
            await smtp.login(target.user, password)
        refused, reply = await smtp.send_message(
            msg, sender=target.from_address, recipients=list(target.to)
        )
        try:
            await smtp.quit()
        except aiosmtplib.SMTPException:
            pass  # the message was accepted; a rude goodbye changes nothing
        detail = f"accepted: {reply}"
        if refused:
            detail += f"; refused: {', '.join(sorted(refused))}"
        return AttemptResult("delivered", 250, detail=detail)
    finally:
        smtp.close()


def _verdict(code: int) -> Outcome:
    """An SMTP reply's verdict: 4xx is temporary (another try may succeed), 5xx final."""
    return "retry" if 400 <= code < 500 else "failed"


def _failure(exc: BaseException, target: SmtpTarget, timeout: float) -> AttemptResult:
    where = f"{target.host}:{target.effective_port}"
    if isinstance(exc, DestinationBlocked):
        return AttemptResult("blocked", detail=exc.message)
    if isinstance(exc, socket.gaierror):
        return AttemptResult("retry", detail=f"cannot resolve the SMTP host {target.host!r}")
    if isinstance(exc, ConnectionRefusedError):
        return AttemptResult("retry", detail=f"connection refused by {where}")
    if isinstance(exc, aiosmtplib.SMTPAuthenticationError):  # 454: try later; 535: never
        reply = f"{exc.code} {exc.message}"
        return AttemptResult(
            _verdict(exc.code), exc.code, detail=f"authentication failed ({reply})"
        )
    if isinstance(exc, TimeoutError):  # aiosmtplib's timeouts are TimeoutErrors too
        return AttemptResult("retry", detail=f"timed out after {timeout:g} s talking to {where}")
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        # Every recipient refused: worth another try if any refusal was temporary (4xx,
        # greylisting); the status is that reply, else the first one.
        codes = ", ".join(f"{e.recipient}: {e.code}" for e in exc.recipients)
        replies = [e.code for e in exc.recipients]
        temporary = [c for c in replies if _verdict(c) == "retry"]
        code = (temporary or replies)[0] if replies else None
        outcome: Outcome = "retry" if temporary else "failed"
        return AttemptResult(outcome, code, detail=f"every recipient was refused ({codes})")
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return AttemptResult(_verdict(exc.code), exc.code, detail=f"SMTP {exc.code}: {exc.message}")
    if isinstance(exc, ssl.SSLError):
        return AttemptResult("failed", detail=f"TLS failed with {where} ({exc.reason or exc})")
    if isinstance(exc, aiosmtplib.SMTPServerDisconnected):
        return AttemptResult("retry", detail=f"{where} closed the connection")
    if isinstance(exc, aiosmtplib.SMTPConnectError):
        cause = exc.__cause__
        if isinstance(cause, ConnectionRefusedError):
            return AttemptResult("retry", detail=f"connection refused by {where}")
        return AttemptResult("retry", detail=f"cannot connect to {where}")
    if isinstance(exc, aiosmtplib.SMTPException):
        return AttemptResult("failed", detail=f"SMTP error: {exc}")
    if isinstance(exc, OSError):
        return AttemptResult("retry", detail=f"connection error with {where} ({exc.strerror})")
    return AttemptResult("failed", detail=f"SMTP delivery failed ({type(exc).__name__})")


def _clean(result: AttemptResult, target: SmtpTarget) -> AttemptResult:
    """One line, bounded, and never the password (a server may echo what it got)."""
    detail = " ".join(result.detail.split())
    if target.password is not None and target.password.get():
        detail = detail.replace(target.password.get(), "********")
    if len(detail) > _MAX_DETAIL_CHARS:
        detail = detail[: _MAX_DETAIL_CHARS - 1] + "…"
    return AttemptResult(result.outcome, result.status, result.retry_after, detail)


async def send_email(
    target: SmtpTarget,
    event: Event,
    *,
    guard: SSRFGuard,
    timeout: float = 10.0,
    name: str = "",
    tls_context: ssl.SSLContext | None = None,
) -> AttemptResult:
    """Send ``event`` to ``target`` once; every failure is an outcome, never an exception.

    ``outcome`` is ``delivered`` (``status`` 250), ``blocked`` (SSRF guard), ``retry``
    (connection, timeout, 4xx reply: worth another try later) or ``failed``."""
    try:
        msg = build_message(event, target, name)
    except (ValueError, TypeError) as exc:
        return AttemptResult("failed", detail=f"cannot build the message ({exc})")
    try:
        async with asyncio.timeout(timeout):
            result = await _conversation(target, msg, guard, timeout, tls_context)
    except Exception as exc:
        result = _failure(exc, target, timeout)
    result = _clean(result, target)
    recipients = ", ".join(target.to)
    if result.outcome == "delivered":
        log.info("email %s %s to %s via %s: sent", event.type, event.id, recipients, target.host)
    else:
        log.warning(
            "email %s %s to %s via %s: %s",
            event.type,
            event.id,
            recipients,
            target.host,
            result.detail,
        )
    return result
