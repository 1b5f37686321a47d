"""``/v1/workspaces/{id}/policies``: content-policy rules of a workspace (CRUD on the
workspace resource store).

A policy is ``{name, action: block|warn, keywords?, regex?, models_allow?,
models_deny?, max_bytes?, max_tokens?, case_sensitive?, whole_word?}`` — the Rust
``PolicyMatcher``'s rule shape; it is compiled on the way in, so a bad regex is a 422
naming the field.  The data plane reloads every workspace's policies from the store
(``Security.refresh_policies``, every 2 s on each replica) and applies them, after the
config's rules, to the requests of the workspace's own keys only; a match reports the
policy's id as ``ruleId``.
"""

from __future__ import annotations

from typing import Any

from starlette.routing import BaseRoute

from tollhouse import native
from tollhouse.control import _resources
from tollhouse.control._auth import ControlGateway
from tollhouse.control._schema import array, boolean, choice, integer, obj, text
from tollhouse.control._validation import Body, whole
from tollhouse.errors import ConfigError
from tollhouse.guard.policies import MATCHER_FIELDS, matcher_rule
from tollhouse.store import SqlStore

_STRINGS = array({"type": "string", "minLength": 1}, nullable=True)
_CONDITIONS = MATCHER_FIELDS[:6]  # keywords, regex, models_allow/deny, max_bytes/tokens
BODY = obj(
    {
        "name": text(),
        "action": choice(("block", "warn"), nullable=True, default="block"),
        "keywords": _STRINGS,
        "regex": {
            **array({"type": "string"}, nullable=True),
            "description": "regular expressions (Rust regex syntax)",
        },
        "models_allow": {**_STRINGS, "description": "model globs"},
        "models_deny": {**_STRINGS, "description": "model globs"},
        "max_bytes": integer(0, 2**64 - 1, nullable=True),
        "max_tokens": integer(0, 2**64 - 1, nullable=True),
        "case_sensitive": boolean(nullable=True),
        "whole_word": boolean(nullable=True),
    },
    ["name"],
    description="at least one condition: keywords, regex, models_allow/deny, max_bytes/tokens",
)
_SET = {"type": "array", "minItems": 1}
BODY["anyOf"] = [
    {"required": [k], "properties": {k: {"type": "integer"} if k.startswith("max") else _SET}}
    for k in _CONDITIONS
]


async def parse(store: SqlStore, workspace_id: str, data: dict[str, Any]) -> dict[str, Any]:
    body = Body(data, BODY)
    name = body.text("name")
    action = body.choice("action") or "block"
    record: dict[str, Any] = {"name": name, "action": action}
    record.update({k: data[k] for k in MATCHER_FIELDS if data.get(k) is not None})
    for k in ("max_bytes", "max_tokens"):  # 1000.0 is 1000 in JSON
        if isinstance(record.get(k), float) and whole(record[k]) is not None:
            record[k] = whole(record[k])
    if not body.errors:
        if not any(k in record for k in MATCHER_FIELDS[:6]):
            body.errors["keywords"] = "a policy needs at least one condition"
        else:
            try:
                native.PolicyMatcher([matcher_rule("new", record)])
            except ConfigError as exc:
                field = next((k for k in MATCHER_FIELDS if k in exc.message), "rule")
                body.errors[field] = exc.message.replace("policy rule 'new'", "policy")
    body.done()
    return record


KIND = _resources.Kind(
    segment="policies",
    prefix="pol_",
    noun="policy",
    parse=parse,
    show=lambda record: record,
    filters=("action",),
    sorts=("action",),
    body=BODY,
    item=BODY,
)


def routes(gw: ControlGateway) -> list[BaseRoute]:
    return _resources.routes(gw, KIND)
