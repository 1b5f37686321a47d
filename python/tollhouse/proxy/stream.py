"""The SSE relay: upstream bytes go to the client as they arrive, event-aligned.

Only complete events (ending in a blank line) are forwarded, so a client never sees a
torn event.  Events pass through untouched except the usage chunk: the gateway always
asks the upstream for ``stream_options.include_usage``; it adds ``usage.cost`` (USD) to
that chunk when the client asked for usage and hides it when the client did not.  When
the upstream reports no usage, the Rust core counts the relayed text at the end and,
if the client asked for usage, a usage chunk is synthesised before ``[DONE]``.
Only events carrying usage or ``[DONE]`` are parsed on the way through.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from tollhouse.proxy.pipeline import Usage, usage_from

_USAGE_MARKS = (b'"usage":{', b'"usage": {')
_DONE = b"[DONE]"
_FINISH = b'"finish_reason":"'


class SSERelay:
    def __init__(
        self,
        *,
        client_usage: bool,
        cost_of: Callable[[Usage], int],
        estimate: Callable[[str], Usage],
    ) -> None:
        self.client_usage = client_usage
        self._cost_of = cost_of
        self._estimate = estimate
        self._buf = b""
        self._seen: list[bytes] = []
        self._last: dict[str, Any] | None = None
        self.usage: Usage | None = None
        self.cost_micros = 0
        self.done = False
        self.finish_reason: str | None = None

    def feed(self, chunk: bytes) -> bytes:
        """Bytes to forward now (complete events only)."""
        if b"\r" in chunk:
            chunk = chunk.replace(b"\r\n", b"\n")
        buf = self._buf + chunk if self._buf else chunk
        cut = buf.rfind(b"\n\n")
        if cut < 0:
            self._buf = buf
            return b""
        cut += 2
        ready, self._buf = buf[:cut], buf[cut:]
        if self.usage is None:
            self._seen.append(ready)
        if _FINISH in ready:
            self._note_finish(ready)
        if _DONE in ready or _USAGE_MARKS[0] in ready or _USAGE_MARKS[1] in ready:
            return self._events(ready)
        return ready

    def _note_finish(self, ready: bytes) -> None:
        at = ready.rfind(_FINISH) + len(_FINISH)
        end = ready.find(b'"', at)
        if end > at:
            self.finish_reason = ready[at:end].decode("utf-8", "replace")

    def _events(self, ready: bytes) -> bytes:
        # Events before the first one that needs a look go out as they are.
        first = min(
            (at for at in (ready.find(m) for m in (_DONE, *_USAGE_MARKS)) if at >= 0),
            default=0,
        )
        cut = ready.rfind(b"\n\n", 0, first)
        start = cut + 2 if cut >= 0 else 0
        out: list[bytes] = [ready[:start]] if start > 0 else []
        for event in ready[start:].split(b"\n\n"):
            if not event:
                continue
            payload = _data(event)
            if payload == _DONE:
                if self.usage is None:
                    usage = self._fallback()
                    if self.client_usage:
                        out.append(self._synthetic(usage))
                self.done = True
                out.append(event + b"\n\n")
            elif payload is not None and any(m in payload for m in _USAGE_MARKS):
                out.append(self._usage_event(event, payload))
            else:
                out.append(event + b"\n\n")
        return b"".join(out)

    def _usage_event(self, event: bytes, payload: bytes) -> bytes:
        try:
            data = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return event + b"\n\n"
        usage = usage_from(data)
        if usage is None or not isinstance(data, dict):
            return event + b"\n\n"
        self.usage = usage
        self.cost_micros = self._cost_of(usage)
        self._seen.clear()
        self._last = data
        if self.client_usage:
            data["usage"]["cost"] = self.cost_micros / 1_000_000
        elif data.get("choices"):
            data["usage"] = None
        else:
            return b""
        return b"data: " + orjson.dumps(data) + b"\n\n"

    def _fallback(self) -> Usage:
        text, last = _stream_text(self._seen)
        self._seen.clear()
        if last is not None:
            self._last = last
            self.finish_reason = _finish(last) or self.finish_reason
        usage = self.usage = self._estimate(text)
        self.cost_micros = self._cost_of(usage)
        return usage

    def _synthetic(self, usage: Usage) -> bytes:
        base = self._last or {}
        chunk = {
            "id": base.get("id", ""),
            "object": "chat.completion.chunk",
            "created": base.get("created", 0),
            "model": base.get("model", ""),
            "choices": [],
            "usage": {
                "prompt_tokens": usage.prompt_tokens,
                "completion_tokens": usage.completion_tokens,
                "total_tokens": usage.prompt_tokens + usage.completion_tokens,
                "cost": self.cost_micros / 1_000_000,
            },
        }
        return b"data: " + orjson.dumps(chunk) + b"\n\n"

    def finish(self) -> bytes:
        """What is left at the end of the upstream stream (or on abort): usage is final."""
        tail, self._buf = self._buf, b""
        if self.usage is None:
            if tail:
                self._seen.append(tail + b"\n\n")
            self._fallback()
        return tail


def _data(event: bytes) -> bytes | None:
    for line in event.split(b"\n"):
        if line.startswith(b"data:"):
            return line[5:].strip()
    return None


def _stream_text(events: list[bytes]) -> tuple[str, dict[str, Any] | None]:
    """Generated text of the relayed chunks (content, tool-call names and arguments)."""
    parts: list[str] = []
    last: dict[str, Any] | None = None
    for block in events:
        for event in block.split(b"\n\n"):
            payload = _data(event)
            if not payload or payload == _DONE:
                continue
            try:
                data = orjson.loads(payload)
            except orjson.JSONDecodeError:
                continue
            if not isinstance(data, dict):
                continue
            last = data
            choices = data.get("choices")
            for choice in choices if isinstance(choices, list) else ():
                delta = choice.get("delta") if isinstance(choice, dict) else None
                if not isinstance(delta, dict):
                    continue
                content = delta.get("content")
                if isinstance(content, str):
                    parts.append(content)
                calls = delta.get("tool_calls")
                for call in calls if isinstance(calls, list) else ():
                    fn = call.get("function") if isinstance(call, dict) else None
                    if isinstance(fn, dict):
                        for name in ("name", "arguments"):
                            if isinstance(fn.get(name), str):
                                parts.append(fn[name])
            if _finish(data):
                last = data
    return "".join(parts), last


def _finish(data: dict[str, Any]) -> str | None:
    choices = data.get("choices")
    if isinstance(choices, list):
        for choice in choices:
            if isinstance(choice, dict) and isinstance(choice.get("finish_reason"), str):
                reason: str = choice["finish_reason"]
                return reason
    return None
