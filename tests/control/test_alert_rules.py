"""Delivery targets and alert rules: CRUD, 422 per field, roles, filters, sort, pages."""

from __future__ import annotations

import httpx
import pytest

RULE = {
    "name": "High Latency",
    "condition": {"metric": "latency", "threshold_ms": 3000, "window_seconds": 300},
    "severity": "high",
}


async def make_key(client: httpx.AsyncClient, admin: dict[str, str], role: str) -> dict[str, str]:
    r = await client.post(
        "/v1/workspaces/default/api-keys", json={"name": role, "role": role}, headers=admin
    )
    return {"Authorization": f"Bearer {r.json()['key']}"}


async def test_delivery_and_rule_crud(client: httpx.AsyncClient, admin: dict[str, str]) -> None:
    base = "/v1/workspaces/default"
    r = await client.post(
        f"{base}/deliveries",
        json={
            "name": "Slack DevOps",
            "type": "slack",
            "config": {"webhook_url": "https://hooks.slack.com/x", "channel": "#ai-ops"},
            "default_severity": "medium",
        },
        headers=admin,
    )
    assert r.status_code == 201, r.text
    slack = r.json()["data"]["id"]
    r = await client.post(
        f"{base}/deliveries",
        json={
            "name": "hook",
            "type": "webhook",
            "config": {"url": "http://h.io/a", "secret": "s3"},
        },
        headers=admin,
    )
    hook = r.json()["data"]
    assert hook["config"]["secret"] == "********" and "s3" not in r.text
    r = await client.post(
        f"{base}/alert-rules", json={**RULE, "delivery_targets": [slack, hook["id"]]}, headers=admin
    )
    assert r.status_code == 201, r.text
    rule = r.json()["data"]
    assert rule["condition"] == RULE["condition"] and rule["enabled"] is True
    rid = rule["id"]
    assert (await client.get(f"{base}/alert-rules/{rid}", headers=admin)).json()["data"] == rule
    changed = {**RULE, "condition": {"metric": "error_rate", "threshold": 0.1}, "severity": "low"}
    r = await client.put(f"{base}/alert-rules/{rid}", json=changed, headers=admin)
    assert r.json()["data"]["condition"] == {
        "metric": "error_rate",
        "threshold": 0.1,
        "window_seconds": 300,
    }
    assert r.json()["data"]["delivery_targets"] == []
    assert (await client.delete(f"{base}/alert-rules/{rid}", headers=admin)).status_code == 200
    assert (await client.get(f"{base}/alert-rules/{rid}", headers=admin)).status_code == 404
    assert (await client.delete(f"{base}/alert-rules/{rid}", headers=admin)).status_code == 404
    assert (
        await client.put(f"{base}/alert-rules/{rid}", json=RULE, headers=admin)
    ).status_code == 404


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({}, {"name", "condition"}),
        (
            {**RULE, "condition": {"metric": "latency", "threshold": 5}},
            {"condition.threshold", "condition.threshold_ms"},
        ),
        ({**RULE, "condition": {"metric": "speed", "threshold": 1}}, {"condition.metric"}),
        ({**RULE, "condition": {"metric": "cost", "threshold": -1}}, {"condition.threshold"}),
        ({**RULE, "condition": {"metric": "error_rate", "threshold": 2}}, {"condition.threshold"}),
        (
            {**RULE, "condition": {"metric": "tokens", "threshold": 1, "window_seconds": 1}},
            {"condition.window_seconds"},
        ),
        ({**RULE, "condition": "fast"}, {"condition"}),
        ({**RULE, "severity": "urgent"}, {"severity"}),
        ({**RULE, "delivery_targets": ["dlv_nope"]}, {"delivery_targets"}),
        ({**RULE, "delivery_targets": "all"}, {"delivery_targets"}),
        ({**RULE, "enabled": "yes", "extra": 1}, {"enabled", "extra"}),
    ],
)
async def test_rule_422(
    client: httpx.AsyncClient, admin: dict[str, str], body: dict[str, object], fields: set[str]
) -> None:
    r = await client.post("/v1/workspaces/default/alert-rules", json=body, headers=admin)
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "validation_error"
    assert set(r.json()["error"]["fields"]) == fields


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({}, {"name", "type", "config"}),
        ({"name": "x", "type": "sms", "config": {}}, {"type"}),
        ({"name": "x", "type": "webhook", "config": {"url": "ftp://x"}}, {"config.url"}),
        ({"name": "x", "type": "slack", "config": {}}, {"config.webhook_url"}),
        ({"name": "x", "type": "email", "config": {"to": [], "smtp_host": "h"}}, {"config.to"}),
        (
            {
                "name": "x",
                "type": "email",
                "config": {"to": ["a@b.c"], "smtp_host": "h", "smtp_port": 0},
            },
            {"config.smtp_port"},
        ),
        (
            {"name": "x", "type": "webhook", "config": {"url": "http://h", "bogus": 1}},
            {"config.bogus"},
        ),
        ({"name": "x", "type": "webhook", "config": []}, {"config"}),
    ],
)
async def test_delivery_422(
    client: httpx.AsyncClient, admin: dict[str, str], body: dict[str, object], fields: set[str]
) -> None:
    r = await client.post("/v1/workspaces/default/deliveries", json=body, headers=admin)
    assert r.status_code == 422
    assert set(r.json()["error"]["fields"]) == fields


async def test_roles(client: httpx.AsyncClient, admin: dict[str, str]) -> None:
    viewer, member = (
        await make_key(client, admin, "viewer"),
        await make_key(client, admin, "member"),
    )
    url = "/v1/workspaces/default/alert-rules"
    assert (await client.post(url, json=RULE, headers=viewer)).status_code == 403
    r = await client.post(url, json=RULE, headers=member)
    assert r.status_code == 201
    rid = r.json()["data"]["id"]
    assert (await client.get(url, headers=viewer)).json()["total"] == 1
    assert (await client.delete(f"{url}/{rid}", headers=viewer)).status_code == 403
    assert (await client.put(f"{url}/{rid}", json=RULE, headers=viewer)).status_code == 403
    assert (await client.get(url)).status_code == 401
    ws = (await client.post("/v1/workspaces", json={"name": "B"}, headers=admin)).json()["data"][
        "id"
    ]
    assert (await client.get(f"/v1/workspaces/{ws}/alert-rules", headers=member)).status_code == 403
    assert (await client.get("/v1/workspaces/nope/alert-rules", headers=admin)).status_code == 404


async def test_filters_sort_pages(client: httpx.AsyncClient, admin: dict[str, str]) -> None:
    url = "/v1/workspaces/default/alert-rules"
    severities = ["low", "critical", "medium", "high"] * 8
    for i, sev in enumerate(severities):
        body = {**RULE, "name": f"r{i:02d}", "severity": sev, "enabled": i % 2 == 0}
        assert (await client.post(url, json=body, headers=admin)).status_code == 201
    r = await client.get(f"{url}?severity=critical", headers=admin)
    assert r.json()["total"] == 8 and {x["severity"] for x in r.json()["data"]} == {"critical"}
    r = await client.get(f"{url}?enabled=false&limit=100", headers=admin)
    assert r.json()["total"] == 16
    r = await client.get(f"{url}?sort=severity:desc&limit=100", headers=admin)
    assert [x["severity"] for x in r.json()["data"]][:8] == ["critical"] * 8
    assert r.json()["data"][-1]["severity"] == "low"
    r = await client.get(f"{url}?sort=name:desc", headers=admin)
    assert r.json()["data"][0]["name"] == "r31" and len(r.json()["data"]) == 25
    assert 'rel="next"' in r.headers["link"]
    r = await client.get(f"{url}?sort=name:desc&page=2", headers=admin)
    assert [x["name"] for x in r.json()["data"]] == [f"r{i:02d}" for i in range(6, -1, -1)]
    for query in ("sort=bogus:asc", "sort=name:up", "page=0", "limit=500"):
        assert (await client.get(f"{url}?{query}", headers=admin)).status_code == 422, query
