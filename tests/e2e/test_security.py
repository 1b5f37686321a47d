"""The security stages through the whole data plane, upstream on 127.0.0.1 recording
what it received: no labelled secret reaches it, policies block or warn, presets."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from tests.support.gateway import add_key, asgi_request, running_app, upstream_config
from tests.support.receiver import Receiver
from tests.support.upstream import Upstream

from tollhouse.app import App

CORPUS = Path(__file__).parents[1] / "data" / "redaction_corpus.jsonl"
POLICIES = [
    {"id": "falcon", "keywords": ["project falcon"]},
    {"id": "pw", "action": "warn", "regex": [r"\bpassword\b"]},
]


def corpus(kind: str) -> list[dict[str, Any]]:
    return [r for r in map(json.loads, CORPUS.read_text().splitlines()) if r["kind"] == kind]


class Env:
    def __init__(self, app: App, store: str, upstream: Upstream, rx: Receiver) -> None:
        self.app, self.store, self.upstream, self.rx = app, store, upstream, rx
        self.keys: dict[str, str] = {}

    async def post(
        self,
        body: dict[str, Any],
        key: str = "standard",
        path: str = "/v1/chat/completions",
        session: str | None = None,
    ) -> tuple[int, dict[str, str], Any]:
        headers = [
            ("authorization", f"Bearer {self.keys[key]}"),
            ("content-type", "application/json"),
        ]
        if session is not None:
            headers.append(("x-gate-session-id", session))
        status, out, raw = await asgi_request(
            self.app, "POST", path, body=orjson.dumps(body), headers=headers
        )
        return status, out, orjson.loads(raw) if raw else None


@pytest.fixture
async def env(tmp_path: Path, upstream: Upstream) -> AsyncIterator[Env]:
    async with Receiver() as rx:
        data = upstream_config(
            tmp_path,
            upstream.url,
            policies=POLICIES,
            sessions={"max_requests": 4, "loop": {"window_s": 60, "max_repeats": 2}},
            webhooks={
                "endpoints": [{"url": rx.url, "secret": "whsec_dGVzdC1zZWNyZXQtdmFsdWU="}],
                "allow_private": ["127.0.0.0/8"],
            },
        )
        store = data["store"]
        keys = {
            "standard": await add_key(store, "sec"),
            "relaxed": await add_key(store, "sec", preset="relaxed"),
            "blocker": await add_key(store, "sec", redaction={"OPENAI_KEY": "block"}),
            "strict": await add_key(store, "sec", preset="strict"),
        }
        async with running_app(data) as app:
            e = Env(app, store, upstream, rx)
            e.keys.update(keys)
            yield e


def chat(*contents: Any) -> dict[str, Any]:
    return {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": c} for c in contents]}


def received_text(upstream: Upstream, since: int) -> str:
    return "\n".join(
        json.dumps(r.json, ensure_ascii=False) + "\n" + "\n".join(_strings(r.json))
        for r in upstream.requests[since:]
    )


def _strings(node: Any) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [s for v in node.values() for s in _strings(v)]
    if isinstance(node, list):
        return [s for v in node for s in _strings(v)]
    return []


async def test_no_corpus_positive_reaches_the_upstream(env: Env) -> None:
    since = len(env.upstream.requests)
    rows = corpus("positive") + corpus("evasion")
    secrets: list[str] = []
    expected = 0
    for i in range(0, len(rows), 200):
        batch = rows[i : i + 200]
        status, headers, body = await env.post(chat(*(r["text"] for r in batch)))
        assert status == 200, body
        expected = sum(len(r["spans"]) for r in batch)
        assert int(headers["x-gate-redacted"]) >= expected
        secrets += [r["text"][s:e] for r in batch for s, e, _ in r["spans"]]
    for row in corpus("parts"):  # secrets split over content parts of one message
        parts = [{"type": "text", "text": p} for p in row["parts"]]
        status, headers, _ = await env.post(chat(parts))
        assert status == 200 and int(headers["x-gate-redacted"]) >= 1
        secrets.append(row["secret"])
    seen = received_text(env.upstream, since)
    leaked = [s for s in secrets if s in seen]
    assert not leaked, leaked[:5]
    assert len(env.upstream.requests) - since == -(-len(rows) // 200) + len(corpus("parts"))


async def test_clean_request_goes_byte_for_byte(env: Env) -> None:
    body = chat("what is 2 + 2? uuid 123e4567-e89b-12d3-a456-426614174000")
    since = len(env.upstream.requests)
    status, headers, _ = await env.post(body)
    assert status == 200 and "x-gate-redacted" not in headers
    assert env.upstream.requests[since].body == orjson.dumps(body)


async def test_tool_calls_and_results_and_other_dialects(env: Env) -> None:
    key = "sk-proj-" + "Zx9Yw8Vu7Ts6Rq5Po4Nm" * 2
    body = {
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "user", "content": "pay"},
            {
                "role": "assistant",
                "tool_calls": [
                    {
                        "id": "c1",
                        "type": "function",
                        "function": {"name": "pay", "arguments": '{"card":"4111111111111111"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": f"used {key}"},
        ],
    }
    since = len(env.upstream.requests)
    status, headers, _ = await env.post(body)
    assert status == 200 and headers["x-gate-redacted"] == "2"
    messages = {
        "model": "gpt-4o-mini",
        "max_tokens": 50,
        "system": "admin is jane.doe@example.com",
        "messages": [{"role": "user", "content": [{"type": "text", "text": f"key {key}"}]}],
    }
    status, headers, _ = await env.post(messages, path="/v1/messages")
    assert status == 200 and headers["x-gate-redacted"] == "2"
    responses = {
        "model": "gpt-4o-mini",
        "instructions": "hi",
        "input": f"card 4111111111111111 {key}",
    }
    status, headers, _ = await env.post(responses, path="/v1/responses")
    assert status == 200 and headers["x-gate-redacted"] == "2"
    seen = received_text(env.upstream, since)
    assert key not in seen and "4111111111111111" not in seen and "jane.doe@" not in seen


async def test_presets_and_block_mode(env: Env) -> None:
    key = "sk-proj-" + "Ab1Cd2Ef3Gh4Ij5Kl6Mn" * 2
    since = len(env.upstream.requests)
    status, headers, _ = await env.post(chat(f"mail a.b@example.com {key}"), key="relaxed")
    assert status == 200 and headers["x-gate-redacted"] == "1"
    assert key in received_text(env.upstream, since)  # relaxed: personal data only
    since = len(env.upstream.requests)
    status, headers, body = await env.post(chat(f"here {key}"), key="blocker")
    assert status == 403 and body["error"]["code"] == "policy_blocked"
    assert headers["x-gate-policy-blocked"] == "true" and key not in json.dumps(body)
    assert len(env.upstream.requests) == since


async def test_policy_block_and_warn(env: Env) -> None:
    since = len(env.upstream.requests)
    status, headers, body = await env.post(chat("Tell me about PROJECT FALCON"))
    assert status == 403 and body["error"]["code"] == "policy_blocked"
    assert headers["x-gate-policy-blocked"] == "true" and "falcon" in body["error"]["message"]
    assert len(env.upstream.requests) == since
    status, headers, _ = await env.post(chat("what is a good password policy?"))
    assert status == 200 and headers["x-gate-policy-warn"] == "pw"
    got = await env.rx.wait_for(2)
    events = [orjson.loads(r.body) for r in got]
    blocked = [e for e in events if e["data"].get("blocked")]
    assert blocked[0]["event"] == "policy.blocked" and blocked[0]["data"]["ruleId"] == "falcon"
    assert blocked[0]["keyName"] == "sec"
    assert all("PROJECT FALCON" not in r.body.decode() for r in got)  # never the prompt text
    status, _, _ = await env.post(chat("project falcon"), key="relaxed")  # relaxed: no policies
    assert status == 200


async def test_session_breaker_parallel_requests_trip_once(env: Env) -> None:
    since = len(env.upstream.requests)
    results = await asyncio.gather(
        *(env.post(chat(f"step {i} of a plan {'x' * i}"), session="agent-1") for i in range(10))
    )
    statuses = sorted(r[0] for r in results)
    assert statuses == [200] * 4 + [429] * 6
    killed = [r for r in results if r[0] == 429]
    assert all(r[2]["error"]["code"] == "session_killed" for r in killed)
    assert all(r[1]["x-gate-session-killed"] == "true" for r in killed)
    assert len(env.upstream.requests) - since == 4
    status, _, body = await env.post(chat("anything"), session="agent-1")
    assert status == 429 and body["error"]["code"] == "session_killed"
    got = await env.rx.wait_for(1)
    await asyncio.sleep(0.3)  # a second event would have arrived by now
    events = [orjson.loads(r.body) for r in env.rx.requests]
    assert [e["event"] for e in events] == ["session.killed"]
    assert events[0]["data"]["sessionId"] == "agent-1" and got
    status, _, _ = await env.post(chat("fresh"), session="agent-2")
    assert status == 200  # another session is unaffected


async def test_loop_detection_by_body_session_id(env: Env) -> None:
    for i in range(2):
        body = {**chat(f"Fetch page {i}  again"), "session_id": "looper"}
        status, _, _ = await env.post(body)
        assert status == 200
    status, headers, body = await env.post({**chat("fetch PAGE 7 again"), "session_id": "looper"})
    assert status == 429 and body["error"]["code"] == "session_killed"
    assert headers["x-gate-session-killed"] == "true"
    got = await env.rx.wait_for(1)
    assert orjson.loads(got[0].body)["event"] == "loop.detected"


async def test_strict_preset_scans_responses_stream_and_not(env: Env) -> None:
    secret = "sk-proj-" + "Lo9Ki8Ju7Hy6Gt5Fr4De" * 2
    reply = f"Your key is {secret} and the admin is root@example.com, done."
    env.upstream.options(reply=reply, chunks=len(reply) // 3)  # ~3 characters per chunk
    status, headers, body = await env.post(chat("hi"), key="strict")
    assert status == 200 and headers["x-gate-response-redacted"] == "2"
    content = body["choices"][0]["message"]["content"]
    assert secret not in content and "[REDACTED:OPENAI_KEY]" in content
    status, headers, body = await env.post(chat("hi"), key="standard")
    assert status == 200 and secret in body["choices"][0]["message"]["content"]
    raw_headers = [
        ("authorization", f"Bearer {env.keys['strict']}"),
        ("content-type", "application/json"),
    ]
    status, _, raw = await asgi_request(
        env.app,
        "POST",
        "/v1/chat/completions",
        body=orjson.dumps({**chat("hi"), "stream": True}),
        headers=raw_headers,
    )
    assert status == 200 and raw.rstrip().endswith(b"data: [DONE]")
    text = ""
    for ev in raw.split(b"\n\n"):
        if ev.startswith(b"data: {"):
            for choice in orjson.loads(ev[6:]).get("choices", []):
                text += choice.get("delta", {}).get("content") or ""
    assert secret not in raw.decode() and "root@example.com" not in raw.decode()
    assert text == "Your key is [REDACTED:OPENAI_KEY] and the admin is [REDACTED:EMAIL], done."
