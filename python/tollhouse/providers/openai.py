"""OpenAI and OpenAI-compatible upstreams (``openai``, ``openai_compatible``).

The client's body goes out byte for byte unless the pipeline changed a field (upstream
model name, ``stream_options``); answers come back byte for byte.  One pooled HTTP/1.1
client (``_http1``) per provider, opened inside the serving loop.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from tollhouse.config import ProviderConfig
from tollhouse.errors import ProviderError
from tollhouse.providers._http1 import Client, HTTPClientError, Response, encode_headers
from tollhouse.providers.base import (
    Call,
    Provider,
    Reply,
    parse_json_object,
    raise_for_upstream,
    upstream_client,
    upstream_failure,
)

OPENAI_BASE_URL = "https://api.openai.com/v1"


class OpenAIProvider(Provider):
    kind = "openai"

    def __init__(self, config: ProviderConfig) -> None:
        super().__init__(config)
        self.kind = config.kind
        base = config.base_url or OPENAI_BASE_URL
        self._chat_url = f"{base}/chat/completions"
        self._embeddings_url = f"{base}/embeddings"
        headers = {"Content-Type": "application/json"}
        if config.api_key is not None:
            headers["Authorization"] = f"Bearer {config.api_key.get()}"
        organization = config.options.get("organization")
        if isinstance(organization, str):
            headers["OpenAI-Organization"] = organization
        self._headers = encode_headers(headers)
        self._session: Client | None = None

    @property
    def has_key(self) -> bool:
        # A local OpenAI-compatible server may need no key; api.openai.com always does.
        return self.config.api_key is not None or self.kind == "openai_compatible"

    async def start(self) -> None:
        if self._session is None:
            self._session = upstream_client(self.config)

    async def close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    def _client(self) -> Client:
        if self._session is None:
            raise ProviderError(f"provider {self.name!r} is not started")
        return self._session

    async def _post(self, url: str, call: Call) -> Response:
        try:
            resp = await self._client().request("POST", url, call.payload(), self._headers)
        except (TimeoutError, HTTPClientError) as exc:
            raise upstream_failure(self.name, exc) from None
        await raise_for_upstream(self.name, resp)
        return resp

    async def _complete(self, url: str, call: Call) -> Reply:
        resp = await self._post(url, call)
        try:
            body = await resp.read()
        except (TimeoutError, HTTPClientError) as exc:
            raise upstream_failure(self.name, exc) from None
        finally:
            resp.release()
        ctype = resp.headers.get("content-type", "application/json").encode("latin-1")
        return Reply(body, parse_json_object(body), ctype)

    async def chat(self, call: Call) -> Reply:
        return await self._complete(self._chat_url, call)

    async def embeddings(self, call: Call) -> Reply:
        return await self._complete(self._embeddings_url, call)

    async def chat_stream(self, call: Call) -> AsyncIterator[bytes]:
        resp = await self._post(self._chat_url, call)
        return self._relay(resp)

    async def _relay(self, resp: Response) -> AsyncIterator[bytes]:
        try:
            async for chunk in resp.iter_chunks():
                yield chunk
        except (TimeoutError, HTTPClientError) as exc:
            raise upstream_failure(self.name, exc) from None
        finally:
            # Releasing an unfinished stream drops the connection, so the upstream sees
            # the cancel when the client went away.
            resp.release()
