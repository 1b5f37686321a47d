"""``/v1/workspaces/{id}/alert-rules``: when to alert, how badly, and to which targets.

``condition`` is ``{metric, threshold | threshold_ms, window_seconds}``; latency takes
``threshold_ms`` (as in the contract's example), the other metrics ``threshold``.  Every
entry of ``delivery_targets`` must name a delivery target of the same workspace.
``POST …/{rid}/test`` sends the ``alert.fired`` the rule would send (marked ``"test":
true``, no measured value); the background evaluator (``events.evaluator``) sends the
real ones.
"""

from __future__ import annotations

import math
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from tollhouse.control import _resources
from tollhouse.control._access import require_role, sql_store
from tollhouse.control._auth import ControlGateway
from tollhouse.control._delivery_send import RESULT, send
from tollhouse.control._http import endpoint, json_response
from tollhouse.control._schema import (
    NO_BODY,
    Schema,
    array,
    boolean,
    choice,
    envelope,
    integer,
    number,
    obj,
    spec,
    text,
)
from tollhouse.control._validation import Body, whole
from tollhouse.control.deliveries import SEVERITIES
from tollhouse.errors import NotFound
from tollhouse.events.evaluator import rule_test_event
from tollhouse.events.targets import not_sent
from tollhouse.store import SqlStore

METRICS = ("latency", "error_rate", "cost", "tokens", "requests", "budget")
MAX_WINDOW = 7 * 86_400
_WINDOW = {**integer(10, MAX_WINDOW), "default": 300}


def _condition(metric: str) -> Schema:
    wanted = "threshold_ms" if metric == "latency" else "threshold"
    top = 1 if metric in ("error_rate", "budget") else None
    return obj(
        {"metric": {"const": metric}, wanted: number(0, top), "window_seconds": _WINDOW},
        ["metric", wanted],
    )


CONDITION: Schema = {
    "oneOf": [_condition(m) for m in METRICS],
    "description": "latency takes threshold_ms; error_rate and budget a fraction 0..1",
}
BODY = obj(
    {
        "name": text(),
        "condition": CONDITION,
        "delivery_targets": {
            **array({"type": "string"}, max_items=20),
            "description": "delivery target ids of this workspace",
        },
        "severity": choice(SEVERITIES, nullable=True, default="medium"),
        "enabled": boolean(default=True),
    },
    ["name", "condition"],
)
ITEM = obj({**BODY["properties"], "condition": {"type": "object"}})


def _number(value: Any) -> bool:
    return type(value) in (int, float) and math.isfinite(value) and value >= 0


def _condition_errors(cond: Any) -> dict[str, str]:
    if not isinstance(cond, dict):
        return {"condition": "expected an object"}
    allowed = ("metric", "threshold", "threshold_ms", "window_seconds")
    errors = {f"condition.{k}": "unknown field" for k in cond if k not in allowed}
    metric = cond.get("metric")
    if metric not in METRICS:
        errors["condition.metric"] = f"one of {', '.join(METRICS)}"
    wanted = "threshold_ms" if metric == "latency" else "threshold"
    unwanted = "threshold" if metric == "latency" else "threshold_ms"
    if unwanted in cond:
        errors[f"condition.{unwanted}"] = f"use {wanted} for {metric}"
    if not _number(cond.get(wanted)):
        errors[f"condition.{wanted}"] = "required: a non-negative number"
    elif metric in ("error_rate", "budget") and cond[wanted] > 1:
        errors[f"condition.{wanted}"] = "a fraction between 0 and 1"
    window = whole(cond.get("window_seconds", 300))
    if window is None or not 10 <= window <= MAX_WINDOW:
        errors["condition.window_seconds"] = f"an integer between 10 and {MAX_WINDOW}"
    return errors


async def parse(store: SqlStore, workspace_id: str, data: dict[str, Any]) -> dict[str, Any]:
    body = Body(data, BODY)
    name = body.text("name")
    severity = body.choice("severity") or "medium"
    cond = data.get("condition")
    if cond is not None:
        body.errors.update(_condition_errors(cond))
    targets = data.get("delivery_targets", [])
    if not isinstance(targets, list) or not all(isinstance(t, str) for t in targets):
        body.errors["delivery_targets"] = "expected a list of delivery target ids"
    elif len(targets) > 20:
        body.errors["delivery_targets"] = "at most 20 targets"
    else:
        missing = set(targets) - await _resources.ids(store, workspace_id, "deliveries")
        if missing:
            body.errors["delivery_targets"] = (
                f"unknown delivery targets: {', '.join(sorted(missing))}"
            )
    enabled = data.get("enabled", True)
    if not isinstance(enabled, bool):
        body.errors["enabled"] = "expected true or false"
    body.done()
    assert isinstance(cond, dict)  # noqa: S101 - done() checked it
    condition = {**cond, "window_seconds": whole(cond.get("window_seconds", 300))}
    return {
        "name": name,
        "condition": condition,
        "delivery_targets": list(dict.fromkeys(targets)),
        "severity": severity,
        "enabled": enabled,
    }


KIND = _resources.Kind(
    segment="alert-rules",
    prefix="rule_",
    noun="alert rule",
    parse=parse,
    show=lambda r: r,
    filters=("severity", "enabled"),
    sorts=("severity",),
    body=BODY,
    item=ITEM,
)


def routes(gw: ControlGateway) -> list[BaseRoute]:
    store = sql_store(gw)

    @endpoint
    @spec(
        "send a test alert to each of the rule's targets now (member)",
        body=NO_BODY,
        response=envelope(
            obj({"event_id": {"type": "string"}, "results": array(RESULT)}, ["event_id", "results"])
        ),
    )
    async def fire_test(request: Request) -> Response:
        """Send a test alert for the rule to each of its delivery targets, now."""
        wid, rid = request.path_params["id"], request.path_params["rid"]
        await require_role(request, gw, wid, "member")
        rule = await _resources.one(store, wid, KIND.segment, rid, KIND.noun)
        event = rule_test_event(wid, rid, rule)
        results = []
        for target_id in rule.get("delivery_targets") or []:
            try:
                target = await _resources.one(store, wid, "deliveries", target_id, "target")
            except NotFound:
                results.append(not_sent(target_id, event, "deleted", retryable=False))
                continue
            results.append(await send(gw, target, event))
        return json_response({"data": {"event_id": event.id, "results": results}})

    route = Route("/v1/workspaces/{id}/alert-rules/{rid}/test", fire_test, methods=["POST"])
    return [*_resources.routes(gw, KIND), route]
