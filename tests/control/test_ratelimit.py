"""``X-RateLimit-*`` on control-plane responses; 429 over the per-minute limit."""

from __future__ import annotations

import httpx
from starlette.applications import Starlette
from tests.control._app import Gw

from tollhouse import control
from tollhouse.control._ratelimit import ControlRateLimiter


async def test_headers_on_every_answer(client: httpx.AsyncClient, admin: dict[str, str]) -> None:
    for path, headers in (("/v1/workspaces", admin), ("/v1/audit/logs", {}), ("/v1/keys", admin)):
        r = await client.get(path, headers=headers)
        assert r.headers["x-ratelimit-limit"] == "600"
        assert int(r.headers["x-ratelimit-remaining"]) < 600
        assert 1 <= int(r.headers["x-ratelimit-reset"]) <= 60


async def test_over_the_limit_is_429(gw: Gw, admin: dict[str, str]) -> None:
    clock = [120.5]
    limiter = ControlRateLimiter(per_minute=3, clock=lambda: clock[0])
    app = Starlette(routes=control.routes(gw, limiter=limiter))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw") as c:
        seen = [await c.get("/v1/workspaces", headers=admin) for _ in range(4)]
        assert [r.status_code for r in seen] == [200, 200, 200, 429]
        assert [r.headers["x-ratelimit-remaining"] for r in seen] == ["2", "1", "0", "0"]
        assert seen[3].json()["error"]["code"] == "rate_limited"
        assert seen[3].headers["retry-after"] == seen[3].headers["x-ratelimit-reset"] == "60"
        # another caller has its own count; the next window starts afresh
        other = await c.get("/v1/workspaces", headers={"Authorization": "Bearer x"})
        assert other.status_code == 401 and other.headers["x-ratelimit-remaining"] == "2"
        clock[0] = 180.0
        assert (await c.get("/v1/workspaces", headers=admin)).status_code == 200
