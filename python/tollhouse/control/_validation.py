"""Query-parameter parsing for the control plane: bad input is a 422 naming the field."""

from __future__ import annotations

import math
from datetime import UTC, datetime

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
