"""The OpenAI(-compatible) adapter against a real upstream on 127.0.0.1."""

from __future__ import annotations

import asyncio

import orjson
import pytest
from tests.support.servers import free_port
from tests.support.upstream import Upstream

from tollhouse.config import ProviderConfig, Secret
from tollhouse.errors import ProviderError, UpstreamHTTPError
from tollhouse.providers import Call, build_provider

BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "odd": [1]}


def config(url: str, **kw: object) -> ProviderConfig:
    return ProviderConfig(
        name="up",
        kind="openai_compatible",
        base_url=url,
        api_key=Secret("sk-test"),
        **kw,  # type: ignore[arg-type]
    )


async def test_body_bytes_pass_through_and_key_header() -> None:
    with Upstream() as up:
        p = build_provider(config(up.url))
        await p.start()
        try:
            raw = orjson.dumps(BODY) + b"  "  # the client's exact bytes, whitespace included
            reply = await p.chat(Call(dict(BODY), raw, "gpt-4o-mini"))
            assert reply.data is not None and reply.data["object"] == "chat.completion"
            seen = up.requests[-1]
            assert seen.body == raw
            assert seen.headers["authorization"] == "Bearer sk-test"
            call = Call(dict(BODY), raw, "other")
            call.set("model", "other")
            await p.chat(call)
            assert up.requests[-1].json["model"] == "other"
            assert up.requests[-1].json["odd"] == [1]
        finally:
            await p.close()


async def test_errors_map_to_the_contract() -> None:
    with Upstream() as up:
        p = build_provider(config(up.url, read_timeout=0.3))
        await p.start()
        try:
            up.fail_next(500)
            with pytest.raises(ProviderError):
                await p.chat(Call(dict(BODY), None, "m"))
            up.fail_next(400, b'{"error": {"message": "bad"}}')
            with pytest.raises(UpstreamHTTPError) as err:
                await p.chat(Call(dict(BODY), None, "m"))
            assert err.value.upstream_status == 400
            assert err.value.upstream_body == b'{"error": {"message": "bad"}}'
            up.hang = True
            with pytest.raises(ProviderError, match="timed out"):
                await p.chat(Call(dict(BODY), None, "m"))
            assert await asyncio.to_thread(up.wait_cancelled, 2)  # the connection was dropped
        finally:
            await p.close()
    p = build_provider(config(f"http://127.0.0.1:{free_port()}/v1"))
    await p.start()
    try:
        with pytest.raises(ProviderError, match="unreachable"):
            await p.chat(Call(dict(BODY), None, "m"))
    finally:
        await p.close()


async def test_stream_relays_raw_bytes() -> None:
    with Upstream() as up:
        p = build_provider(config(up.url))
        await p.start()
        try:
            chunks = await p.chat_stream(Call({**BODY, "stream": True}, None, "m"))
            raw = b"".join([c async for c in chunks])
            assert raw.endswith(b"data: [DONE]\n\n")
            assert raw.count(b"data: ") >= 3
        finally:
            await p.close()


def test_openai_without_key_is_not_callable() -> None:
    p = build_provider(ProviderConfig(name="o", kind="openai"))
    assert not p.has_key
    assert build_provider(
        ProviderConfig(name="c", kind="openai_compatible", base_url="http://x")
    ).has_key
