"""Query-parameter parsing for the control plane: bad input is a 422 naming the field."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request

from tollhouse.errors import ValidationError

DEFAULT_LIMIT = 25
MAX_LIMIT = 100


def parse_time(raw: str, name: str) -> float:
    """A timestamp given as UNIX seconds or ISO 8601 (naive means UTC)."""
    try:
        value = float(raw)
    except ValueError:
        try:
            parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        except ValueError:
            raise ValidationError(
                f"invalid {name}", {name: "expected an ISO 8601 time or UNIX seconds"}
            ) from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.timestamp()
    if not math.isfinite(value) or value < 0 or value > 253_402_300_799:
        raise ValidationError(f"invalid {name}", {name: "out of range"})
    return value


def query_time(request: Request, name: str) -> float | None:
    raw = request.query_params.get(name)
    return None if raw is None or raw == "" else parse_time(raw, name)


def query_limit(request: Request) -> int:
    """``?limit=`` between 1 and 100, default 25."""
    raw = request.query_params.get("limit")
    if raw is None or raw == "":
        return DEFAULT_LIMIT
    try:
        value = int(raw)
    except ValueError:
        raise ValidationError("invalid limit", {"limit": "expected an integer"}) from None
    if not 1 <= value <= MAX_LIMIT:
        raise ValidationError("invalid limit", {"limit": f"must be between 1 and {MAX_LIMIT}"})
    return value


def query_str(request: Request, name: str, *, max_len: int = 200) -> str | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    if len(raw) > max_len:
        raise ValidationError(f"invalid {name}", {name: f"at most {max_len} characters"})
    return raw


class Body:
    """Collects per-field errors over a JSON body; ``done()`` raises one 422 with all."""

    def __init__(self, data: dict[str, Any], allowed: tuple[str, ...]) -> None:
        self.data = data
        self.errors: dict[str, str] = {
            name: "unknown field" for name in data if name not in allowed
        }

    def text(self, name: str, *, required: bool = False, max_len: int = 200) -> str | None:
        value = self.data.get(name)
        if value is None:
            if required:
                self.errors[name] = "required"
            return None
        if not isinstance(value, str) or not value.strip():
            self.errors[name] = "expected a non-empty string"
            return None
        if len(value) > max_len:
            self.errors[name] = f"at most {max_len} characters"
            return None
        return value.strip()

    def choice(self, name: str, options: tuple[str, ...], *, required: bool = False) -> str | None:
        value = self.data.get(name)
        if value is None:
            if required:
                self.errors[name] = "required"
            return None
        if value not in options:
            self.errors[name] = f"one of {', '.join(options)}"
            return None
        return str(value)

    def done(self) -> None:
        if self.errors:
            raise ValidationError("invalid request body", dict(sorted(self.errors.items())))
