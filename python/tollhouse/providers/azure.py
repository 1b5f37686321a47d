"""The ``azure`` adapter: Azure OpenAI, which speaks OpenAI's format at other addresses.

Config: ``base_url`` (the resource, ``https://NAME.openai.azure.com``), ``api_key`` (sent
as the ``api-key`` header) and ``options``: ``api_version`` (default ``2024-10-21``; the
value ``v1`` selects the ``/openai/v1`` API, which takes the model in the body) and
``deployments`` (upstream model name -> deployment name, when they differ).  The
deployment in the URL is the deployment's ``model`` from the ``models`` section.
Bodies and answers pass through byte for byte, as for ``openai``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import quote

from tollhouse.config import ProviderConfig
from tollhouse.errors import ConfigError
from tollhouse.providers._http1 import encode_headers
from tollhouse.providers._translated import check_options, option_str, upstream_model
from tollhouse.providers.base import Call, Reply
from tollhouse.providers.openai import OpenAIProvider

AZURE_API_VERSION = "2024-10-21"


class AzureProvider(OpenAIProvider):
    kind = "azure"

    def __init__(self, config: ProviderConfig) -> None:
        check_options(config, ("api_version", "deployments"))
        super().__init__(config)
        self.kind = "azure"
        base = (config.base_url or "").removesuffix("/openai")
        self._version = option_str(config, "api_version", AZURE_API_VERSION)
        raw = config.options.get("deployments") or {}
        if not isinstance(raw, dict) or not all(
            isinstance(k, str) and isinstance(v, str) and v for k, v in raw.items()
        ):
            raise ConfigError(
                f"providers.{config.name}.options.deployments: expected a mapping of names"
            )
        self._deployments: dict[str, str] = raw
        self._base = f"{base}/openai"
        headers = {"Content-Type": "application/json"}
        if config.api_key is not None:
            headers["api-key"] = config.api_key.get()
        self._headers = encode_headers(headers)

    def url(self, call: Call, path: str) -> str:
        if self._version == "v1":
            return f"{self._base}/v1/{path}"
        model = upstream_model(call)
        deployment = quote(self._deployments.get(model, model), safe="")
        return f"{self._base}/deployments/{deployment}/{path}?api-version={self._version}"

    def responses_url(self) -> str | None:
        """The Responses API address (only the ``v1`` API serves it at a fixed path)."""
        return f"{self._base}/v1/responses" if self._version == "v1" else None

    async def chat(self, call: Call) -> Reply:
        return await self.forward(self.url(call, "chat/completions"), call)

    async def chat_stream(self, call: Call) -> AsyncIterator[bytes]:
        return await self.forward_stream(self.url(call, "chat/completions"), call)

    async def embeddings(self, call: Call) -> Reply:
        return await self.forward(self.url(call, "embeddings"), call)
