"""Streaming translation between Anthropic Messages events and OpenAI chat chunks.

Both directions are incremental state machines: each upstream event goes in, the
client-format events it completes come out, nothing is buffered beyond the open block.

``AnthropicToChat``  message_start / content_block_* / message_delta / message_stop
                     -> ``chat.completion.chunk`` dicts (adapter, outbound).
``ChatToAnthropic``  chat chunks -> ``(event_name, data)`` pairs for ``POST /v1/messages``.
"""

from __future__ import annotations

from typing import Any

from tollhouse.errors import ProviderError
from tollhouse.providers._anthropic_format import (
    CHAT_TO_STOP,
    STOP_TO_CHAT,
    anthropic_usage,
    messages_usage,
)
from tollhouse.providers._chat_shape import (
    chunk,
    first_choice,
    tool_call,
    usage_chunk,
    usage_parts,
)


class AnthropicToChat:
    """Anthropic stream events -> OpenAI chunks; usage arrives in the final usage chunk."""

    __slots__ = (
        "id",
        "model",
        "created",
        "include_usage",
        "usage",
        "_tool_index",
        "_blocks",
        "_finish",
        "_stopped",
    )

    def __init__(
        self, *, created: int, model: str | None = None, include_usage: bool = True
    ) -> None:
        self.id = ""
        self.model = model or ""
        self.created = created
        self.include_usage = include_usage
        self.usage: dict[str, Any] = {}
        self._tool_index = 0
        self._blocks: dict[int, int] = {}  # anthropic block index -> chat tool_calls index
        self._finish: str | None = None
        self._stopped = False

    def feed(self, event: str, data: dict[str, Any]) -> list[dict[str, Any]]:
        kind = data.get("type", event)
        if kind == "message_start":
            msg = data.get("message") or {}
            self.id = msg.get("id") or self.id
            self.model = self.model or msg.get("model") or ""
            self.usage = dict(msg.get("usage") or {})
            return [self._chunk({"role": "assistant", "content": ""})]
        if kind == "content_block_start":
            block = data.get("content_block") or {}
            if block.get("type") == "tool_use":
                idx = self._tool_index
                self._tool_index += 1
                self._blocks[data.get("index", 0)] = idx
                call = {"index": idx, **tool_call(block.get("id"), block.get("name"), "")}
                return [self._chunk({"tool_calls": [call]})]
            if block.get("type") == "text" and block.get("text"):
                return [self._chunk({"content": block["text"]})]
            return []
        if kind == "content_block_delta":
            delta = data.get("delta") or {}
            dkind = delta.get("type")
            if dkind == "text_delta":
                return [self._chunk({"content": delta.get("text", "")})]
            if dkind == "input_json_delta" and delta.get("partial_json"):
                idx = self._blocks.get(data.get("index", 0), 0)
                frag = {"index": idx, "function": {"arguments": delta.get("partial_json", "")}}
                return [self._chunk({"tool_calls": [frag]})]
            if dkind == "thinking_delta" and delta.get("thinking"):
                return [self._chunk({"reasoning": delta.get("thinking", "")})]
            return []
        if kind == "message_delta":
            usage = data.get("usage") or {}
            self.usage.update({k: v for k, v in usage.items() if v is not None})
            reason = (data.get("delta") or {}).get("stop_reason")
            self._finish = STOP_TO_CHAT.get(reason or "end_turn", "stop")
            return [self._chunk({}, self._finish)]
        if kind == "message_stop":
            self._stopped = True
            if not self.include_usage:
                return []
            return [usage_chunk(self.id, self.model, self.created, self.chat_usage())]
        if kind == "error":
            err = data.get("error") or {}
            raise ProviderError(
                f"upstream stream error: {err.get('type', 'error')}: {err.get('message', '')}"
            )
        return []  # ping and future event types

    def chat_usage(self) -> dict[str, Any]:
        return anthropic_usage(self.usage)

    @property
    def finished(self) -> bool:
        """Whether ``message_stop`` arrived (a stream cut before it is an upstream failure)."""
        return self._stopped

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return chunk(self.id, self.model, self.created, delta, finish)


class ChatToAnthropic:
    """OpenAI chunks -> Anthropic events; call ``finish()`` once the upstream stream ends."""

    __slots__ = ("id", "model", "_started", "_open", "_index", "_tools", "_stop", "usage", "_done")

    def __init__(self, *, id_: str, model: str) -> None:
        self.id = id_
        self.model = model
        self._started = False
        self._open: tuple[str, int] | None = None  # ("text" | "tool" | "thinking", chat tool idx)
        self._index = -1
        self._tools: dict[int, int] = {}  # chat tool_calls index -> anthropic block index
        self._stop = "end_turn"
        self.usage: dict[str, Any] | None = None
        self._done = False

    def feed(self, data: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        out = self._start()
        if data.get("usage"):
            self.usage = data["usage"]
        for delta, finish in first_choice(data):
            if delta.get("reasoning"):
                out += self._block(
                    "thinking", -1, {"type": "thinking", "thinking": "", "signature": ""}
                )
                out.append(self._delta({"type": "thinking_delta", "thinking": delta["reasoning"]}))
            if delta.get("content"):
                out += self._block("text", -1, {"type": "text", "text": ""})
                out.append(self._delta({"type": "text_delta", "text": delta["content"]}))
            for call in delta.get("tool_calls") or []:
                out += self._tool_call(call)
            if finish:
                self._stop = CHAT_TO_STOP.get(finish, "end_turn")
        return out

    def finish(self) -> list[tuple[str, dict[str, Any]]]:
        if self._done:
            return []
        self._done = True
        out = self._start() + self._close()
        usage = messages_usage(self.usage)
        out.append(
            (
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": self._stop, "stop_sequence": None},
                    "usage": usage,
                },
            )
        )
        out.append(("message_stop", {"type": "message_stop"}))
        return out

    def usage_parts(self) -> tuple[int, int, int, int, int]:
        return usage_parts(self.usage)

    def _start(self) -> list[tuple[str, dict[str, Any]]]:
        if self._started:
            return []
        self._started = True
        message: dict[str, Any] = {
            "id": self.id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 0, "output_tokens": 0},
        }
        return [("message_start", {"type": "message_start", "message": message})]

    def _tool_call(self, call: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        out: list[tuple[str, dict[str, Any]]] = []
        idx = call.get("index", 0)
        fn = call.get("function") or {}
        if idx not in self._tools:
            block: dict[str, Any] = {
                "type": "tool_use",
                "id": call.get("id") or f"toolu_{idx}",
                "name": fn.get("name") or "",
                "input": {},
            }
            out += self._block("tool", idx, block)
            self._tools[idx] = self._index
        args = fn.get("arguments")
        if args:
            frag = {"type": "input_json_delta", "partial_json": args}
            out.append(
                (
                    "content_block_delta",
                    {"type": "content_block_delta", "index": self._tools[idx], "delta": frag},
                )
            )
        return out

    def _block(
        self, kind: str, tool: int, start: dict[str, Any]
    ) -> list[tuple[str, dict[str, Any]]]:
        if self._open == (kind, tool):
            return []
        out = self._close()
        self._index += 1
        self._open = (kind, tool)
        out.append(
            (
                "content_block_start",
                {"type": "content_block_start", "index": self._index, "content_block": start},
            )
        )
        return out

    def _close(self) -> list[tuple[str, dict[str, Any]]]:
        if self._open is None:
            return []
        self._open = None
        return [("content_block_stop", {"type": "content_block_stop", "index": self._index})]

    def _delta(self, delta: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        return (
            "content_block_delta",
            {"type": "content_block_delta", "index": self._index, "delta": delta},
        )
