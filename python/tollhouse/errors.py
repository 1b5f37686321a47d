"""The one error tree of Tollhouse.

Each class carries its HTTP status and the OpenAI-envelope ``code`` from DESIGN.md, so a
stage of the pipeline raises and the app turns it into
``{"error": {"message", "type": "gate_error", "code"}}`` in one place.  Classes also
subclass the matching builtin so ordinary ``except ValueError`` clauses keep working.
"""

from __future__ import annotations

from typing import Any, ClassVar

import orjson

ERROR_TYPE = "gate_error"


class TollhouseError(Exception):
    """Base of every error Tollhouse raises on purpose."""

    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"

    def __init__(
        self,
        message: str,
        *,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.headers: dict[str, str] = headers or {}
        self.extra: dict[str, Any] = extra or {}

    def body(self) -> dict[str, Any]:
        err: dict[str, Any] = {"message": self.message, "type": ERROR_TYPE, "code": self.code}
        err.update(self.extra)
        return {"error": err}

    def body_bytes(self) -> bytes:
        return orjson.dumps(self.body())


class ConfigError(TollhouseError, ValueError):
    """The configuration (file, env reference, rule or price entry) is invalid."""

    code = "config_error"


# -- 4xx: the client's request -------------------------------------------------------------


class InvalidRequest(TollhouseError, ValueError):
    status = 400
    code = "invalid_request"


class InvalidKey(TollhouseError, PermissionError):
    status = 401
    code = "invalid_key"


class Forbidden(TollhouseError, PermissionError):
    status = 403
    code = "forbidden"


class ModelNotAllowed(Forbidden):
    code = "model_not_allowed"


class PolicyBlocked(Forbidden):
    code = "policy_blocked"


class NotFound(TollhouseError, LookupError):
    status = 404
    code = "not_found"


class ModelNotFound(NotFound):
    code = "model_not_found"


class MethodNotAllowed(TollhouseError, ValueError):
    status = 405
    code = "method_not_allowed"


class Conflict(TollhouseError, ValueError):
    status = 409
    code = "conflict"


class PayloadTooLarge(TollhouseError, ValueError):
    status = 413
    code = "payload_too_large"


class ValidationError(TollhouseError, ValueError):
    """422 with per-field messages (control plane)."""

    status = 422
    code = "validation_error"

    def __init__(self, message: str, fields: dict[str, str] | None = None) -> None:
        super().__init__(message, extra={"fields": fields or {}})
        self.fields = fields or {}


class RateLimited(TollhouseError):
    status = 429
    code = "rate_limited"


class BudgetExceeded(RateLimited):
    code = "budget_exceeded"


class SessionKilled(RateLimited):
    code = "session_killed"


class AuditBlocked(TollhouseError):
    status = 451
    code = "audit_blocked"


class InvalidSignature(InvalidKey):
    """A signed webhook whose signature or timestamp does not verify (receiver side)."""

    code = "invalid_signature"


class DestinationBlocked(Forbidden):
    """An outbound delivery target resolves to a loopback, private or metadata address."""

    code = "destination_blocked"


# -- 5xx: upstream and dependencies ----------------------------------------------------------


class ProviderError(TollhouseError, ConnectionError):
    """Upstream 5xx, timeout or connection error."""

    status = 502
    code = "provider_error"


class NoProviderKey(TollhouseError):
    status = 503
    code = "no_provider_key"


class Unavailable(TollhouseError):
    """A dependency (store, counters) is down and fail_mode is closed."""

    status = 503
    code = "unavailable"


class UpstreamHTTPError(TollhouseError):
    """An upstream 4xx answer, passed back to the client with its own status and body."""

    code = "upstream_error"

    def __init__(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        super().__init__(f"upstream answered {status}")
        self.upstream_status = status
        self.upstream_body = body
        self.content_type = content_type
