"""The ``anthropic`` adapter: OpenAI chat in, Anthropic Messages API out, and back.

Config: ``base_url`` (default ``https://api.anthropic.com``), ``api_key`` (sent as
``x-api-key``), and ``options``: ``anthropic_version`` (default ``2023-06-01``),
``beta`` (an ``anthropic-beta`` header value), ``default_max_tokens`` (Anthropic requires
``max_tokens``; default 4096) and ``drop_unsupported`` (drop chat parameters Anthropic
cannot honour instead of answering 400).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from tollhouse.config import ProviderConfig
from tollhouse.errors import ConfigError, InvalidRequest
from tollhouse.providers._anthropic_format import (
    DEFAULT_MAX_TOKENS,
    anthropic_to_chat,
    chat_to_anthropic,
)
from tollhouse.providers._anthropic_stream import AnthropicToChat
from tollhouse.providers._chat_shape import now
from tollhouse.providers._http1 import encode_headers
from tollhouse.providers._translated import (
    TranslatingProvider,
    include_usage,
    option_str,
    upstream_model,
)
from tollhouse.providers.base import Call, Reply

ANTHROPIC_BASE_URL = "https://api.anthropic.com"
ANTHROPIC_VERSION = "2023-06-01"


class AnthropicProvider(TranslatingProvider):
    kind = "anthropic"
    options = ("drop_unsupported", "anthropic_version", "beta", "default_max_tokens")

    def __init__(self, config: ProviderConfig) -> None:
        super().__init__(config)
        base = config.base_url or ANTHROPIC_BASE_URL
        self._url = f"{base}/messages" if base.endswith("/v1") else f"{base}/v1/messages"
        headers = {
            "content-type": "application/json",
            "anthropic-version": option_str(config, "anthropic_version", ANTHROPIC_VERSION),
        }
        if "beta" in config.options:
            headers["anthropic-beta"] = option_str(config, "beta", "")
        if config.api_key is not None:
            headers["x-api-key"] = config.api_key.get()
        self._headers = encode_headers(headers)
        max_tokens = config.options.get("default_max_tokens", DEFAULT_MAX_TOKENS)
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
            raise ConfigError(
                f"providers.{config.name}.options.default_max_tokens: expected an integer >= 1"
            )
        self.default_max_tokens = max_tokens

    def request(self, call: Call) -> tuple[str, dict[str, Any]]:
        body = chat_to_anthropic(
            call.body,
            model=upstream_model(call),
            default_max_tokens=self.default_max_tokens,
            drop_unsupported=self.drop_unsupported,
        )
        return upstream_model(call), body

    async def chat(self, call: Call) -> Reply:
        model, body = self.request(call)
        body.pop("stream", None)
        data = await self.post_json(self._url, body)
        return self.reply(anthropic_to_chat(data, created=now(), model=model))

    async def chat_stream(self, call: Call) -> AsyncIterator[bytes]:
        model, body = self.request(call)
        body["stream"] = True
        resp = await self.post(self._url, body)
        t = AnthropicToChat(created=now(), model=model, include_usage=include_usage(call))
        return self.relay(resp, t.feed, lambda: [], lambda: t.finished)

    async def messages(self, body: dict[str, Any]) -> dict[str, Any]:
        """A Messages request as is (``POST /v1/messages`` to an Anthropic model)."""
        return await self.post_json(self._url, body)

    async def messages_stream(self, body: dict[str, Any]) -> AsyncIterator[bytes]:
        """A streamed Messages request; the upstream's SSE bytes untouched."""
        resp = await self.post(self._url, body)
        return self.relay_raw(resp)

    async def embeddings(self, call: Call) -> Reply:
        raise InvalidRequest(f"provider {self.name!r} (anthropic) offers no embeddings")
