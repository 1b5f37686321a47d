"""OpenAI chat chunks -> Responses API stream events, incrementally.

Event order follows OpenAI's: ``response.created``, ``response.in_progress``, then per
output item ``output_item.added`` / (``content_part.added``, ``output_text.delta``... |
``function_call_arguments.delta``...) / the matching ``.done`` events, and finally
``response.completed`` (or ``response.incomplete``) with the whole Response and usage.
"""

from __future__ import annotations

from typing import Any

from tollhouse.providers._chat_shape import first_choice
from tollhouse.providers._responses_format import (
    call_item,
    message_item,
    response_object,
    response_usage,
)

Event = tuple[str, dict[str, Any]]


class ChatToResponses:
    __slots__ = (
        "id",
        "model",
        "created",
        "request",
        "_seq",
        "_items",
        "_open",
        "_calls",
        "_finish",
        "usage",
        "_started",
        "_done",
    )

    def __init__(self, *, id_: str, model: str, created: int, request: dict[str, Any]) -> None:
        self.id = id_
        self.model = model
        self.created = created
        self.request = request
        self._seq = 0
        self._items: list[dict[str, Any]] = []  # output items in order, updated in place
        self._open: int | None = None  # output index of the item receiving deltas
        self._calls: dict[int, int] = {}  # chat tool_calls index -> output index
        self._finish: str | None = None
        self.usage: Any = None
        self._started = False
        self._done = False

    def feed(self, data: dict[str, Any]) -> list[Event]:
        out = self._start()
        if data.get("usage"):
            self.usage = data["usage"]
        for delta, finish in first_choice(data):
            if delta.get("content"):
                out += self._text(delta["content"])
            for call in delta.get("tool_calls") or []:
                out += self._call(call)
            if finish:
                self._finish = finish
        return out

    def finish(self) -> list[Event]:
        if self._done:
            return []
        self._done = True
        out = self._start() + self._close()
        body = self._response("completed", response_usage(self.usage))
        name = "response.completed" if body["status"] == "completed" else "response.incomplete"
        out.append(self._event(name, {"response": body}))
        return out

    def failed(self, message: str) -> list[Event]:
        """A terminal ``response.failed`` for an upstream error after the stream began."""
        self._done = True
        body = self._response("failed", response_usage(self.usage))
        body["error"] = {"code": "server_error", "message": message}
        return self._start() + [self._event("response.failed", {"response": body})]

    def _response(self, status: str, usage: dict[str, Any] | None) -> dict[str, Any]:
        return response_object(
            self.request,
            id_=self.id,
            model=self.model,
            created=self.created,
            status=status,
            output=self._items,
            usage=usage,
            finish=self._finish,
        )

    def _event(self, kind: str, data: dict[str, Any]) -> Event:
        data = {"type": kind, "sequence_number": self._seq, **data}
        self._seq += 1
        return kind, data

    def _start(self) -> list[Event]:
        if self._started:
            return []
        self._started = True
        body = self._response("in_progress", None)
        body["output"] = []
        return [
            self._event("response.created", {"response": body}),
            self._event("response.in_progress", {"response": body}),
        ]

    def _text(self, text: str) -> list[Event]:
        out: list[Event] = []
        if self._open is None or self._items[self._open]["type"] != "message":
            out += self._close()
            item = message_item(f"msg_{self.id}_{len(self._items)}", "", "in_progress")
            out += self._add(item, {**item, "content": []})
            part = dict(item["content"][0])
            out.append(
                self._event(
                    "response.content_part.added",
                    {**self._where(), "content_index": 0, "part": part},
                )
            )
        item = self._items[self._open]  # type: ignore[index]
        item["content"][0]["text"] += text
        out.append(
            self._event(
                "response.output_text.delta",
                {**self._where(), "content_index": 0, "delta": text, "logprobs": []},
            )
        )
        return out

    def _call(self, call: dict[str, Any]) -> list[Event]:
        out: list[Event] = []
        idx = call.get("index", 0)
        fn = call.get("function") or {}
        if idx not in self._calls:
            out += self._close()
            call_id = call.get("id") or f"call_{self.id}_{idx}"
            out += self._add(call_item(call_id, fn.get("name") or "", "", "in_progress"))
            self._calls[idx] = self._open  # type: ignore[assignment]
        pos = self._calls[idx]
        args = fn.get("arguments")
        if args:
            item = self._items[pos]
            item["arguments"] += args
            out.append(
                self._event(
                    "response.function_call_arguments.delta",
                    {"item_id": item["id"], "output_index": pos, "delta": args},
                )
            )
        return out

    def _add(self, item: dict[str, Any], shown: dict[str, Any] | None = None) -> list[Event]:
        self._items.append(item)
        self._open = len(self._items) - 1
        shown = shown if shown is not None else dict(item)
        return [
            self._event("response.output_item.added", {"output_index": self._open, "item": shown})
        ]

    def _where(self) -> dict[str, Any]:
        assert self._open is not None  # noqa: S101 - callers open an item first
        return {"item_id": self._items[self._open]["id"], "output_index": self._open}

    def _close(self) -> list[Event]:
        if self._open is None:
            return []
        pos, item = self._open, self._items[self._open]
        out: list[Event] = []
        where = self._where()
        if item["type"] == "message":
            part = item["content"][0]
            out.append(
                self._event(
                    "response.output_text.done",
                    {**where, "content_index": 0, "text": part["text"], "logprobs": []},
                )
            )
            out.append(
                self._event(
                    "response.content_part.done", {**where, "content_index": 0, "part": dict(part)}
                )
            )
        else:
            out.append(
                self._event(
                    "response.function_call_arguments.done",
                    {**where, "name": item["name"], "arguments": item["arguments"]},
                )
            )
        item["status"] = "completed"
        out.append(
            self._event("response.output_item.done", {"output_index": pos, "item": _copy(item)})
        )
        self._open = None
        return out


def _copy(item: dict[str, Any]) -> dict[str, Any]:
    out = dict(item)
    if "content" in out:
        out["content"] = [dict(p) for p in out["content"]]
    return out
