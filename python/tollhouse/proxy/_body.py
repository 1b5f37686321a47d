"""Read an ASGI request body with a size cap enforced while reading (chunked bodies too)."""

from __future__ import annotations

from tollhouse.errors import InvalidRequest, PayloadTooLarge
from tollhouse.proxy.asgi import Message, Receive


class ClientGone(Exception):
    """The client disconnected before its request body was complete."""


def _too_large(cap: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"request body is larger than the {cap} byte limit")


def declared_length(headers: list[tuple[bytes, bytes]]) -> int | None:
    for name, value in headers:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                raise InvalidRequest("invalid Content-Length header") from None
    return None


async def read_body(receive: Receive, headers: list[tuple[bytes, bytes]], cap: int) -> bytes:
    """The whole body, or ``PayloadTooLarge`` as soon as it passes ``cap`` bytes."""
    length = declared_length(headers)
    if length is not None and length > cap:
        raise _too_large(cap)
    message: Message = await receive()
    if message["type"] != "http.request":
        raise ClientGone
    body: bytes = message.get("body", b"")
    if not message.get("more_body", False):
        if len(body) > cap:
            raise _too_large(cap)
        return body
    parts = [body]
    size = len(body)
    while True:
        message = await receive()
        if message["type"] != "http.request":
            raise ClientGone
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > cap:
            raise _too_large(cap)
        parts.append(chunk)
        if not message.get("more_body", False):
            return b"".join(parts)
