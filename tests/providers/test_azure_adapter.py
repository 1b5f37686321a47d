"""The azure adapter against a real Azure-OpenAI-shaped HTTP upstream on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from tests.providers._helpers import call, config, read_stream, text_of
from tests.providers._upstreams import KEY, Upstream, azure_upstream

from tollhouse.errors import ConfigError, ProviderError, UpstreamHTTPError
from tollhouse.providers.azure import AzureProvider


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    with azure_upstream() as up:
        yield up


async def _provider(url: str, key: str = KEY, **options: object) -> AzureProvider:
    p = AzureProvider(config("azure", url, key, **options))
    await p.start()
    return p


async def test_deployment_url_api_version_and_key_header(upstream: Upstream) -> None:
    p = await _provider(upstream.url, api_version="2024-06-01", deployments={"gpt-4o": "prod-4o"})
    try:
        reply = await p.chat(call("gpt-4o"))
        assert reply.data is not None
        assert reply.data["choices"][0]["message"]["content"] == "echo: Hello there"
        seen = upstream.last
        assert seen.path == "/openai/deployments/prod-4o/chat/completions"
        assert seen.query == {"api-version": "2024-06-01"}
        assert seen.headers["api-key"] == KEY
        assert "authorization" not in seen.headers
        emb = await p.embeddings(call("gpt-4o", input="x"))
        assert emb.data is not None and emb.data["data"][0]["embedding"] == [0.1, 0.2]
        assert upstream.last.path == "/openai/deployments/prod-4o/embeddings"
    finally:
        await p.close()


async def test_stream_passes_through(upstream: Upstream) -> None:
    p = await _provider(upstream.url + "/openai")
    try:
        c = call("my-deploy", stream=True, stream_options={"include_usage": True})
        chunks, done = await read_stream(await p.chat_stream(c))
        assert done
        assert text_of(chunks) == "echo: Hello there"
        assert chunks[-1]["usage"]["total_tokens"] == 8
        assert upstream.last.path == "/openai/deployments/my-deploy/chat/completions"
        assert upstream.last.query == {"api-version": "2024-10-21"}
    finally:
        await p.close()


async def test_v1_api(upstream: Upstream) -> None:
    p = await _provider(upstream.url, api_version="v1")
    try:
        await p.chat(call("gpt-4o"))
        assert upstream.last.path == "/openai/v1/chat/completions"
        assert upstream.last.query == {}
        assert upstream.last.body["model"] == "gpt-4o"
    finally:
        await p.close()


async def test_errors(upstream: Upstream) -> None:
    bad = await _provider(upstream.url, key="wrong")
    try:
        with pytest.raises(UpstreamHTTPError) as info:
            await bad.chat(call("d"))
        assert info.value.upstream_status == 401
    finally:
        await bad.close()
    upstream.fail_status = 500
    good = await _provider(upstream.url)
    try:
        with pytest.raises(ProviderError):
            await good.chat(call("d"))
    finally:
        await good.close()


def test_bad_options_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="deployments"):
        AzureProvider(config("azure", "http://127.0.0.1:1", KEY, deployments=["x"]))
    with pytest.raises(ConfigError, match="api_version"):
        AzureProvider(config("azure", "http://127.0.0.1:1", KEY, api_version=3))
    with pytest.raises(ConfigError, match="api_verison"):
        AzureProvider(config("azure", "http://127.0.0.1:1", KEY, api_verison="v1"))
