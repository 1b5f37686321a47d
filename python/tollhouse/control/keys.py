"""Virtual-key management: ``/v1/keys`` and ``/v1/keys/{hash}`` (OpenRouter shapes).

Bodies are validated field by field (422 ``validation_error`` naming each bad field);
limits are USD at the JSON edge and micro-dollars in the store.  Usage figures come from
the spend rows: all time and since the start of the current UTC day, ISO week (Monday)
and month.  The same validation and creation serve the ``tollhouse keys`` CLI.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from tollhouse import native
from tollhouse.control._access import workspace_in
from tollhouse.control._auth import ControlGateway, require_admin
from tollhouse.control._http import (
    MAX_QUERY_INT,
    QUERY_BOOLS,
    endpoint,
    iso,
    json_object,
    json_response,
    query_bool,
    query_int,
)
from tollhouse.control._schema import (
    ADMIN,
    NOT_BLANK,
    TIMESTAMP,
    Param,
    Schema,
    array,
    boolean,
    choice,
    envelope,
    integer,
    number,
    obj,
    query,
    spec,
)
from tollhouse.control._validation import whole
from tollhouse.errors import NotFound, ValidationError
from tollhouse.guard.keys import generate_key, hash_key, key_label
from tollhouse.guard.policies import DEFAULT_WORKSPACE
from tollhouse.store.base import KeyRecord, Store

RESET_PERIODS = ("daily", "weekly", "monthly")
MAX_LIMIT_USD = 1e9
PAGE_MAX = 100
_HASH = re.compile(r"^[0-9a-f]{64}$")

_MODEL = {"type": "string", "maxLength": 256, "pattern": NOT_BLANK}
FIELDS: dict[str, Schema] = {
    "name": _MODEL,
    "limit": {**number(0, MAX_LIMIT_USD, nullable=True), "description": "USD"},
    "limit_reset": choice(RESET_PERIODS, nullable=True),
    "include_byok_in_limit": boolean(),
    "expires_at": {
        "type": ["string", "null"],
        "format": "date-time",
        "pattern": "([Zz]|[+-]00:00)$",
        "description": "UTC (Z or +00:00), in the future",
    },
    "rpm": integer(1, 2**62, nullable=True),
    "tpm": integer(1, 2**62, nullable=True),
    "models": array(_MODEL, min_items=1, max_items=256, nullable=True),
    "team": {"type": ["string", "null"], "minLength": 1, "maxLength": 128},
    "metadata": {"type": ["object", "null"], "maxProperties": 16, "description": "<= 4096 bytes"},
    "disabled": boolean(),
}
_WORKSPACE: Schema = {
    "type": "string",
    "minLength": 1,
    "maxLength": 128,
    "description": "the workspace the key and its traffic belong to (must exist; 'default')",
}
# OpenRouter's fields (name, limit, limit_reset, include_byok_in_limit, expires_at), ours;
# the workspace is chosen when the key is made and does not move.
PATCH_FIELDS = frozenset(FIELDS)
CREATE_FIELDS = PATCH_FIELDS | {"workspace_id"}
CREATE = obj({**FIELDS, "workspace_id": _WORKSPACE}, ["name"])
PATCH = obj(FIELDS)
KEY: Schema = obj(
    {
        "hash": {"type": "string"},
        "name": {"type": "string"},
        "label": {"type": "string"},
        "disabled": {"type": "boolean"},
        "limit": number(nullable=True),
        "limit_remaining": number(nullable=True),
        "usage": number(),
        "created_at": TIMESTAMP,
        "updated_at": TIMESTAMP,
        "expires_at": TIMESTAMP,
        "workspace_id": {"type": "string"},
    },
    ["hash", "name", "label", "disabled", "workspace_id"],
    closed=False,
)
PAGE_PARAMS: tuple[Param, ...] = (
    query("offset", integer(0, MAX_QUERY_INT)),
    query("limit", integer(0, PAGE_MAX)),
)


# -- validation ---------------------------------------------------------------------------


def _name(value: Any) -> str | None:
    if not isinstance(value, str) or not value.strip():
        return "must be a non-empty string"
    if len(value) > 256:
        return "must be at most 256 characters"
    return None


def _positive_int(value: Any) -> str | None:
    if value is None:
        return None
    value = whole(value)
    if value is None or value < 1:
        return "must be a positive integer or null"
    if value > 2**62:
        return "is too large"
    return None


def _expiry(value: Any, now: float) -> tuple[float | None, str | None]:
    if value is None:
        return None, None
    if not isinstance(value, str):
        return None, "must be an ISO 8601 UTC timestamp or null"
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None, "must be an ISO 8601 UTC timestamp (e.g. 2030-01-01T00:00:00Z)"
    if parsed.tzinfo is None or parsed.utcoffset() != timedelta(0):
        return None, "must be in UTC (end with Z or +00:00)"
    ts = parsed.timestamp()
    if ts <= now:
        return None, "must be in the future"
    return ts, None


def parse_key_fields(data: Mapping[str, Any], *, create: bool) -> dict[str, Any]:
    """Validate a create/update body into store fields (``limit`` USD -> ``limit_micros``).

    Raises ``ValidationError`` with a message per offending field.
    """
    errors: dict[str, str] = {}
    out: dict[str, Any] = {}
    allowed = CREATE_FIELDS if create else PATCH_FIELDS
    for field in data:
        if field not in allowed:
            errors[field] = "unknown field"
    if create and "name" not in data:
        errors["name"] = "is required"
    now = time.time()
    for field, value in data.items():
        if field not in allowed:
            continue
        problem: str | None = None
        if field == "name":
            problem = _name(value)
            if problem is None:
                out["name"] = value.strip()
        elif field == "limit":
            if value is None:
                out["limit_micros"] = None
            elif (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not math.isfinite(value)
                or value < 0
            ):
                problem = "must be a non-negative number of USD or null"
            elif value > MAX_LIMIT_USD:
                problem = f"must be at most {MAX_LIMIT_USD:.0f} USD"
            else:
                out["limit_micros"] = native.usd_to_micros(float(value))
        elif field == "limit_reset":
            if value is not None and value not in RESET_PERIODS:
                problem = "must be one of daily, weekly, monthly, or null"
            else:
                out["limit_reset"] = value
        elif field in ("include_byok_in_limit", "disabled"):
            if not isinstance(value, bool):
                problem = "must be true or false"
            elif field == "disabled":
                out["disabled"] = value
            # Tollhouse has no BYOK traffic, so the flag cannot change any figure.
        elif field == "expires_at":
            ts, problem = _expiry(value, now)
            if problem is None:
                out["expires_at"] = ts
        elif field in ("rpm", "tpm"):
            problem = _positive_int(value)
            if problem is None:
                out[field] = whole(value)
        elif field == "models":
            if value is None:
                out["models"] = None
            elif (
                not isinstance(value, list)
                or not value
                or len(value) > 256
                or not all(isinstance(m, str) and m.strip() and len(m) <= 256 for m in value)
            ):
                problem = "must be a non-empty list of model names (or globs), or null"
            else:
                out["models"] = tuple(m.strip() for m in value)
        elif field == "team":
            if value is not None and (not isinstance(value, str) or not value or len(value) > 128):
                problem = "must be a non-empty string of at most 128 characters, or null"
            else:
                out["team"] = value
        elif field == "workspace_id":
            if not isinstance(value, str) or not value or len(value) > 128:
                problem = "must be a workspace id (a non-empty string of at most 128 characters)"
            else:
                out["workspace_id"] = value
        elif field == "metadata":
            if value is None:
                out["metadata"] = {}
            elif not isinstance(value, dict) or len(value) > 16:
                problem = "must be an object with at most 16 entries"
            elif len(orjson.dumps(value)) > 4096:
                problem = "must serialise to at most 4096 bytes"
            else:
                out["metadata"] = value
        if problem is not None:
            errors[field] = problem
    if errors:
        raise ValidationError("invalid key fields: " + ", ".join(sorted(errors)), errors)
    return out


async def issue_key(store: Store, fields: Mapping[str, Any]) -> tuple[str, KeyRecord]:
    """Create a key from validated fields; the raw key is returned once and never stored.
    A ``workspace_id`` must name an existing workspace (422 ``validation_error``)."""
    workspace_id = fields.get("workspace_id", DEFAULT_WORKSPACE)
    if not await workspace_in(store, workspace_id):
        raise ValidationError(
            "invalid key fields: workspace_id", {"workspace_id": "no such workspace"}
        )
    raw = generate_key()
    now = time.time()
    record = KeyRecord(
        hash=hash_key(raw),
        name=fields["name"],
        label=key_label(raw),
        created_at=now,
        updated_at=now,
        disabled=bool(fields.get("disabled", False)),
        limit_micros=fields.get("limit_micros"),
        limit_reset=fields.get("limit_reset"),
        rpm=fields.get("rpm"),
        tpm=fields.get("tpm"),
        models=fields.get("models"),
        team=fields.get("team"),
        expires_at=fields.get("expires_at"),
        metadata=dict(fields.get("metadata") or {}),
        workspace_id=workspace_id,
    )
    await store.create_key(record)
    return raw, record


# -- usage and the JSON shape --------------------------------------------------------------


def period_starts(now: float) -> tuple[float, float, float]:
    """Start of the current UTC day, ISO week (Monday) and month, as UNIX timestamps."""
    day = datetime.fromtimestamp(now, UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    week = day - timedelta(days=day.weekday())
    month = day.replace(day=1)
    return day.timestamp(), week.timestamp(), month.timestamp()


def usage_windows(now: float | None = None) -> list[float]:
    """``since`` values for ``Store.key_usage``: all time, day, week, month."""
    return [0.0, *period_starts(time.time() if now is None else now)]


async def usage_of(store: Store, records: Sequence[KeyRecord]) -> dict[str, list[int]]:
    return await store.key_usage([r.hash for r in records], usage_windows())


def limit_remaining_micros(record: KeyRecord, usage: Sequence[int]) -> int | None:
    """What is left of the key's limit in its current period (None: no limit)."""
    if record.limit_micros is None:
        return None
    total, daily, weekly, monthly = usage
    spent = {None: total, "daily": daily, "weekly": weekly, "monthly": monthly}[record.limit_reset]
    return max(0, record.limit_micros - spent)


def _usd(micros: int | None) -> float | None:
    return None if micros is None else native.micros_to_usd(micros)


def usage_fields(record: KeyRecord, usage: Sequence[int]) -> dict[str, Any]:
    """The OpenRouter usage/limit figures of a key, in USD."""
    total, daily, weekly, monthly = usage
    return {
        "limit": _usd(record.limit_micros),
        "limit_remaining": _usd(limit_remaining_micros(record, usage)),
        "limit_reset": record.limit_reset,
        "include_byok_in_limit": False,
        "usage": native.micros_to_usd(total),
        "usage_daily": native.micros_to_usd(daily),
        "usage_weekly": native.micros_to_usd(weekly),
        "usage_monthly": native.micros_to_usd(monthly),
        "byok_usage": 0.0,
        "byok_usage_daily": 0.0,
        "byok_usage_weekly": 0.0,
        "byok_usage_monthly": 0.0,
        "expires_at": iso(record.expires_at),
    }


def key_json(record: KeyRecord, usage: Sequence[int]) -> dict[str, Any]:
    """A key as ``/v1/keys`` shows it (never the raw key)."""
    return {
        "hash": record.hash,
        "name": record.name,
        "label": record.label,
        "disabled": record.disabled,
        **usage_fields(record, usage),
        "created_at": iso(record.created_at),
        "updated_at": iso(record.updated_at),
        "creator_user_id": None,
        "rpm": record.rpm,
        "tpm": record.tpm,
        "models": None if record.models is None else list(record.models),
        "team": record.team,
        "metadata": record.metadata,
        "workspace_id": record.workspace_id,
    }


# -- routes --------------------------------------------------------------------------------


def _hash_param(request: Request) -> str:
    key_hash = str(request.path_params["hash"])
    if _HASH.match(key_hash) is None:
        raise NotFound("API key not found")
    return key_hash


def routes(gw: ControlGateway) -> list[BaseRoute]:
    async def _one(record: KeyRecord) -> dict[str, Any]:
        usage = await usage_of(gw.store, [record])
        return key_json(record, usage[record.hash])

    @endpoint
    @spec(
        "virtual keys",
        params=(
            *PAGE_PARAMS,
            query("include_disabled", {"type": "string", "enum": list(QUERY_BOOLS)}),
        ),
        response=envelope(array(KEY)),
        auth=ADMIN,
    )
    async def list_keys(request: Request) -> Response:
        require_admin(request, gw)
        offset = query_int(request, "offset", 0)
        limit = query_int(request, "limit", PAGE_MAX, maximum=PAGE_MAX)
        include_disabled = query_bool(request, "include_disabled", False)
        records = await gw.store.list_keys(offset, limit, include_disabled=include_disabled)
        usage = await usage_of(gw.store, records)
        return json_response({"data": [key_json(r, usage[r.hash]) for r in records]})

    @endpoint
    @spec(
        "create a virtual key; the raw key is in this answer only",
        body=CREATE,
        status=201,
        response=envelope(KEY, key={"type": "string"}),
        auth=ADMIN,
    )
    async def create_key(request: Request) -> Response:
        require_admin(request, gw)
        fields = parse_key_fields(await json_object(request), create=True)
        raw, record = await issue_key(gw.store, fields)
        await gw.keys.refresh()
        return json_response({"data": await _one(record), "key": raw}, status=201)

    @endpoint
    @spec("one virtual key", response=envelope(KEY), auth=ADMIN)
    async def get_key(request: Request) -> Response:
        require_admin(request, gw)
        record = await gw.store.get_key(_hash_param(request))
        if record is None:
            raise NotFound("API key not found")
        return json_response({"data": await _one(record)})

    @endpoint
    @spec("change a virtual key", body=PATCH, response=envelope(KEY), auth=ADMIN)
    async def update_key(request: Request) -> Response:
        require_admin(request, gw)
        key_hash = _hash_param(request)
        changes = parse_key_fields(await json_object(request), create=False)
        record = await gw.store.update_key(key_hash, changes)
        if record is None:
            raise NotFound("API key not found")
        await gw.keys.refresh()
        return json_response({"data": await _one(record)})

    @endpoint
    @spec("delete a virtual key", response=obj({"deleted": {"const": True}}), auth=ADMIN)
    async def delete_key(request: Request) -> Response:
        require_admin(request, gw)
        if not await gw.store.delete_key(_hash_param(request)):
            raise NotFound("API key not found")
        await gw.keys.refresh()
        return json_response({"deleted": True})

    return [
        Route("/v1/keys", list_keys, methods=["GET"]),
        Route("/v1/keys", create_key, methods=["POST"]),
        Route("/v1/keys/{hash}", get_key, methods=["GET"]),
        Route("/v1/keys/{hash}", update_key, methods=["PATCH"]),
        Route("/v1/keys/{hash}", delete_key, methods=["DELETE"]),
    ]
