"""Gemini ``streamGenerateContent?alt=sse`` -> OpenAI chat chunks, incrementally.

Each SSE ``data:`` is a whole ``GenerateContentResponse`` holding the next text pieces
(deltas), complete function calls, and the running ``usageMetadata`` (cumulative: the
last one wins).  Gemini sends no end marker, so the adapter calls ``finish()`` at EOF.
"""

from __future__ import annotations

from typing import Any

from tollhouse.errors import ProviderError
from tollhouse.providers._chat_shape import usage_chunk
from tollhouse.providers._gemini_format import finish_reason, function_call, gemini_usage


class GeminiToChat:
    __slots__ = (
        "id",
        "model",
        "created",
        "include_usage",
        "meta",
        "_started",
        "_calls",
        "_finished",
    )

    def __init__(self, *, id_: str, model: str, created: int, include_usage: bool = True) -> None:
        self.id = id_
        self.model = model
        self.created = created
        self.include_usage = include_usage
        self.meta: dict[str, Any] = {}
        self._started: set[int] = set()
        self._calls: dict[int, int] = {}  # candidate index -> tool calls so far
        self._finished: set[int] = set()

    def feed(self, data: dict[str, Any]) -> list[dict[str, Any]]:
        if "error" in data:
            err = data["error"] or {}
            raise ProviderError(
                f"upstream stream error: {err.get('status', '')} {err.get('message', '')}".strip()
            )
        if isinstance(data.get("usageMetadata"), dict):
            self.meta = data["usageMetadata"]
        rid = data.get("responseId") or self.id
        choices: list[dict[str, Any]] = []
        for i, cand in enumerate(data.get("candidates") or []):
            idx = cand.get("index", i)
            delta: dict[str, Any] = {}
            if idx not in self._started:
                self._started.add(idx)
                delta["role"] = "assistant"
            text: list[str] = []
            thoughts: list[str] = []
            calls: list[dict[str, Any]] = []
            for part in (cand.get("content") or {}).get("parts") or []:
                if "functionCall" in part:
                    n = self._calls.get(idx, 0)
                    self._calls[idx] = n + 1
                    calls.append({"index": n, **function_call(rid, n, part)})
                elif isinstance(part.get("text"), str):
                    (thoughts if part.get("thought") else text).append(part["text"])
            if text:
                delta["content"] = "".join(text)
            if thoughts:
                delta["reasoning"] = "".join(thoughts)
            if calls:
                delta["tool_calls"] = calls
            finish = None
            if cand.get("finishReason"):
                finish = finish_reason(cand["finishReason"], self._calls.get(idx, 0) > 0)
                self._finished.add(idx)
            if delta or finish:
                choices.append({"index": idx, "delta": delta, "finish_reason": finish})
        if (
            not choices
            and not data.get("candidates")
            and (data.get("promptFeedback") or {}).get("blockReason")
        ):
            choices.append(
                {"index": 0, "delta": {"role": "assistant"}, "finish_reason": "content_filter"}
            )
            self._finished.add(0)
        if not choices:
            return []
        return [
            {
                "id": self.id,
                "object": "chat.completion.chunk",
                "created": self.created,
                "model": self.model,
                "choices": choices,
            }
        ]

    def finish(self) -> list[dict[str, Any]]:
        """At EOF: the usage chunk (when asked for)."""
        if not self.include_usage:
            return []
        return [usage_chunk(self.id, self.model, self.created, self.chat_usage())]

    @property
    def finished(self) -> bool:
        return bool(self._finished)

    def chat_usage(self) -> dict[str, Any]:
        return gemini_usage(self.meta)
