"""``GET /openapi.json``: an OpenAPI 3.1 document built from the mounted control routes.

Paths, methods and path parameters come from the routes themselves; request bodies,
query and header parameters and success answers from each endpoint's ``@spec``
declaration (``_schema.py``), the same declaration its validation reads.
"""

from __future__ import annotations

import re
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from tollhouse.control._http import json_response
from tollhouse.control._schema import Op, Schema, obj, op_of, spec

_PARAM = re.compile(r"{([^}:]+)(?::[^}]+)?}")
ERROR: Schema = obj(
    {
        "error": obj(
            {
                "message": {"type": "string"},
                "type": {"type": "string"},
                "code": {"type": ["string", "null"]},
                "fields": {
                    "type": "object",
                    "additionalProperties": {"type": "string"},
                    "description": "per-field messages (validation_error)",
                },
            },
            ["message", "type", "code"],
            closed=False,
        )
    },
    ["error"],
    closed=False,
)
_ERRORS = {
    "400": "invalid_request: the body is not JSON, or a query parameter is malformed",
    "401": "invalid_key: missing or invalid token",
    "403": "forbidden: the caller's role may not do this",
    "404": "not_found",
    "409": "conflict",
    "422": "validation_error: per-field messages in error.fields",
    "429": "rate_limited (Retry-After)",
}
SECURITY_SCHEMES = {
    "adminKey": {
        "type": "http",
        "scheme": "bearer",
        "description": "The config's admin_key: owner of every workspace.",
    },
    "workspaceKey": {
        "type": "http",
        "scheme": "bearer",
        "description": "A workspace API key (wk_...): acts in its own workspace with its role.",
    },
    "virtualKey": {
        "type": "http",
        "scheme": "bearer",
        "description": "A virtual key (gk_...): sees its own usage and generations.",
    },
}
_RATE_HEADERS = {
    name: {"schema": {"type": "integer"}, "description": text}
    for name, text in (
        ("X-RateLimit-Limit", "control-plane requests allowed per window (600 a minute)"),
        ("X-RateLimit-Remaining", "requests left in this window"),
        ("X-RateLimit-Reset", "when the window resets, in Unix seconds"),
    )
}


def operation_id(method: str, path: str) -> str:
    """``POST /v1/workspaces/{id}/members`` -> ``post_workspaces_id_members``."""
    words = re.findall(r"[A-Za-z0-9]+", path.removeprefix("/v1"))
    return "_".join([method.lower(), *words])


def tag(path: str) -> str:
    """The resource a path belongs to (``members``, ``keys``, ``audit``)."""
    parts = [p for p in path.split("/") if p and p not in ("v1", "api")]
    if parts[:1] == ["workspaces"] and len(parts) > 2:
        return parts[2]
    return parts[0].removesuffix(".json") if parts else "root"


def operation(path: str, method: str, op: Op | None) -> dict[str, Any]:
    op = op or Op()
    params = [
        {"name": p, "in": "path", "required": True, "schema": {"type": "string"}}
        for p in _PARAM.findall(path)
    ]
    params += [p.openapi() for p in op.params]
    success: dict[str, Any] = {"description": op.summary or "OK"}
    if op.status != 204:
        schema = op.response or {"type": "object"}
        success["content"] = {"application/json": {"schema": schema}}
    if not path.startswith("/api/"):
        success["headers"] = _RATE_HEADERS
    out: dict[str, Any] = {
        "operationId": operation_id(method, path),
        "tags": [tag(path)],
        "responses": {
            str(op.status): success,
            **{
                code: {
                    "description": text,
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}
                    },
                }
                for code, text in _ERRORS.items()
            },
        },
    }
    if op.summary:
        out["summary"] = op.summary
    if params:
        out["parameters"] = params
    if op.body:
        out["requestBody"] = {
            # An empty body reads as {}: required when {} would not do.
            "required": any(op.body.get(k) for k in ("required", "anyOf", "oneOf")),
            "content": {"application/json": {"schema": op.body}},
        }
    if op.public:
        out["security"] = []
    elif op.auth:
        out["security"] = [{scheme: []} for scheme in op.auth]
    return out


def document(routes: list[BaseRoute]) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        if not isinstance(route, Route):
            continue
        path = _PARAM.sub(r"{\1}", route.path)
        for method in sorted((route.methods or set()) - {"HEAD"}):
            op = op_of(route.endpoint, method)
            paths.setdefault(path, {})[method.lower()] = operation(route.path, method, op)
    return {
        "openapi": "3.1.0",
        "info": {"title": "Tollhouse control plane", "version": "0.1.0"},
        "components": {"securitySchemes": SECURITY_SCHEMES, "schemas": {"Error": ERROR}},
        "security": [{"adminKey": []}, {"workspaceKey": []}],
        "paths": dict(sorted(paths.items())),
    }


def undeclared(routes: list[BaseRoute]) -> list[tuple[str, str]]:
    """(path, method) of every route without a ``@spec`` declaration."""
    return [
        (route.path, method)
        for route in routes
        if isinstance(route, Route)
        for method in sorted((route.methods or set()) - {"HEAD"})
        if op_of(route.endpoint, method) is None
    ]


def route(routes: list[BaseRoute]) -> Route:
    """The ``/openapi.json`` route over ``routes`` (itself included)."""
    cache: dict[str, Any] = {}

    @spec("this document", response={"type": "object"}, public=True)
    async def openapi(request: Request) -> Response:
        if "doc" not in cache:
            cache["doc"] = document(routes)
        return json_response(cache["doc"])

    return Route("/openapi.json", openapi, methods=["GET"])
