"""Calling an adapter directly (no gateway) and reading its OpenAI SSE output."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson

from tollhouse.config import ProviderConfig, Secret
from tollhouse.providers._sse import SSEParser
from tollhouse.providers.base import Call


def config(kind: str, url: str, key: str | None, **options: Any) -> ProviderConfig:
    return ProviderConfig(
        name=f"test-{kind}",
        kind=kind,
        base_url=url,
        api_key=Secret(key) if key else None,
        read_timeout=10.0,
        total_timeout=20.0,
        options=options,
    )


def call(model: str, **body: Any) -> Call:
    messages = body.pop("messages", [{"role": "user", "content": "Hello there"}])
    return Call(body={"model": model, "messages": messages, **body}, raw=None, model=model)


async def read_stream(stream: AsyncIterator[bytes]) -> tuple[list[dict[str, Any]], bool]:
    """(chunks, whether it ended with [DONE])."""
    parser = SSEParser()
    events = []
    async for piece in stream:
        events += parser.feed(piece)
    events += parser.close()
    done = bool(events) and events[-1].data == "[DONE]"
    return [orjson.loads(e.data) for e in events if e.data != "[DONE]"], done


def text_of(chunks: list[dict[str, Any]]) -> str:
    return "".join(
        c["choices"][0]["delta"].get("content") or "" for c in chunks if c.get("choices")
    )


def arguments_of(chunks: list[dict[str, Any]]) -> dict[int, str]:
    out: dict[int, str] = {}
    for c in chunks:
        for ch in c.get("choices") or []:
            for tc in ch["delta"].get("tool_calls") or []:
                out[tc["index"]] = out.get(tc["index"], "") + (
                    tc["function"].get("arguments") or ""
                )
    return out
