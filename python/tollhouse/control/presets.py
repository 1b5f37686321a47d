"""``POST /v1/presets/apply``: set a security preset on some or all keys (admin only).

Body ``{"presetId": "standard", "keys": ["my-key-1", ...]}`` (``keys`` omitted: every
key; a key is named by its name or its hash).  Answers
``{success, presetId, applied, skipped, errors}``: ``skipped`` counts keys that already
had the preset, ``errors`` names keys that were not found or could not be updated.
``GET /v1/presets`` lists the presets and what each turns on.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from tollhouse.control._auth import ControlGateway, require_admin
from tollhouse.control._http import endpoint, json_object, json_response
from tollhouse.control._schema import ADMIN, ANY_OBJECT, array, envelope, obj, spec
from tollhouse.errors import TollhouseError, ValidationError
from tollhouse.guard.presets import PRESET_FIELD, PRESETS, preset_named
from tollhouse.store.base import KeyRecord

APPLY = obj(
    {
        "presetId": {"type": "string", "enum": list(PRESETS)},
        "keys": {
            **array({"type": "string", "minLength": 1}, nullable=True),
            "description": "key names or hashes; omitted: every key",
        },
    },
    ["presetId"],
    closed=False,
)
APPLIED = obj(
    {
        "success": {"type": "boolean"},
        "presetId": {"type": "string"},
        "applied": {"type": "integer"},
        "skipped": {"type": "integer"},
        "errors": array(ANY_OBJECT),
    },
    ["success", "presetId", "applied", "skipped", "errors"],
)


def _wanted(raw: Any) -> list[str] | None:
    if raw is None:
        return None
    if not isinstance(raw, list) or not all(isinstance(k, str) and k for k in raw):
        raise ValidationError("invalid request body", {"keys": "expected a list of key names"})
    return list(dict.fromkeys(raw))


async def apply_preset(
    gw: ControlGateway, preset_id: str, wanted: list[str] | None
) -> dict[str, Any]:
    everything = await gw.store.all_keys()
    targets: list[KeyRecord] = []
    errors: list[dict[str, str]] = []
    if wanted is None:
        targets = everything
    else:
        by_name: dict[str, KeyRecord] = {}
        for k in everything:
            by_name.setdefault(k.name, k)
            by_name[k.hash] = k
        for name in wanted:
            record = by_name.get(name)
            if record is None:
                errors.append({"key": name, "error": "key not found"})
            else:
                targets.append(record)
    applied = skipped = 0
    for record in targets:
        if record.metadata.get(PRESET_FIELD) == preset_id:
            skipped += 1
            continue
        try:
            metadata = {**record.metadata, PRESET_FIELD: preset_id}
            updated = await gw.store.update_key(record.hash, {"metadata": metadata})
        except TollhouseError as exc:
            errors.append({"key": record.name, "error": exc.message})
            continue
        if updated is None:
            errors.append({"key": record.name, "error": "key not found"})
        else:
            applied += 1
    if applied:
        await gw.keys.refresh(force=True)
    return {
        "success": not errors,
        "presetId": preset_id,
        "applied": applied,
        "skipped": skipped,
        "errors": errors,
    }


def routes(gw: ControlGateway) -> list[BaseRoute]:
    @endpoint
    @spec("set a security preset on some or all keys", body=APPLY, response=APPLIED, auth=ADMIN)
    async def apply(request: Request) -> Response:
        require_admin(request, gw)
        body = await json_object(request)
        preset = preset_named(body.get("presetId"))
        return json_response(await apply_preset(gw, preset.id, _wanted(body.get("keys"))))

    @endpoint
    @spec("the presets and what each turns on", response=envelope(array(ANY_OBJECT)), auth=ADMIN)
    async def list_presets(request: Request) -> Response:
        require_admin(request, gw)
        return json_response({"data": [p.describe() for p in PRESETS.values()]})

    return [
        Route("/v1/presets/apply", apply, methods=["POST"]),
        Route("/v1/presets", list_presets, methods=["GET"]),
    ]
