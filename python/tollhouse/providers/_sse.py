"""Server-sent events: an incremental parser for upstream bytes and an encoder for clients.

Upstream streams arrive in arbitrary TCP-sized pieces, so the parser keeps the partial
line between calls and yields an event only once its terminating blank line has arrived
(WHATWG "event stream interpretation", minus reconnection: ``id`` and ``retry`` are
kept only as fields).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson


@dataclass(frozen=True, slots=True)
class SSEEvent:
    event: str
    data: str


class SSEParser:
    """Feed it bytes as they arrive; it returns the events completed so far."""

    __slots__ = ("_buf", "_event", "_data")

    # Lines end in LF, CRLF or a lone CR; they are normalised to LF before splitting.

    def __init__(self) -> None:
        self._buf = b""
        self._event = ""
        self._data: list[str] = []

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        buf = self._buf + chunk if self._buf else chunk
        if b"\r" in buf:
            if buf.endswith(b"\r"):  # maybe half of a CRLF: wait for the next piece
                self._buf = buf
                return []
            buf = buf.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        end = buf.rfind(b"\n")
        if end < 0:
            self._buf = buf
            return []
        self._buf = buf[end + 1 :]
        out: list[SSEEvent] = []
        for line in buf[:end].decode("utf-8", "replace").split("\n"):
            self._line(line, out)
        return out

    def close(self) -> list[SSEEvent]:
        """End of stream: a final event without its blank line still counts."""
        out: list[SSEEvent] = []
        if self._buf:
            self._line(self._buf.decode("utf-8", "replace"), out)
            self._buf = b""
        self._line("", out)
        return out

    def _line(self, line: str, out: list[SSEEvent]) -> None:
        if not line:
            if self._data or self._event:
                out.append(SSEEvent(self._event or "message", "\n".join(self._data)))
            self._event = ""
            self._data = []
            return
        if line[0] == ":":
            return
        name, sep, value = line.partition(":")
        if sep and value[:1] == " ":
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value


def encode_event(data: dict[str, Any], event: str | None = None) -> bytes:
    """One SSE frame; ``event:`` is written when given (Anthropic and Responses streams)."""
    body = orjson.dumps(data)
    if event is None:
        return b"data: " + body + b"\n\n"
    return b"event: " + event.encode() + b"\ndata: " + body + b"\n\n"


DONE_FRAME = b"data: [DONE]\n\n"
