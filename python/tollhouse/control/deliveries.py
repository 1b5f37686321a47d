"""``/v1/workspaces/{id}/deliveries``: where alerts go — ``webhook``, ``slack`` (an
incoming-webhook URL) or ``email`` (SMTP).  Secrets (a webhook signing secret, an SMTP
password) are stored but shown masked."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from tollhouse.control import _resources
from tollhouse.control._access import require_role, sql_store
from tollhouse.control._auth import ControlGateway
from tollhouse.control._delivery_send import RESULT, send, test_event
from tollhouse.control._http import endpoint, json_response
from tollhouse.control._schema import (
    NO_BODY,
    SPACE,
    array,
    boolean,
    choice,
    envelope,
    integer,
    obj,
    spec,
    text,
)
from tollhouse.control._validation import Body, whole
from tollhouse.events.email import is_address
from tollhouse.store import SqlStore

TYPES = ("webhook", "slack", "email")
SEVERITIES = ("low", "medium", "high", "critical")
_SECRET_FIELDS = ("secret", "smtp_password")
_URL = {
    "type": "string",
    "maxLength": 2000,
    "pattern": r"^https?://[A-Za-z0-9][A-Za-z0-9.-]*(:[0-9]{1,5})?(/[!-~]*)?$",
}
# events.email.is_address: one @, no whitespace or control characters.
_EMAIL = {
    "type": "string",
    "minLength": 3,
    "maxLength": 320,
    "pattern": f"^[^@{SPACE}\\x00-\\x1f\\x7f]*@[^@{SPACE}\\x00-\\x1f\\x7f]*$",
}
_SECRET = text(500, nullable=True)
CONFIGS = {
    "webhook": obj({"url": _URL, "secret": _SECRET}, ["url"]),
    "slack": obj({"webhook_url": _URL, "channel": _SECRET}, ["webhook_url"]),
    "email": obj(
        {
            "to": array(_EMAIL, min_items=1),
            "smtp_host": {"type": "string", "pattern": "^[A-Za-z0-9._:-]{1,253}$"},
            "smtp_port": integer(1, 65535, nullable=True),
            "from": _EMAIL,
            "smtp_user": _SECRET,
            "smtp_password": _SECRET,
            "starttls": boolean(),
        },
        ["to", "smtp_host"],
    ),
}
_CONFIG = {  # (required, optional) config fields per type
    kind: (tuple(c["required"]), tuple(k for k in c["properties"] if k not in c["required"]))
    for kind, c in CONFIGS.items()
}
_COMMON = {"name": text(), "default_severity": choice(SEVERITIES, nullable=True, default="medium")}
BODY = obj(
    {**_COMMON, "type": choice(TYPES), "config": {"type": "object"}}, ["name", "type", "config"]
)
BODY["oneOf"] = [
    {"properties": {"type": {"const": kind}, "config": config}} for kind, config in CONFIGS.items()
]
ITEM = obj({**_COMMON, "type": choice(TYPES), "config": {"type": "object"}})


def _is_url(value: Any) -> bool:
    if not isinstance(value, str) or len(value) > 2000:
        return False
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def _is_host(value: str) -> bool:
    return len(value) <= 253 and all(c.isalnum() or c in ".-_:" for c in value)


def _config_errors(kind: str, config: Any) -> dict[str, str]:
    if not isinstance(config, dict):
        return {"config": "expected an object"}
    required, optional = _CONFIG[kind]
    errors = {f"config.{k}": "unknown field" for k in config if k not in (*required, *optional)}
    errors.update({f"config.{k}": "required" for k in required if config.get(k) is None})
    for key in ("url", "webhook_url"):
        if key in config and not _is_url(config[key]):
            errors[f"config.{key}"] = "expected an http(s) URL"
    if "to" in config and not (
        isinstance(config["to"], list) and config["to"] and all(is_address(a) for a in config["to"])
    ):
        errors["config.to"] = "expected a non-empty list of email addresses"
    if "from" in config and not is_address(config["from"]):
        errors["config.from"] = "expected an email address"
    port = whole(config.get("smtp_port"))
    if config.get("smtp_port") is not None and (port is None or not 1 <= port <= 65535):
        errors["config.smtp_port"] = "expected a port number"
    for key in ("smtp_host", "channel", "secret", "smtp_user", "smtp_password"):
        value = config.get(key)
        if value is not None and (not isinstance(value, str) or not value or len(value) > 500):
            errors[f"config.{key}"] = "expected a non-empty string"
    host = config.get("smtp_host")
    if isinstance(host, str) and "config.smtp_host" not in errors and not _is_host(host):
        errors["config.smtp_host"] = "expected a host name or IP address"
    if "starttls" in config and not isinstance(config["starttls"], bool):
        errors["config.starttls"] = "expected true or false"
    return errors


async def parse(store: SqlStore, workspace_id: str, data: dict[str, Any]) -> dict[str, Any]:
    body = Body(data, BODY)
    name = body.text("name")
    kind = body.choice("type")
    severity = body.choice("default_severity") or "medium"
    config = data.get("config")
    if config is not None and kind is not None:
        body.errors.update(_config_errors(kind, config))
    body.done()
    assert isinstance(config, dict)  # noqa: S101 - done() checked it
    if config.get("smtp_port") is not None:  # 587.0 is 587 in JSON
        config = {**config, "smtp_port": whole(config["smtp_port"])}
    return {"name": name, "type": kind, "config": config, "default_severity": severity}


def show(record: dict[str, Any]) -> dict[str, Any]:
    config = dict(record.get("config") or {})
    for key in _SECRET_FIELDS:
        if config.get(key):
            config[key] = "********"
    return {**record, "config": config}


KIND = _resources.Kind(
    segment="deliveries",
    prefix="dlv_",
    noun="delivery target",
    parse=parse,
    show=show,
    filters=("type", "default_severity"),
    sorts=("type", "default_severity"),
    body=BODY,
    item=ITEM,
)


def routes(gw: ControlGateway) -> list[BaseRoute]:
    store = sql_store(gw)

    @endpoint
    @spec(
        "send a test message to the target now (member)",
        body=NO_BODY,
        response=envelope(RESULT),
    )
    async def verify(request: Request) -> Response:
        wid, rid = request.path_params["id"], request.path_params["rid"]
        await require_role(request, gw, wid, "member")
        target = await _resources.one(store, wid, KIND.segment, rid, KIND.noun)
        event = test_event(wid, {"message": "Tollhouse delivery target verification"})
        return json_response({"data": await send(gw, target, event)})

    route = Route("/v1/workspaces/{id}/deliveries/{rid}/verify", verify, methods=["POST"])
    return [*_resources.routes(gw, KIND), route]
