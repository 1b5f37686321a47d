"""``/openapi.json`` lists exactly the mounted control routes and methods."""

from __future__ import annotations

import httpx
from starlette.routing import Route
from tests.control._app import Gw

from tollhouse import control


async def test_document_matches_routes(gw: Gw, client: httpx.AsyncClient) -> None:
    r = await client.get("/openapi.json")
    assert r.status_code == 200
    doc = r.json()
    assert doc["openapi"] == "3.1.0"
    expected = {
        (route.path, m.lower())
        for route in control.routes(gw)
        if isinstance(route, Route)
        for m in (route.methods or set()) - {"HEAD"}
    }
    listed = {(path, m) for path, ops in doc["paths"].items() for m in ops}
    assert listed == expected
    assert ("/v1/audit/verify", "get") in listed
    assert ("/v1/workspaces/{id}/alert-rules/{rid}/test", "post") in listed
    op = doc["paths"]["/v1/workspaces/{id}/members/{memberId}"]["delete"]
    assert [p["name"] for p in op["parameters"]] == ["id", "memberId"]
    ids = [op["operationId"] for ops in doc["paths"].values() for op in ops.values()]
    assert len(ids) == len(set(ids))
