"""``POST /v1/security/evaluate``: the current policy applied to a text or a request
without sending it anywhere.

Body: ``{"text": "..."}`` or a request body (``messages`` / ``input`` / ``system`` ...)
with an optional ``model``; ``preset`` (default: the calling key's, else ``standard``)
decides the redaction families.  Answers ``{allowed, violations[], redactions}``:
policy matches (``ruleId``, ``action``, ``kind``, ``detail`` — never the matched text)
and families whose mode is ``block``; ``redactions`` counts what would be masked.

Whose policies: the config's rules and one workspace's, as the data plane would apply
them.  A virtual key (``gk_…``) gets its own workspace's set (``workspaceId`` naming
another workspace is 403); the admin key gets the set of ``workspaceId`` (default
``default``; an unknown workspace is 404).  The answer's ``workspaceId`` says which set
was used.  Workspace API keys (``wk_…``) are not accepted here (401).
"""

from __future__ import annotations

import copy
from typing import Any, Protocol, runtime_checkable

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from tollhouse.control._access import workspace_in
from tollhouse.control._auth import ControlGateway, admin_or_key
from tollhouse.control._http import endpoint, json_object, json_response
from tollhouse.control._schema import ADMIN_OR_VIRTUAL_KEY, ANY_OBJECT, array, obj, spec
from tollhouse.errors import Forbidden, NotFound, ValidationError
from tollhouse.guard.policies import DEFAULT_WORKSPACE
from tollhouse.guard.presets import PRESETS, preset_named, preset_of
from tollhouse.guard.redaction import message_groups, request_text
from tollhouse.guard.security import Security
from tollhouse.store.base import KeyRecord

_PARTS = ("messages", "system", "input", "instructions", "prompt")


BODY = obj(
    {
        "text": {"type": ["string", "null"]},
        "model": {"type": ["string", "null"]},
        "preset": {"type": ["string", "null"], "enum": [*PRESETS, None]},
        "workspaceId": {
            "type": ["string", "null"],
            "minLength": 1,
            "description": "whose policies (admin key; a virtual key: its own only)",
        },
        **{k: {"description": "as in a request body"} for k in _PARTS},
    },
    closed=False,
    description="a text, or a request body with messages / input / system ...",
)
BODY["anyOf"] = [
    {"required": ["text"], "properties": {"text": {"type": "string"}}},
    *({"required": [k]} for k in _PARTS),
]
VERDICT = obj(
    {
        "allowed": {"type": "boolean"},
        "violations": array(ANY_OBJECT),
        "redactions": ANY_OBJECT,
        "preset": {"type": "string"},
        "workspaceId": {"type": "string"},
    },
    ["allowed", "violations", "redactions", "preset", "workspaceId"],
)


@runtime_checkable
class SecurityGateway(ControlGateway, Protocol):
    @property
    def security(self) -> Security: ...


def evaluate(
    sec: Security, body: dict[str, Any], preset_id: Any, key: Any, workspace_id: str
) -> dict[str, Any]:
    preset = preset_named(preset_id) if preset_id is not None else preset_of(key)
    text = body.get("text")
    if text is not None:
        if not isinstance(text, str):
            raise ValidationError("invalid request body", {"text": "expected a string"})
        work: dict[str, Any] = {"prompt": text}
    else:
        work = copy.deepcopy({k: body[k] for k in _PARTS if k in body})
        if not work:
            raise ValidationError(
                "invalid request body", {"text": "send a text or a request with messages/input"}
            )
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        raise ValidationError("invalid request body", {"model": "expected a string"})
    groups = message_groups(work)
    violations: list[dict[str, str]] = []
    if preset.policies:
        verdict = sec.policies.of(workspace_id).check(request_text(groups), model)
        violations += verdict.violations()
    outcome = sec.redaction.apply(groups, preset, sec.redaction.modes_for(key))
    violations += [
        {"ruleId": "redaction", "action": "block", "kind": "redaction", "detail": fam}
        for fam in outcome.blocked
    ]
    return {
        "allowed": not any(v["action"] == "block" for v in violations),
        "violations": violations,
        "redactions": {"count": outcome.count, "families": sorted(outcome.families)},
        "preset": preset.id,
        "workspaceId": workspace_id,
    }


async def _workspace(gw: ControlGateway, key: KeyRecord | None, named: Any) -> str:
    """The workspace whose policies apply: the virtual key's, or the one the admin names."""
    if named is not None and (not isinstance(named, str) or not named):
        raise ValidationError("invalid request body", {"workspaceId": "expected a workspace id"})
    if key is not None:
        if named is not None and named != key.workspace_id:
            raise Forbidden("this key belongs to another workspace")
        return key.workspace_id
    if named is None:
        return DEFAULT_WORKSPACE
    if not await workspace_in(gw.store, named):
        raise NotFound(f"workspace {named!r} not found")
    return named


def routes(gw: SecurityGateway) -> list[BaseRoute]:
    @endpoint
    @spec(
        "the current policy applied to a text or request, without sending it",
        body=BODY,
        response=VERDICT,
        auth=ADMIN_OR_VIRTUAL_KEY,
    )
    async def evaluate_route(request: Request) -> Response:
        key = admin_or_key(request, gw)
        body = await json_object(request)
        workspace_id = await _workspace(gw, key, body.get("workspaceId"))
        return json_response(evaluate(gw.security, body, body.get("preset"), key, workspace_id))

    return [Route("/v1/security/evaluate", evaluate_route, methods=["POST"])]
