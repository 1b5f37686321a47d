"""Every operation in ``/openapi.json``, called with generated path parameters, query
strings and JSON bodies (admin key): never a 500."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.control._app import ADMIN, client_for, start_gw, stop_gw

from tollhouse.control import audit_log

_QUERY = ("page", "limit", "sort", "from", "to", "cursor", "period", "key", "severity", "role")
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner, max_size=3)
    ),
    max_leaves=8,
)
bodies = st.dictionaries(
    st.sampled_from(["name", "role", "email", "type", "config", "condition", "severity", "route_id",
                     "event_id", "timestamp", "provider", "change_id", "classification", "x"]),
    json_values,
    max_size=5,
)  # fmt: skip


async def test_no_500(tmp_path: Any) -> None:
    gw = await start_gw(f"sqlite:///{tmp_path}/fuzz.db")
    try:
        async with client_for(gw) as client:
            doc = (await client.get("/openapi.json")).json()
            ops = sorted((p, m) for p, methods in doc["paths"].items() for m in methods)

            @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
            @given(
                op=st.sampled_from(ops),
                param=st.text(min_size=1, max_size=12).filter(
                    lambda s: "/" not in s and "?" not in s and "#" not in s
                ),
                query=st.dictionaries(st.sampled_from(_QUERY), st.text(max_size=12), max_size=3),
                body=bodies,
            )
            def check(
                op: tuple[str, str], param: str, query: dict[str, str], body: dict[str, Any]
            ) -> None:
                samples.append((op, param, query, body))

            samples: list[tuple[tuple[str, str], str, dict[str, str], dict[str, Any]]] = []
            check()
            statuses: set[int] = set()
            for i, ((path, method), param, query, body) in enumerate(samples):
                url = path.replace("{id}", "default")
                for name in ("{rid}", "{memberId}", "{keyId}", "{hash}", "{author}", "{slug}"):
                    url = url.replace(name, quote(param, safe=""))
                headers = {"Authorization": f"Bearer {ADMIN}", "Idempotency-Key": f"fuzz-{i % 7}"}
                r = await client.request(
                    method.upper(), url, params=query, headers=headers,
                    json=body if method in ("post", "put", "patch") else None,
                )  # fmt: skip
                assert r.status_code < 500, (method, url, query, body, r.text)
                statuses.add(r.status_code)
            assert len(samples) >= 100 and {200, 404, 422} <= statuses, statuses
            await audit_log.audit_of(gw).stop()
    finally:
        await stop_gw(gw)
