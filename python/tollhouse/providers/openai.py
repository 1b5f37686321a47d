"""OpenAI and OpenAI-compatible upstreams (``openai``, ``openai_compatible``).

The client's body goes out byte for byte unless the pipeline changed a field (upstream
model name, ``stream_options``); answers come back byte for byte.  One pooled HTTP/1.1
client (``_http1``) per provider, opened inside the serving loop.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from tollhouse.config import ProviderConfig
from tollhouse.providers._http1 import encode_headers
from tollhouse.providers.base import Call, HTTPProvider, Reply

OPENAI_BASE_URL = "https://api.openai.com/v1"


class OpenAIProvider(HTTPProvider):
    kind = "openai"

    def __init__(self, config: ProviderConfig) -> None:
        super().__init__(config)
        self.kind = config.kind
        base = config.base_url or OPENAI_BASE_URL
        self._chat_url = f"{base}/chat/completions"
        self._embeddings_url = f"{base}/embeddings"
        native = self.kind == "openai" or config.options.get("responses_api") is True
        self._responses_url = f"{base}/responses" if native else None
        headers = {"Content-Type": "application/json"}
        if config.api_key is not None:
            headers["Authorization"] = f"Bearer {config.api_key.get()}"
        organization = config.options.get("organization")
        if isinstance(organization, str):
            headers["OpenAI-Organization"] = organization
        self._headers = encode_headers(headers)

    @property
    def has_key(self) -> bool:
        # A local OpenAI-compatible server may need no key; api.openai.com always does.
        return self.config.api_key is not None or self.kind == "openai_compatible"

    def responses_url(self) -> str | None:
        """The upstream's own Responses API address (``openai``, or ``openai_compatible``
        with ``options.responses_api: true``), or None when it serves chat only."""
        return self._responses_url

    async def chat(self, call: Call) -> Reply:
        return await self.forward(self._chat_url, call)

    async def embeddings(self, call: Call) -> Reply:
        return await self.forward(self._embeddings_url, call)

    async def chat_stream(self, call: Call) -> AsyncIterator[bytes]:
        return await self.forward_stream(self._chat_url, call)
