"""Schemathesis against a running ``tollhouse serve``: every operation of ``/openapi.json``
with generated schema-valid and schema-invalid inputs (admin key), derandomised and
bounded.

Every check schemathesis has runs on each answer: never a 5xx, the status code, content
type, headers and body as documented, schema-valid input accepted (not 400/422) and
schema-invalid input refused, authentication enforced.  Workspace paths use the default
workspace, so calls reach the routes' validation instead of stopping at 404.

A few rules JSON Schema cannot state (a date within the last 30 days, an expiry in the
future, ids that must name existing objects, a regex the Rust engine compiles, from <=
to) are met by ``valid`` before a schema-valid case is sent; nothing else is adjusted.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.config import SchemathesisConfig
from schemathesis.core.failures import Failure, FailureGroup
from tests.support.gateway import GatewayProcess, write_config

from tollhouse.control._validation import parse_time
from tollhouse.errors import ValidationError

ADMIN = "adm_" + "schemathesis" * 3
MAX_EXAMPLES = 8

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    directory: Path = tmp_path_factory.mktemp("schemathesis")
    deployments = [{"provider": p, "model": "mock-1"} for p in ("mock", "mock2")]
    config = {
        "store": f"sqlite:///{directory / 'tollhouse.db'}",
        "admin_key": ADMIN,
        "control": {"rate_limit": {"requests": 1_000_000}},
        "providers": {"mock": {"kind": "mock"}, "mock2": {"kind": "mock"}},
        "models": {"mock-1": {"deployments": deployments}},
    }
    with GatewayProcess(write_config(directory, config), directory) as gw:
        yield gw


@pytest.fixture(scope="module")
def api(gateway: GatewayProcess) -> Any:
    config = SchemathesisConfig.from_dict(
        {
            "base-url": gateway.base_url,
            "auth": {"openapi": {"adminKey": {"bearer": ADMIN}}},
            "generation": {"max-examples": MAX_EXAMPLES, "deterministic": True},
        }
    )
    return schemathesis.openapi.from_url(f"{gateway.base_url}/openapi.json", config=config)


def _seconds(raw: Any) -> float:
    try:
        return parse_time(str(raw), "t")
    except ValidationError:
        return 0.0


def valid(case: Any) -> None:
    """Meet the rules the schema cannot state (schema-valid cases only)."""
    op, query, body = case.operation.label, case.query, case.body
    if op == "GET /v1/activity" and query and "date" in query:
        query["date"] = datetime.now(UTC).strftime("%Y-%m-%d")
    if op in ("GET /v1/audit/logs", "GET /v1/metering/usage") and query:
        if query.get("period"):  # period, or from/to
            query.pop("from", None), query.pop("to", None)
        times = sorted((query[k] for k in ("from", "to") if query.get(k)), key=_seconds)
        if times:  # from <= to (and both: the default 'from' may be after a given 'to')
            query["from"], query["to"] = times[0], times[-1]
    if not isinstance(body, dict):
        return
    if op.endswith("/v1/keys") or op.endswith("/v1/keys/{hash}"):
        if body.get("expires_at") is not None:
            body["expires_at"] = "2099-01-01T00:00:00Z"
    if "/alert-rules" in op and "delivery_targets" in body:
        body["delivery_targets"] = []
    if "/policies" in op and body.get("regex") is not None:
        body["regex"] = ["[a-z]+"]
    if op == "POST /v1/workspaces/{workspace}/failover-policies":
        body.update(route_id="mock-1", primary_endpoint="mock", fallback_endpoints=["mock2"])


def exercise(
    op: Any, mode: GenerationMode, session: requests.Session, statuses: set[int]
) -> dict[str, str]:
    """Send ``MAX_EXAMPLES`` generated cases of one operation; the failures by kind."""
    fixed = {}
    if op.path.startswith("/v1/workspaces/{"):
        fixed = {op.path.split("{")[1].split("}")[0]: "default"}
    failures: dict[str, str] = {}

    @given(case=op.as_strategy(mode, path_parameters=fixed))
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        phases=(Phase.explicit, Phase.generate),
    )
    def run(case: Any) -> None:
        if mode is GenerationMode.POSITIVE:
            valid(case)
        try:
            statuses.add(case.call_and_validate(session=session).status_code)
        except (Failure, FailureGroup) as exc:  # collected, reported by the test
            codes = sorted(set(re.findall(r"\n- (ST\d+)", str(exc))))
            failures.setdefault(f"{op.label} [{mode.value}] {codes}", str(exc))

    try:
        run()
    except Unsatisfiable:  # nothing in this operation can be made invalid
        assert mode is GenerationMode.NEGATIVE, op.label
    return failures


def test_every_operation(api: Any) -> None:
    failures: dict[str, str] = {}
    statuses: set[int] = set()
    operations = [result.ok() for result in api.get_all_operations()]
    with requests.Session() as session:
        for op in operations:
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                failures.update(exercise(op, mode, session, statuses))
    assert not failures, "\n\n".join(f"{k}: {v}" for k, v in sorted(failures.items()))
    # Every operation ran, and the calls got past validation as well as into it.
    assert len(operations) > 60
    assert {200, 201, 202, 400, 404, 422} <= statuses, statuses
