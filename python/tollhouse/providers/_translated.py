"""Plumbing shared by adapters whose upstream does not speak OpenAI (Anthropic, Gemini).

The pipeline hands them an OpenAI chat ``Call`` and expects OpenAI bytes back: a chat
completion for ``chat``, OpenAI SSE frames ending in ``data: [DONE]`` for
``chat_stream``.  The translation happens here, one upstream read at a time, so a
translated stream is relayed as it arrives, never buffered whole.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson

from tollhouse.config import ProviderConfig
from tollhouse.errors import ConfigError, ProviderError
from tollhouse.providers._http1 import Response
from tollhouse.providers._sse import DONE_FRAME, SSEEvent, SSEParser
from tollhouse.providers.base import Call, HTTPProvider, Reply, parse_json_object

# (event name, parsed data) -> OpenAI chunks; raises ProviderError on an upstream error event
ChunkFn = Callable[[str, dict[str, Any]], list[dict[str, Any]]]


def option_bool(config: ProviderConfig, key: str, default: bool = False) -> bool:
    value = config.options.get(key, default)
    if not isinstance(value, bool):
        raise ConfigError(f"providers.{config.name}.options.{key}: expected true or false")
    return value


def option_str(config: ProviderConfig, key: str, default: str) -> str:
    value = config.options.get(key, default)
    if not isinstance(value, str) or not value:
        raise ConfigError(f"providers.{config.name}.options.{key}: expected a non-empty string")
    return value


def check_options(config: ProviderConfig, allowed: tuple[str, ...]) -> None:
    """A typo in ``options`` is a start-up error, not a silently ignored setting."""
    for key in config.options:
        if key not in allowed:
            raise ConfigError(
                f"providers.{config.name}.options.{key}: unknown option for kind "
                f"{config.kind} (expected one of: {', '.join(allowed)})"
            )


def upstream_model(call: Call) -> str:
    model = call.body.get("model")
    return model if isinstance(model, str) and model else call.model


def include_usage(call: Call) -> bool:
    opts = call.body.get("stream_options")
    return isinstance(opts, dict) and opts.get("include_usage") is True


class TranslatingProvider(HTTPProvider):
    """The pooled upstream client plus JSON/SSE helpers; subclasses translate."""

    options: tuple[str, ...] = ("drop_unsupported",)

    def __init__(self, config: ProviderConfig) -> None:
        super().__init__(config)
        check_options(config, self.options)
        self.drop_unsupported = option_bool(config, "drop_unsupported")

    async def post(self, url: str, payload: dict[str, Any]) -> Response:
        return await self.send(url, orjson.dumps(payload))

    async def post_json(self, url: str, payload: dict[str, Any]) -> dict[str, Any]:
        data = parse_json_object(await self.read(await self.post(url, payload)))
        if data is None:
            raise ProviderError(f"provider {self.name!r} answered with a body that is not JSON")
        return data

    @staticmethod
    def reply(data: dict[str, Any]) -> Reply:
        return Reply(orjson.dumps(data), data)

    async def relay(
        self,
        resp: Response,
        translate: ChunkFn,
        finish: Callable[[], list[dict[str, Any]]],
        finished: Callable[[], bool],
    ) -> AsyncIterator[bytes]:
        """Upstream SSE -> OpenAI SSE frames, one yield per upstream read."""
        parser = SSEParser()
        pieces = self.relay_raw(resp)
        try:
            async for piece in pieces:
                frames = self._frames(parser.feed(piece), translate)
                if frames:
                    yield frames
            tail = self._frames(parser.close(), translate)
            if not finished():
                raise ProviderError(f"provider {self.name!r} ended the stream early")
            yield tail + b"".join(_frame(c) for c in finish()) + DONE_FRAME
        finally:
            await pieces.aclose()  # drops the connection of an unfinished upstream answer

    def _frames(self, events: list[SSEEvent], translate: ChunkFn) -> bytes:
        out: list[bytes] = []
        for ev in events:
            if not ev.data or ev.data == "[DONE]":
                continue
            try:
                data = orjson.loads(ev.data)
            except orjson.JSONDecodeError:
                raise ProviderError(
                    f"provider {self.name!r} sent a stream event that is not JSON"
                ) from None
            if isinstance(data, dict):
                out.extend(_frame(c) for c in translate(ev.event, data))
        return b"".join(out)


def _frame(chunk: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(chunk) + b"\n\n"
