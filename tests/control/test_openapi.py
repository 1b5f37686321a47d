"""``/openapi.json`` lists exactly the mounted control routes, and every operation carries
the declaration (``@spec``) its validation reads."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from starlette.routing import Route
from tests.control._app import Gw

from tollhouse import control
from tollhouse.app import build_app
from tollhouse.config import parse_config
from tollhouse.control import openapi
from tollhouse.control._schema import obj, op_of, text
from tollhouse.control._validation import Body
from tollhouse.control.workspaces import BODY as WORKSPACE_BODY
from tollhouse.errors import ValidationError


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
    assert set(doc["components"]["securitySchemes"]) == {"adminKey", "workspaceKey", "virtualKey"}


def full_routes(tmp_path: Path) -> list[Route]:
    """The control routes of a gateway with every stage (limits, security, routing, SQL)."""
    config = parse_config(
        {
            "store": f"sqlite:///{tmp_path / 'openapi.db'}",
            "admin_key": "adm_" + "k" * 32,
            "providers": {"mock": {"kind": "mock"}},
            "models": {"mock-1": {"deployments": [{"provider": "mock", "model": "mock-1"}]}},
        }
    )
    routes = build_app(config).starlette.routes
    return [r for r in routes if isinstance(r, Route) and r.path != "/metrics"]


def test_every_operation_is_declared(tmp_path: Path) -> None:
    routes = full_routes(tmp_path)
    assert len(routes) > 40
    assert openapi.undeclared(list(routes)) == []
    doc = openapi.document(list(routes))
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            route = next(r for r in routes if r.path == path and method.upper() in r.methods)
            declared = op_of(route.endpoint, method)
            assert declared is not None
            if method in ("post", "put", "patch"):
                # A body schema, or NO_BODY ({}) for the calls that read none.
                assert declared.body is not None, (method, path)
            success = [code for code in op["responses"] if code.startswith("2")]
            assert len(success) == 1, (method, path)


def test_list_operations_declare_their_query(tmp_path: Path) -> None:
    doc = openapi.document(list(full_routes(tmp_path)))
    params = {
        (path, m): {p["name"] for p in op.get("parameters", ()) if p["in"] == "query"}
        for path, ops in doc["paths"].items()
        for m, op in ops.items()
    }
    assert {"page", "limit", "sort", "type", "default_severity"} <= params[
        ("/v1/workspaces/{id}/deliveries", "get")
    ]
    assert {"page", "limit", "role"} <= params[("/v1/workspaces/{id}/members", "get")]
    assert {"limit", "cursor", "from", "to", "actor", "eventType"} <= params[
        ("/v1/audit/logs", "get")
    ]
    assert {"period", "from", "to", "key"} <= params[("/v1/metering/usage", "get")]
    ingest = doc["paths"]["/v1/ingest/runtime"]["post"]
    assert {"name": "Idempotency-Key", "in": "header"}.items() <= ingest["parameters"][0].items()
    assert ingest["requestBody"]["required"] is True
    assert set(ingest["requestBody"]["content"]["application/json"]["schema"]["required"]) == {
        "route_id",
        "event_id",
        "timestamp",
    }


def test_body_reads_the_declared_schema() -> None:
    schema = obj({"name": text(10), "note": text(5, nullable=True)}, ["name"])
    body = Body({"note": "x" * 6, "extra": 1}, schema)
    assert body.text("name") is None
    assert body.text("note") is None
    with pytest.raises(ValidationError) as exc:
        body.done()
    assert exc.value.fields == {
        "extra": "unknown field",
        "name": "required",
        "note": "at most 5 characters",
    }
    ok = Body({"name": "  ws  "}, WORKSPACE_BODY)
    assert ok.text("name") == "ws"
    ok.done()
    with pytest.raises(KeyError):  # a route cannot read a field it did not declare
        ok.text("other")
