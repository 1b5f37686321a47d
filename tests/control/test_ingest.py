"""Ingestion with Idempotency-Key: exactly once, replays answer the first answer, a
different body under the same key is 409, concurrent replays on both backends."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from tests.control._app import client_for, start_gw, stop_gw

from tollhouse.store import SqlStore

RUNTIME = {"route_id": "prod-chat", "event_id": "e1", "timestamp": "2026-11-23T10:00:00Z"}
CHANGE = {"provider": "openai", "change_id": "c1", "classification": "deprecation"}


async def count(store: SqlStore) -> int:
    rows = await store._fetch("SELECT COUNT(*) FROM ingest_events")
    return int(rows[0][0])


@pytest.fixture(params=["sqlite", "postgres"])
async def both(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[SqlStore, httpx.AsyncClient]]:
    url = (
        f"sqlite:///{tmp_path}/i.db"
        if request.param == "sqlite"
        else request.getfixturevalue("postgres_url")
    )
    gw = await start_gw(url)
    try:
        async with client_for(gw) as c:
            yield gw.store, c
    finally:
        await stop_gw(gw)


async def test_exactly_once_under_concurrent_replays(
    both: tuple[SqlStore, httpx.AsyncClient], admin: dict[str, str]
) -> None:
    store, client = both
    headers = {**admin, "Idempotency-Key": "k-1"}
    answers = await asyncio.gather(
        *(client.post("/v1/ingest/runtime", json=RUNTIME, headers=headers) for _ in range(12))
    )
    assert {r.status_code for r in answers} == {202}
    assert len({r.text for r in answers}) == 1  # every caller got the first answer
    assert sum(r.headers.get("idempotent-replayed") == "true" for r in answers) == 11
    assert await count(store) == 1
    again = await client.post("/v1/ingest/runtime", json=RUNTIME, headers=headers)
    assert again.text == answers[0].text
    # the same key with another body
    other = await client.post(
        "/v1/ingest/runtime", json={**RUNTIME, "event_id": "e2"}, headers=headers
    )
    assert other.status_code == 409 and other.json()["error"]["code"] == "conflict"
    # ... or for the other endpoint
    r = await client.post("/v1/ingest/change", json=CHANGE, headers=headers)
    assert r.status_code == 409
    r = await client.post(
        "/v1/ingest/change", json=CHANGE, headers={**admin, "Idempotency-Key": "k-2"}
    )
    assert r.status_code == 202 and r.json()["data"]["change_id"] == "c1"
    assert await count(store) == 2


async def test_422_and_auth(client: httpx.AsyncClient, admin: dict[str, str]) -> None:
    r = await client.post("/v1/ingest/runtime", json=RUNTIME, headers=admin)
    assert r.status_code == 422 and "Idempotency-Key" in r.json()["error"]["fields"]
    h = {**admin, "Idempotency-Key": "x"}
    for body, fields in (
        ({}, {"route_id", "event_id", "timestamp"}),
        ({**RUNTIME, "timestamp": "noon"}, {"timestamp"}),
        ({**RUNTIME, "latency_ms": -1, "bogus": 1}, {"latency_ms", "bogus"}),
        ({**RUNTIME, "attributes": []}, {"attributes"}),
    ):
        r = await client.post("/v1/ingest/runtime", json=body, headers=h)
        assert r.status_code == 422 and set(r.json()["error"]["fields"]) == fields, body
    r = await client.post("/v1/ingest/change", json={"provider": "p"}, headers=h)
    assert set(r.json()["error"]["fields"]) == {"change_id", "classification"}
    assert (
        await client.post("/v1/ingest/runtime", json=RUNTIME, headers={"Idempotency-Key": "x"})
    ).status_code == 401
    viewer = (
        await client.post(
            "/v1/workspaces/default/api-keys", json={"name": "v", "role": "viewer"}, headers=admin
        )
    ).json()["key"]
    r = await client.post(
        "/v1/ingest/runtime",
        json=RUNTIME,
        headers={"Authorization": f"Bearer {viewer}", "Idempotency-Key": "y"},
    )
    assert r.status_code == 403
