"""``GET /openapi.json``: an OpenAPI 3.1 document built from the mounted control routes,
so it always matches them (paths, methods, path parameters, the common error answers).
Request and response bodies are not described yet."""

from __future__ import annotations

import re
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from tollhouse.control._http import json_response

_PARAM = re.compile(r"{([^}:]+)(?::[^}]+)?}")
_ERRORS = {
    "401": "missing or invalid token",
    "403": "the caller's role may not do this",
    "404": "not found",
    "422": "validation_error: per-field messages in error.fields",
    "429": "rate_limited",
}


def document(routes: list[BaseRoute]) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        if not isinstance(route, Route):
            continue
        path = _PARAM.sub(r"{\1}", route.path)
        params = [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            for name in _PARAM.findall(route.path)
        ]
        for method in sorted((route.methods or set()) - {"HEAD"}):
            op: dict[str, Any] = {
                "operationId": f"{method.lower()}_{route.name}_{len(paths)}",
                "responses": {
                    "200": {"description": "OK"},
                    **{code: {"description": text} for code, text in _ERRORS.items()},
                },
            }
            if params:
                op["parameters"] = params
            if method in ("POST", "PUT", "PATCH"):
                op["requestBody"] = {
                    "required": False,
                    "content": {"application/json": {"schema": {"type": "object"}}},
                }
            paths.setdefault(path, {})[method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {"title": "Tollhouse control plane", "version": "0.1.0"},
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "security": [{"bearer": []}],
        "paths": dict(sorted(paths.items())),
    }


def route(routes: list[BaseRoute]) -> Route:
    """The ``/openapi.json`` route over ``routes`` (itself included)."""
    cache: dict[str, Any] = {}

    async def openapi(request: Request) -> Response:
        if "doc" not in cache:
            cache["doc"] = document(routes)
        return json_response(cache["doc"])

    return Route("/openapi.json", openapi, methods=["GET"])
