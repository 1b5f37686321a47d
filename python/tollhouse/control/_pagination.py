"""``?page=&limit=`` pagination (default 25, max 100) with an RFC 8288 ``Link`` header,
and ``?sort=field:asc|desc`` on list endpoints."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from tollhouse.control._http import json_response
from tollhouse.control._validation import query_limit
from tollhouse.errors import ValidationError
from tollhouse.store import SqlStore

MAX_PAGE = 1_000_000


@dataclass(frozen=True)
class Page:
    page: int
    limit: int

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.limit


def page_of(request: Request) -> Page:
    raw = request.query_params.get("page")
    page = 1
    if raw is not None and raw != "":
        try:
            page = int(raw)
        except ValueError:
            raise ValidationError("invalid page", {"page": "expected an integer"}) from None
        if not 1 <= page <= MAX_PAGE:
            raise ValidationError("invalid page", {"page": f"must be between 1 and {MAX_PAGE}"})
    return Page(page, query_limit(request))


def set_links(response: Response, request: Request, page: Page, total: int) -> None:
    """``Link`` with first/prev/next/last, and ``X-Total-Count``."""
    last = max(1, -(-total // page.limit))
    rels = {"first": 1, "last": last}
    if page.page > 1:
        rels["prev"] = min(page.page - 1, last)
    if page.page < last:
        rels["next"] = page.page + 1
    links = [
        f'<{request.url.include_query_params(page=n, limit=page.limit)}>; rel="{rel}"'
        for rel, n in rels.items()
    ]
    response.headers["Link"] = ", ".join(links)
    response.headers["X-Total-Count"] = str(total)


def page_response(request: Request, page: Page, data: list[Any], total: int) -> Response:
    """A list answer: ``{"data", "total"}`` with ``Link`` and ``X-Total-Count``."""
    response = json_response({"data": data, "total": total})
    set_links(response, request, page, total)
    return response


async def fetch_page(
    store: SqlStore,
    page: Page,
    *,
    table: str,
    columns: str,
    where: str = "",
    params: Sequence[Any] = (),
    order: str,
) -> tuple[list[tuple[Any, ...]], int]:
    """One page of ``SELECT columns FROM table [WHERE where] ORDER BY order``, and how
    many rows match in all.  Every part but ``params`` is the caller's constant SQL."""
    tail = f" WHERE {where}" if where else ""
    count = await store._fetch(f"SELECT COUNT(*) FROM {table}{tail}", params)  # noqa: S608
    rows = await store._fetch(
        f"SELECT {columns} FROM {table}{tail} ORDER BY {order} LIMIT ? OFFSET ?",  # noqa: S608
        [*params, page.limit, page.offset],
    )
    return rows, int(count[0][0])


def sort_of(request: Request, fields: Sequence[str], default: str) -> tuple[str, bool]:
    """``?sort=field:asc|desc`` (``default`` when absent): (field, descending); 422 when
    the field is not one of ``fields`` or the direction is neither."""
    sort = request.query_params.get("sort") or default
    field, _, direction = sort.partition(":")
    if field not in fields or direction not in ("asc", "desc", ""):
        raise ValidationError(
            "invalid sort", {"sort": f"field:asc|desc, field one of {', '.join(fields)}"}
        )
    return field, direction == "desc"
