"""What a control route accepts and answers, declared once beside its handler.

``@spec(...)`` puts an ``Op`` on the endpoint function: its JSON request body (a JSON
Schema object), its query and header parameters and its success answer.  ``/openapi.json``
reads these declarations, and the validation code reads the same ones: ``Body(data,
SCHEMA)`` takes the allowed fields, which are required, string lengths and enum choices
from the body schema, so what a route checks and what the document says cannot drift.

Fields a route checks by hand (nested objects, cross-field rules) are declared beside
that code; ``tests/control/test_schemathesis.py`` sends schema-valid and schema-invalid
bodies and holds the two together.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

Schema = dict[str, Any]
F = TypeVar("F", bound=Callable[..., Any])
ATTR = "__control_spec__"


# -- schema builders ----------------------------------------------------------------------


# Python's str.isspace() (what .strip() removes), for patterns: ECMA-262's \s differs
# (it lacks \x1c-\x1f and \x85, and has \ufeff).
SPACE = r"\t-\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
NOT_BLANK = f"[^{SPACE}]"  # a string that .strip() leaves non-empty


def text(max_len: int = 200, *, nullable: bool = False, description: str | None = None) -> Schema:
    """A string with at least one non-space character (what ``Body.text`` accepts)."""
    out: Schema = {"type": ["string", "null"] if nullable else "string"}
    out.update(minLength=1, maxLength=max_len, pattern=NOT_BLANK)
    if description:
        out["description"] = description
    return out


def choice(options: Sequence[str], *, nullable: bool = False, default: str | None = None) -> Schema:
    values: list[Any] = list(options)
    out: Schema = {"type": "string", "enum": values}
    if nullable:
        out = {"type": ["string", "null"], "enum": [*values, None]}
    if default is not None:
        out["default"] = default
    return out


def integer(
    minimum: int | None = None, maximum: int | None = None, *, nullable: bool = False
) -> Schema:
    out: Schema = {"type": ["integer", "null"] if nullable else "integer"}
    if minimum is not None:
        out["minimum"] = minimum
    if maximum is not None:
        out["maximum"] = maximum
    return out


def number(
    minimum: float | None = None, maximum: float | None = None, *, nullable: bool = False
) -> Schema:
    out: Schema = {"type": ["number", "null"] if nullable else "number"}
    if minimum is not None:
        out["minimum"] = minimum
    if maximum is not None:
        out["maximum"] = maximum
    return out


def boolean(*, nullable: bool = False, default: bool | None = None) -> Schema:
    out: Schema = {"type": ["boolean", "null"] if nullable else "boolean"}
    if default is not None:
        out["default"] = default
    return out


def array(
    items: Schema, *, min_items: int = 0, max_items: int | None = None, nullable: bool = False
) -> Schema:
    out: Schema = {"type": ["array", "null"] if nullable else "array", "items": items}
    if min_items:
        out["minItems"] = min_items
    if max_items is not None:
        out["maxItems"] = max_items
    return out


def obj(
    properties: Mapping[str, Schema],
    required: Sequence[str] = (),
    *,
    closed: bool = True,
    description: str | None = None,
) -> Schema:
    """An object schema; ``closed``: other fields are refused (422 ``unknown field``)."""
    out: Schema = {"type": "object", "properties": dict(properties)}
    if required:
        out["required"] = list(required)
    if closed:
        out["additionalProperties"] = False
    if description:
        out["description"] = description
    return out


def envelope(data: Schema, **extra: Schema) -> Schema:
    """``{"data": ...}`` (the control plane's answer shape), plus ``extra`` members."""
    return obj({"data": data, **extra}, ["data", *extra], closed=False)


def listing(item: Schema, *, total: bool = True) -> Schema:
    """``{"data": [item, ...], "total": N}``."""
    extra = {"total": integer(0)} if total else {}
    return envelope(array(item), **extra)


ANY_OBJECT: Schema = {"type": "object"}
NO_BODY: Schema = {}  # ``body=NO_BODY``: the operation reads no request body
TIMESTAMP: Schema = {"type": ["string", "null"], "format": "date-time"}


# -- parameters -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Param:
    name: str
    schema: Schema
    where: str = "query"  # or "header"
    required: bool = False
    description: str | None = None

    def openapi(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "in": self.where, "schema": self.schema}
        if self.where == "query" and not self.required:
            out["allowEmptyValue"] = True  # ?name= reads as absent
        if self.required:
            out["required"] = True
        if self.description:
            out["description"] = self.description
        return out


def query(
    name: str,
    schema: Schema | None = None,
    description: str | None = None,
    *,
    required: bool = False,
) -> Param:
    schema = schema or {"type": "string", "maxLength": 200}
    return Param(name, schema, required=required, description=description)


# ``?page=&limit=`` (``_pagination.page_of``) and ``?limit=`` alone (``query_limit``).
LIMIT = query("limit", integer(1, 100), "page size (default 25)")
PAGE = (query("page", integer(1, 1_000_000), "1-based page number"), LIMIT)
# What ``_validation.parse_time`` reads: UNIX seconds, or an ISO 8601 time (naive: UTC).
SECONDS = r"[0-9]{1,11}(\.[0-9]+)?"  # as text (to the year 5138)
MAX_UNIX = 253_402_300_799  # as a JSON number: up to 9999-12-31T23:59:59Z
TIME: Schema = {
    "anyOf": [
        {"type": "string", "format": "date-time"},
        {"type": "string", "pattern": f"^{SECONDS}$"},
    ]
}
TIME_RANGE = (
    query("from", TIME, "ISO 8601 time or UNIX seconds"),
    query("to", TIME, "ISO 8601 time or UNIX seconds"),
)


def sort_param(fields: Sequence[str]) -> Param:
    """``?sort=field:asc|desc`` over ``fields``."""
    values = [f"{f}{d}" for f in fields for d in ("", ":asc", ":desc")]
    return query("sort", {"type": "string", "enum": values}, "field:asc|desc")


# Who may call: the config's admin key, a virtual key (gk_), a workspace key (wk_).
ADMIN = ("adminKey",)
ADMIN_OR_VIRTUAL_KEY = ("adminKey", "virtualKey")
VIRTUAL_KEY = ("virtualKey",)


# -- the declaration ------------------------------------------------------------------------


@dataclass(frozen=True)
class Op:
    """One operation: request body, parameters, the success answer."""

    summary: str | None = None
    body: Schema | None = None
    params: tuple[Param, ...] = ()
    status: int = 200
    response: Schema | None = None
    public: bool = False  # no bearer token needed
    auth: tuple[str, ...] = ()  # security schemes; () = admin or workspace key


def spec(
    summary: str | None = None,
    *,
    method: str | None = None,
    body: Schema | None = None,
    params: Sequence[Param] = (),
    status: int = 200,
    response: Schema | None = None,
    public: bool = False,
    auth: Sequence[str] = (),
) -> Callable[[F], F]:
    """Declare what an endpoint accepts and answers (``method``: for an endpoint that
    serves several methods; stack one ``@spec`` per method)."""
    op = Op(summary, body, tuple(params), status, response, public, tuple(auth))

    def mark(fn: F) -> F:
        ops: dict[str | None, Op] = dict(getattr(fn, ATTR, {}))
        ops[method.upper() if method else None] = op
        setattr(fn, ATTR, ops)
        return fn

    return mark


def op_of(endpoint: Any, method: str) -> Op | None:
    """The declaration for ``method`` on ``endpoint`` (None: undeclared)."""
    ops: dict[str | None, Op] = getattr(endpoint, ATTR, {})
    return ops.get(method.upper(), ops.get(None))


def declare(endpoint: Any, method: str | None, op: Op) -> None:
    """``spec`` for endpoints made in a loop (one function object per route)."""
    ops: dict[str | None, Op] = dict(getattr(endpoint, ATTR, {}))
    ops[method.upper() if method else None] = op
    setattr(endpoint, ATTR, ops)
