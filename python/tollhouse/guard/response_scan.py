"""Response scanning (the ``strict`` preset): model output is redacted before the client
sees it.

Non-stream answers have their message content and tool-call arguments redacted in
place.  Streams go through ``StreamScanner``: one Rust ``StreamRedactor`` per choice
(and per tool call) holds back the unfinished tail of the text so a secret split over
two SSE chunks is still caught; the held text is released into the chunk that carries
the choice's ``finish_reason`` (or before ``[DONE]``).  Only events carrying text are
parsed and re-encoded; everything else passes through as bytes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from tollhouse import native

_DATA = b"data: "
_DONE = b"[DONE]"


def scan_completion(data: dict[str, Any], red: native.Redactor, modes: Mapping[str, str]) -> int:
    """Redact a chat completion's choices in place; the number of items masked."""
    count = 0
    choices = data.get("choices")
    for choice in choices if isinstance(choices, list) else ():
        message = choice.get("message") if isinstance(choice, dict) else None
        if not isinstance(message, dict):
            continue
        targets: list[tuple[dict[str, Any], str]] = []
        if isinstance(message.get("content"), str):
            targets.append((message, "content"))
        calls = message.get("tool_calls")
        for call in calls if isinstance(calls, list) else ():
            fn = call.get("function") if isinstance(call, dict) else None
            if isinstance(fn, dict) and isinstance(fn.get("arguments"), str):
                targets.append((fn, "arguments"))
        if not targets:
            continue
        results = red.redact_many([t[k] for t, k in targets], modes or None)
        for (target, k), result in zip(targets, results, strict=True):
            if result.count:
                target[k] = result.text
                count += result.count
    return count


class StreamScanner:
    """Redacts the text of an OpenAI chat SSE stream, event by event."""

    def __init__(self, red: native.Redactor, modes: Mapping[str, str]) -> None:
        self._red = red
        self._modes = dict(modes) or None
        self._streams: dict[tuple[int, int], native.StreamRedactor] = {}
        self._finished = 0  # items masked by streams already finished

    @property
    def count(self) -> int:
        return self._finished + sum(s.count for s in self._streams.values())

    def _finish(self, slot: tuple[int, int]) -> str:
        s = self._streams.pop(slot, None)
        if s is None:
            return ""
        rest = s.finish()
        self._finished += s.count
        return rest

    def _stream(self, slot: tuple[int, int]) -> native.StreamRedactor:
        s = self._streams.get(slot)
        if s is None:
            s = self._streams[slot] = self._red.stream(self._modes)
        return s

    def feed(self, events: bytes) -> bytes:
        """``events``: complete SSE events (the relay's output).  Returns what to send."""
        if not events:
            return events
        out: list[bytes] = []
        for event in events.split(b"\n\n"):
            if not event:
                continue
            out.append(self._event(event))
        return b"\n\n".join(out) + b"\n\n"

    def finish(self) -> bytes:
        """Text still held (a stream that ended without ``finish_reason`` / ``[DONE]``)."""
        return self._flush_all()

    def _event(self, event: bytes) -> bytes:
        if not event.startswith(_DATA):
            return event
        payload = event[len(_DATA) :]
        if payload.strip() == _DONE:
            flushed = self._flush_all()
            return flushed + event if flushed else event
        if b'"content"' not in payload and b'"arguments"' not in payload:
            return event
        try:
            data = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return event
        if not isinstance(data, dict) or not self._rewrite(data):
            return event
        return _DATA + orjson.dumps(data)

    def _rewrite(self, data: dict[str, Any]) -> bool:
        changed = False
        choices = data.get("choices")
        for choice in choices if isinstance(choices, list) else ():
            if not isinstance(choice, dict):
                continue
            index = choice.get("index", 0)
            index = index if isinstance(index, int) else 0
            delta = choice.get("delta")
            if not isinstance(delta, dict):
                continue
            final = choice.get("finish_reason") is not None
            content = delta.get("content")
            if isinstance(content, str) or (final and (index, -1) in self._streams):
                s = self._stream((index, -1))
                text = s.feed(content) if isinstance(content, str) else ""
                if final:
                    text += self._finish((index, -1))
                if text != content:
                    delta["content"] = text
                    changed = True
            calls = delta.get("tool_calls")
            for call in calls if isinstance(calls, list) else ():
                fn = call.get("function") if isinstance(call, dict) else None
                if isinstance(fn, dict) and isinstance(fn.get("arguments"), str):
                    slot = (
                        index,
                        call.get("index", 0) if isinstance(call.get("index"), int) else 0,
                    )
                    s = self._stream(slot)
                    text = s.feed(fn["arguments"])
                    if text != fn["arguments"]:
                        fn["arguments"] = text
                        changed = True
            if final:
                for slot in [k for k in self._streams if k[0] == index and k[1] >= 0]:
                    rest = self._finish(slot)
                    if rest:
                        delta.setdefault("tool_calls", []).append(
                            {"index": slot[1], "function": {"arguments": rest}}
                        )
                        changed = True
        return changed

    def _flush_all(self) -> bytes:
        out = b""
        for index, call in list(self._streams):
            rest = self._finish((index, call))
            if not rest:
                continue
            delta: dict[str, Any] = (
                {"content": rest}
                if call < 0
                else {"tool_calls": [{"index": call, "function": {"arguments": rest}}]}
            )
            chunk = {
                "object": "chat.completion.chunk",
                "choices": [{"index": index, "delta": delta, "finish_reason": None}],
            }
            out += _DATA + orjson.dumps(chunk) + b"\n\n"
        return out
