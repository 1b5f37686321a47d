"""Failover policies (self-hosted contracts).

Callers: the admin key, or a workspace API key of that workspace (``viewer`` reads,
``admin`` writes) when the store holds workspaces (SQL); the workspace must exist.

- ``POST /v1/workspaces/{id}/failover-policies`` ``{route_id, primary_endpoint,
  fallback_endpoints, conditions: {latency_threshold_ms, error_rate_threshold}}`` → 201
- ``GET /v1/workspaces/{id}/failover-policies`` → ``{"data": [policy, ...]}``
- ``GET /v1/workspaces/{id}/failover-policies/{policyId}`` → policy
- ``DELETE /v1/workspaces/{id}/failover-policies/{policyId}`` → 204

A policy in a response carries its live ``status`` (``active`` or ``failed_over``), the
endpoint serving now, and each endpoint's health (``healthy``, ``degraded``, ``down``).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from tollhouse.control._access import Role, require_role
from tollhouse.control._auth import require_admin
from tollhouse.control._http import endpoint, json_object, json_response
from tollhouse.control._schema import ANY_OBJECT, Schema, array, envelope, obj, spec
from tollhouse.control.routing import RoutingGateway
from tollhouse.errors import ValidationError
from tollhouse.routing.failover import policy_json
from tollhouse.store import SqlStore

_PATH = "/v1/workspaces/{workspace}/failover-policies"
_MAX_ID = 128
_ENDPOINT: Schema = {
    "anyOf": [
        {"type": "string", "minLength": 1},
        obj({"id": {"type": "string", "minLength": 1}}, ["id"], closed=False),
    ],
    "description": "a provider name or deployment id of the route",
}
_POSITIVE = {"type": ["number", "null"], "exclusiveMinimum": 0}
BODY = obj(
    {
        "route_id": {"type": "string", "minLength": 1, "description": "a model name"},
        "primary_endpoint": _ENDPOINT,
        "fallback_endpoints": array(_ENDPOINT, min_items=1),
        "conditions": {
            **obj(
                {
                    "latency_threshold_ms": _POSITIVE,
                    "error_rate_threshold": {**_POSITIVE, "maximum": 1},
                },
                closed=False,
            ),
            "anyOf": [
                {"required": [name], "properties": {name: {"type": "number"}}}
                for name in ("latency_threshold_ms", "error_rate_threshold")
            ],
        },
    },
    ["route_id", "primary_endpoint", "fallback_endpoints", "conditions"],
    closed=False,
)
POLICY = obj(
    {
        "id": {"type": "string"},
        "workspace_id": {"type": "string"},
        "status": {"enum": ["active", "failed_over"]},
        "route_id": {"type": "string"},
        "primary_endpoint": ANY_OBJECT,
        "fallback_endpoints": array(ANY_OBJECT),
        "conditions": ANY_OBJECT,
        "current_endpoint": {"type": "string"},
    },
    ["id", "status", "route_id"],
    closed=False,
)


def _workspace(request: Request) -> str:
    ws = str(request.path_params["workspace"])
    if not ws or len(ws) > _MAX_ID or not ws.replace("-", "").replace("_", "").isalnum():
        raise ValidationError("invalid workspace id", {"workspace": "letters, digits, - and _"})
    return ws


def routes(gw: RoutingGateway) -> list[BaseRoute]:
    router = gw.router
    policies = router.policies

    async def allow(request: Request, ws: str, least: Role) -> None:
        if isinstance(gw.store, SqlStore):
            await require_role(request, gw, ws, least)
        else:
            require_admin(request, gw)

    def render(policy_id: str, ws: str) -> dict[str, object]:
        return policy_json(policies.get(ws, policy_id), router.registry, router.board.get)

    @endpoint
    @spec("the workspace's failover policies", method="GET", response=envelope(array(POLICY)))
    @spec("create a failover policy (admin)", method="POST", body=BODY, status=201, response=POLICY)
    async def collection(request: Request) -> Response:
        ws = _workspace(request)
        await allow(request, ws, "admin" if request.method == "POST" else "viewer")
        await router.refresh_policies()
        if request.method == "POST":
            policy = policies.create(ws, await json_object(request))
            await router.save_policy(policy)
            return json_response(render(policy.id, ws), status=201)
        data = [render(p.id, ws) for p in policies.of_workspace(ws)]
        return json_response({"data": data})

    @endpoint
    @spec("one failover policy with its live status", method="GET", response=POLICY)
    @spec("delete a failover policy (admin)", method="DELETE", status=204)
    async def item(request: Request) -> Response:
        ws = _workspace(request)
        await allow(request, ws, "admin" if request.method == "DELETE" else "viewer")
        policy_id = str(request.path_params["policy"])
        await router.refresh_policies()
        if request.method == "DELETE":
            policies.delete(ws, policy_id)
            await router.drop_policy(policy_id)
            return Response(status_code=204)
        return json_response(render(policy_id, ws))

    return [
        Route(_PATH, collection, methods=["GET", "POST"]),
        Route(_PATH + "/{policy}", item, methods=["GET", "DELETE"]),
    ]
