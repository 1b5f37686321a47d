"""A real SMTP receiver on 127.0.0.1 (aiosmtpd, in its own thread and event loop).

``SmtpReceiver(users={"u": "pw"})`` also offers AUTH (PLAIN, LOGIN) checked against
``users``; ``tls=(cert, key)`` offers STARTTLS.  Accepted messages are parsed into
``received``; every AUTH attempt is recorded in ``logins`` as (user, accepted).
``replies={"RCPT": "451 4.7.1 try later"}`` answers that command (``AUTH``, ``RCPT`` or
``DATA``) with the given reply instead of accepting it (``replies`` may change between
sends).
"""

from __future__ import annotations

import email
import email.policy
import ssl
import subprocess
import threading
import time
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from tests.support.servers import free_port


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    authenticated: bool


class _Handler:
    def __init__(self, receiver: SmtpReceiver) -> None:
        self.receiver = receiver

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        refusal = self.receiver.replies.get("RCPT")
        if refusal is not None:
            return refusal
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        refusal = self.receiver.replies.get("DATA")
        if refusal is not None:
            return refusal
        raw = envelope.original_content or b""
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(msg, EmailMessage)
        with self.receiver.lock:
            self.receiver.received.append(
                Received(
                    str(envelope.mail_from),
                    list(envelope.rcpt_tos),
                    msg,
                    bool(session.authenticated),
                )
            )
        return "250 OK queued"


class SmtpReceiver:
    def __init__(
        self,
        *,
        users: dict[str, str] | None = None,
        tls: tuple[Path, Path] | None = None,
        replies: dict[str, str] | None = None,
    ) -> None:
        self.users = users
        self.replies: dict[str, str] = dict(replies or {})
        self.received: list[Received] = []
        self.logins: list[tuple[str, bool]] = []
        self.lock = threading.Lock()
        self.port = free_port()
        kwargs: dict[str, Any] = {}
        if users is not None:
            kwargs.update(authenticator=self._authenticate, auth_require_tls=False)
        if tls is not None:
            ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ctx.load_cert_chain(str(tls[0]), str(tls[1]))
            kwargs["tls_context"] = ctx
        self.controller = Controller(_Handler(self), hostname="127.0.0.1", port=self.port, **kwargs)

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        assert self.users is not None
        if not isinstance(data, LoginPassword):
            return AuthResult(success=False, handled=False)
        user, password = data.login.decode(), data.password.decode()
        ok = self.users.get(user) == password
        with self.lock:
            self.logins.append((user, ok))
        refusal = self.replies.get("AUTH")
        if refusal is not None:
            return AuthResult(success=False, handled=False, message=refusal)
        return AuthResult(success=ok, handled=False)

    def start(self) -> SmtpReceiver:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()

    def __enter__(self) -> SmtpReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def wait(self, n: int = 1, timeout: float = 5.0) -> list[Received]:
        """The first ``n`` received messages, polling until they are there."""
        deadline = time.monotonic() + timeout
        while True:
            with self.lock:
                if len(self.received) >= n:
                    return list(self.received)
            if time.monotonic() > deadline:
                raise AssertionError(f"{n} message(s) expected, got {len(self.received)}")
            time.sleep(0.01)


def self_signed(tmp: Path, ip: str = "127.0.0.1") -> tuple[Path, Path]:
    """A throw-away certificate for ``ip`` (openssl CLI), as (cert, key) paths."""
    cert, key = tmp / "smtp-cert.pem", tmp / "smtp-key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
            "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", str(key), "-out", str(cert),
            "-days", "1", "-subj", "/CN=tollhouse-test", "-addext", f"subjectAltName=IP:{ip}",
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )  # fmt: skip
    return cert, key
