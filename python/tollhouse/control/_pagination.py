"""``?page=&limit=`` pagination (default 25, max 100) with an RFC 8288 ``Link`` header."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response

from tollhouse.control._validation import query_limit
from tollhouse.errors import ValidationError

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
