"""Locust traffic mix for Tollhouse: OpenAI-shaped requests from several virtual keys.

Run headless through ``run_locust.py`` (it starts the mock upstream, the gateway and
the keys), or by hand against a running gateway::

    TOLLHOUSE_KEYS=gk_a,gk_b TOLLHOUSE_LIMITED_KEY=gk_c \\
      locust -f benches/load/locustfile.py --headless -u 20 -r 20 -t 30s \\
      --host http://127.0.0.1:4000

The mix per user: non-stream chat (6), streamed chat (3), embeddings (1), the model
list (1), and chat from a key with a low rpm limit (1) whose 429 answers count as
expected (``rate_limited`` / ``budget_exceeded``), not as failures.  Models come from
``TOLLHOUSE_MODELS`` (comma-separated, default ``gpt-4o-mini``), the embedding model
from ``TOLLHOUSE_EMBED_MODEL`` (default ``embed``; empty to skip).
"""

from __future__ import annotations

import os
import random

import orjson
from locust import FastHttpUser, between, task

KEYS = [k for k in os.environ.get("TOLLHOUSE_KEYS", "").split(",") if k]
LIMITED_KEY = os.environ.get("TOLLHOUSE_LIMITED_KEY", "")
MODELS = [m for m in os.environ.get("TOLLHOUSE_MODELS", "gpt-4o-mini").split(",") if m]
EMBED_MODEL = os.environ.get("TOLLHOUSE_EMBED_MODEL", "embed")
WAIT = float(os.environ.get("TOLLHOUSE_WAIT", "0"))

_WORDS = (
    "gateway budget token stream latency provider model cache policy request answer "
    "summarise translate explain compare invoice weather recipe poem list table"
).split()
_EXPECTED_LIMIT_CODES = (b"rate_limited", b"budget_exceeded")


def _prompt() -> str:
    return " ".join(random.choices(_WORDS, k=random.randint(8, 40)))


def _chat_body(stream: bool) -> bytes:
    body: dict[str, object] = {
        "model": random.choice(MODELS),
        "messages": [
            {"role": "system", "content": "You are a terse assistant."},
            {"role": "user", "content": _prompt()},
        ],
        "max_tokens": random.choice((16, 64, 128)),
    }
    if stream:
        body["stream"] = True
    return orjson.dumps(body)


class GatewayUser(FastHttpUser):
    wait_time = between(0, WAIT) if WAIT > 0 else between(0, 0)

    def on_start(self) -> None:
        if not KEYS:
            raise RuntimeError("set TOLLHOUSE_KEYS to one or more virtual keys (gk_...)")
        self.key = random.choice(KEYS)

    def _headers(self, key: str | None = None) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {key or self.key}",
            "Content-Type": "application/json",
        }

    @task(6)
    def chat(self) -> None:
        self.client.post(
            "/v1/chat/completions", data=_chat_body(False), headers=self._headers(), name="chat"
        )

    @task(3)
    def chat_stream(self) -> None:
        with self.client.post(
            "/v1/chat/completions",
            data=_chat_body(True),
            headers=self._headers(),
            name="chat stream",
            catch_response=True,
        ) as resp:
            if resp.status_code != 200:
                resp.failure(f"HTTP {resp.status_code}")
            elif not (resp.content or b"").rstrip().endswith(b"data: [DONE]"):
                resp.failure("stream did not end with [DONE]")
            else:
                resp.success()

    @task(1)
    def embeddings(self) -> None:
        if not EMBED_MODEL:
            return
        body = orjson.dumps({"model": EMBED_MODEL, "input": [_prompt(), _prompt()]})
        self.client.post("/v1/embeddings", data=body, headers=self._headers(), name="embeddings")

    @task(1)
    def models(self) -> None:
        self.client.get("/v1/models", headers=self._headers(), name="models")

    @task(1)
    def limited(self) -> None:
        if not LIMITED_KEY:
            return
        with self.client.post(
            "/v1/chat/completions",
            data=_chat_body(False),
            headers=self._headers(LIMITED_KEY),
            name="chat (limited key)",
            catch_response=True,
        ) as resp:
            body = resp.content or b""
            if resp.status_code == 200:
                resp.success()
            elif resp.status_code == 429 and any(c in body for c in _EXPECTED_LIMIT_CODES):
                resp.success()  # the limit doing its job
            else:
                resp.failure(f"HTTP {resp.status_code}")
