"""Raw ASGI plumbing for the data-plane routes: typed aliases and precomputed responses.

The data plane bypasses Starlette: a request is a scope plus receive/send, and every
response is one ``http.response.start`` with a prebuilt header list and one body.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any

import orjson

from tollhouse.errors import TollhouseError, UpstreamHTTPError

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Header = tuple[bytes, bytes]

JSON: Header = (b"content-type", b"application/json")
SSE: Header = (b"content-type", b"text/event-stream")
NO_CACHE: Header = (b"cache-control", b"no-cache")
REQUEST_ID = b"x-gate-request-id"
PROVIDER = b"x-gate-provider"
COST = b"x-gate-cost"
OVERHEAD = b"x-gate-overhead-ms"
ATTEMPTS = b"x-gate-attempts"


async def send_bytes(send: Send, status: int, body: bytes, headers: list[Header]) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def send_json(send: Send, status: int, data: Any, extra: Sequence[Header] = ()) -> None:
    await send_bytes(send, status, orjson.dumps(data), [JSON, *extra])


def error_response(exc: TollhouseError) -> tuple[int, bytes, list[Header]]:
    """Status, body and headers of an error (an upstream 4xx keeps its own)."""
    headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in exc.headers.items()]
    if isinstance(exc, UpstreamHTTPError):
        ctype = exc.content_type.encode("latin-1")
        return exc.upstream_status, exc.upstream_body, [(b"content-type", ctype), *headers]
    return exc.status, exc.body_bytes(), [JSON, *headers]


def header(headers: list[Header], name: bytes) -> bytes | None:
    for key, value in headers:
        if key == name:
            return value
    return None
