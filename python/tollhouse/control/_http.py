"""Small request/response helpers shared by the control-plane routes."""

from __future__ import annotations

import functools
import math
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from tollhouse.errors import InvalidRequest, TollhouseError, ValidationError

Endpoint = Callable[[Request], Awaitable[Response]]
MAX_BODY_BYTES = 1024 * 1024
MAX_QUERY_INT = 10**12  # ?offset= and the like: far below a 64-bit SQL integer


def json_response(content: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(content), status_code=status, media_type="application/json")


def error_response(exc: TollhouseError) -> Response:
    return Response(
        exc.body_bytes(), status_code=exc.status, headers=exc.headers, media_type="application/json"
    )


def endpoint(fn: Endpoint) -> Endpoint:
    """Answer a ``TollhouseError`` in the error envelope (whatever app mounts the route)."""

    @functools.wraps(fn)
    async def wrapper(request: Request) -> Response:
        try:
            return await fn(request)
        except TollhouseError as exc:
            return error_response(exc)

    return wrapper


async def json_object(request: Request) -> dict[str, Any]:
    """The body as a JSON object: 400 if it is not JSON, 422 if it is not an object."""
    body = await request.body()
    if len(body) > MAX_BODY_BYTES:
        raise InvalidRequest(f"request body larger than {MAX_BODY_BYTES} bytes")
    try:
        data = orjson.loads(body or b"{}")
    except orjson.JSONDecodeError:
        raise InvalidRequest("request body is not valid JSON") from None
    if not isinstance(data, dict):
        raise ValidationError("invalid request body", {"body": "expected a JSON object"})
    return data


def iso(ts: float | None) -> str | None:
    """A UNIX timestamp as ISO 8601 UTC (``2026-01-01T00:00:00.000Z``)."""
    if ts is None or not math.isfinite(ts):
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def query_int(request: Request, name: str, default: int, *, maximum: int = MAX_QUERY_INT) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidRequest(f"query parameter {name!r} must be an integer") from None
    if not 0 <= value <= maximum:
        raise InvalidRequest(f"query parameter {name!r} must be between 0 and {maximum}")
    return value


_TRUE = ("true", "1", "yes")
_FALSE = ("false", "0", "no")
# What ``query_bool`` accepts (for a parameter's OpenAPI enum).
QUERY_BOOLS = tuple(w for pair in zip(_TRUE, _FALSE, strict=True) for w in pair)


def query_bool(request: Request, name: str, default: bool) -> bool:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    lowered = raw.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise InvalidRequest(f"query parameter {name!r} must be true or false")
