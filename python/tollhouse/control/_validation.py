"""Query-parameter parsing for the control plane: bad input is a 422 naming the field."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request

from tollhouse.control._schema import MAX_UNIX, SECONDS, Schema
from tollhouse.errors import ValidationError

DEFAULT_LIMIT = 25
MAX_LIMIT = 100
_SECONDS = re.compile(SECONDS)


def parse_time(raw: str | float, name: str) -> float:
    """A timestamp given as UNIX seconds (a JSON number, or digits in a string) or as
    ISO 8601 (naive means UTC): what ``_schema.TIME`` documents."""
    if isinstance(raw, (int, float)):
        if not math.isfinite(raw) or not 0 <= raw <= MAX_UNIX:
            raise ValidationError(f"invalid {name}", {name: "out of range"})
        return float(raw)
    if _SECONDS.fullmatch(raw):
        return float(raw)
    try:
        parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise ValidationError(
            f"invalid {name}", {name: "expected an ISO 8601 time or UNIX seconds"}
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def whole(value: Any) -> int | None:
    """A JSON integer: an int, or a float with no fraction (JSON Schema's ``integer``
    includes ``5.0``); None for anything else (booleans too)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def query_time(request: Request, name: str) -> float | None:
    raw = request.query_params.get(name)
    return None if raw is None or raw == "" else parse_time(raw, name)


def query_limit(request: Request) -> int:
    """``?limit=`` between 1 and 100, default 25."""
    raw = request.query_params.get("limit")
    if raw is None or raw == "":
        return DEFAULT_LIMIT
    try:
        value = int(raw)
    except ValueError:
        raise ValidationError("invalid limit", {"limit": "expected an integer"}) from None
    if not 1 <= value <= MAX_LIMIT:
        raise ValidationError("invalid limit", {"limit": f"must be between 1 and {MAX_LIMIT}"})
    return value


def query_str(request: Request, name: str, *, max_len: int = 200) -> str | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    if len(raw) > max_len:
        raise ValidationError(f"invalid {name}", {name: f"at most {max_len} characters"})
    return raw


class Body:
    """Collects per-field errors over a JSON body; ``done()`` raises one 422 with all.

    ``schema`` is the route's declared body schema (``_schema.obj``): its properties are
    the allowed fields, its ``required`` list the fields that must be there (``null``
    counts as absent), and ``text``/``choice`` take their length and options from it.
    A bare tuple of field names still works for callers that declare nothing.
    """

    def __init__(self, data: dict[str, Any], schema: Schema | tuple[str, ...]) -> None:
        self.data = data
        if isinstance(schema, dict):
            self.props: dict[str, Schema] = schema.get("properties", {})
            self.required: frozenset[str] = frozenset(schema.get("required", ()))
        else:
            self.props = {name: {} for name in schema}
            self.required = frozenset()
        self.errors: dict[str, str] = {
            name: "unknown field" for name in data if name not in self.props
        }
        self.errors.update({name: "required" for name in self.required if data.get(name) is None})

    def _prop(self, name: str) -> Schema:
        if name not in self.props:
            raise KeyError(f"field {name!r} is not in the declared body schema")
        return self.props[name]

    def text(
        self, name: str, *, required: bool | None = None, max_len: int | None = None
    ) -> str | None:
        prop = self._prop(name)
        required = name in self.required if required is None else required
        max_len = max_len or prop.get("maxLength", 200)
        value = self.data.get(name)
        if value is None:
            if required:
                self.errors[name] = "required"
            return None
        if not isinstance(value, str) or not value.strip():
            self.errors[name] = "expected a non-empty string"
            return None
        if len(value) > max_len:
            self.errors[name] = f"at most {max_len} characters"
            return None
        return value.strip()

    def choice(
        self,
        name: str,
        options: tuple[str, ...] | None = None,
        *,
        required: bool | None = None,
    ) -> str | None:
        prop = self._prop(name)
        required = name in self.required if required is None else required
        if options is None:
            options = tuple(o for o in prop.get("enum", ()) if o is not None)
        value = self.data.get(name)
        if value is None:
            if required:
                self.errors[name] = "required"
            return None
        if value not in options:
            self.errors[name] = f"one of {', '.join(options)}"
            return None
        return str(value)

    def done(self) -> None:
        if self.errors:
            raise ValidationError("invalid request body", dict(sorted(self.errors.items())))
