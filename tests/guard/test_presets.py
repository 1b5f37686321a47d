"""Presets: ``POST /v1/presets/apply`` over a real SQLite store, and what each preset does
to a request (``POST /v1/security/evaluate`` shows it without sending anything)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from tests.support.gateway import acreate_key

from tollhouse import control
from tollhouse.config import parse_config
from tollhouse.gateway import Gateway
from tollhouse.guard.presets import PRESETS, preset_of

ADMIN = "adm_" + "pr3s3t" * 6
RAW: dict[str, str] = {}
OPENAI = "sk-proj-" + "Qw1Er2Ty3Ui4Op5As6Df" * 2


@pytest.fixture
async def gw(tmp_path: Path) -> AsyncIterator[Gateway]:
    store = f"sqlite:///{tmp_path / 'p.db'}"
    config = parse_config(
        {
            "store": store,
            "admin_key": ADMIN,
            "policies": [{"id": "falcon", "keywords": ["project falcon"]}],
            "redaction": {"modes": {"US_SSN": "block"}},
        }
    )
    for name in ("a", "b", "c"):
        RAW[name], _ = await acreate_key(store, name)
    g = Gateway.from_config(config)
    await g.start()
    try:
        yield g
    finally:
        await g.stop()


def client(gw: Gateway, token: str = ADMIN) -> httpx.AsyncClient:
    app = Starlette(routes=control.routes(gw))
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://gw",
        headers={"Authorization": f"Bearer {token}"},
    )


async def test_apply_to_named_and_all_keys(gw: Gateway) -> None:
    async with client(gw) as c:
        r = await c.post("/v1/presets/apply", json={"presetId": "strict", "keys": ["a", "zz"]})
        assert r.status_code == 200
        assert r.json() == {
            "success": False,
            "presetId": "strict",
            "applied": 1,
            "skipped": 0,
            "errors": [{"key": "zz", "error": "key not found"}],
        }
        keys = {k.name: k for k in await gw.store.all_keys()}
        assert preset_of(keys["a"]).id == "strict" and preset_of(keys["b"]).id == "standard"
        r = await c.post("/v1/presets/apply", json={"presetId": "strict"})
        assert r.json() == {
            "success": True,
            "presetId": "strict",
            "applied": 2,
            "skipped": 1,
            "errors": [],
        }
        assert all(preset_of(k).id == "strict" for k in await gw.store.all_keys())
        assert preset_of(gw.keys.authenticate(RAW["c"])).id == "strict"  # cache refreshed
        r = await c.post("/v1/presets/apply", json={"presetId": "lax"})
        assert r.status_code == 422 and r.json()["error"]["code"] == "validation_error"
        r = await c.post("/v1/presets/apply", json={"presetId": "relaxed", "keys": "a"})
        assert r.status_code == 422
        r = await c.get("/v1/presets")
        assert [p["id"] for p in r.json()["data"]] == list(PRESETS)
    async with client(gw, "gk_not_admin") as c:
        r = await c.post("/v1/presets/apply", json={"presetId": "relaxed"})
        assert r.status_code == 401


async def evaluate(gw: Gateway, body: dict[str, Any]) -> dict[str, Any]:
    async with client(gw) as c:
        r = await c.post("/v1/security/evaluate", json=body)
        assert r.status_code == 200, r.text
        out: dict[str, Any] = r.json()
        return out


async def test_evaluate_text_and_requests(gw: Gateway) -> None:
    out = await evaluate(gw, {"text": "hello there"})
    assert out == {
        "allowed": True,
        "violations": [],
        "redactions": {"count": 0, "families": []},
        "preset": "standard",
        "workspaceId": "default",  # the admin key names none
    }
    out = await evaluate(gw, {"text": f"about Project Falcon, key {OPENAI}"})
    assert out["allowed"] is False
    assert out["violations"] == [
        {"ruleId": "falcon", "action": "block", "kind": "keyword", "detail": "project falcon"}
    ]
    assert out["redactions"] == {"count": 1, "families": ["OPENAI_KEY"]}
    assert OPENAI not in str(out)
    chat = {"model": "m", "messages": [{"role": "user", "content": "ssn 123-45-6789"}]}
    out = await evaluate(gw, chat)
    assert out["allowed"] is False and out["violations"][0]["detail"] == "US_SSN"
    out = await evaluate(gw, {"text": f"project falcon {OPENAI}", "preset": "relaxed"})
    assert out["allowed"] is True and out["redactions"]["count"] == 0  # no policies, PII only
    async with client(gw) as c:
        r = await c.post("/v1/security/evaluate", json={"text": 3})
        assert r.status_code == 422
        r = await c.post("/v1/security/evaluate", json={"nothing": 1})
        assert r.status_code == 422
        r = await c.post("/v1/security/evaluate", content=b"{not json")
        assert r.status_code == 400
    async with client(gw, "gk_nope") as c:
        r = await c.post("/v1/security/evaluate", json={"text": "x"})
        assert r.status_code == 401
