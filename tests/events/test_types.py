from datetime import UTC, datetime

import orjson
import pytest

from tollhouse.errors import InvalidRequest
from tollhouse.events.types import EVENT_TYPES, Event, usd


def test_the_design_events_and_the_alert_pair() -> None:
    assert EVENT_TYPES == (
        "budget.alert",
        "budget.exceeded",
        "session.killed",
        "loop.detected",
        "policy.blocked",
        "audit.flagged",
        "provider.failover",
        "incident.opened",
        "alert.fired",
        "alert.resolved",
    )


def test_payload_has_the_anuragate_shape_plus_an_id() -> None:
    ev = Event(
        type="budget.alert",
        data={"currentSpend": usd(4_120_000), "dailyLimit": usd(5_000_000), "percentUsed": 82.4},
        created_at=datetime(2026, 2, 18, 10, 30, 0, 123456, tzinfo=UTC),
        team_id="org_abc123",
        key_name="my-key",
    )
    assert ev.id.startswith("evt_") and len(ev.id) == 4 + 24
    assert orjson.loads(ev.body()) == {
        "id": ev.id,
        "event": "budget.alert",
        "teamId": "org_abc123",
        "keyName": "my-key",
        "data": {"currentSpend": 4.12, "dailyLimit": 5.0, "percentUsed": 82.4},
        "timestamp": "2026-02-18T10:30:00.123Z",
    }
    assert Event.from_payload(ev.payload()).payload() == ev.payload()


def test_ids_are_unique() -> None:
    assert len({Event(type="loop.detected", data={}).id for _ in range(1000)}) == 1000


@pytest.mark.parametrize(
    "kwargs",
    [
        {"type": "budget.almost", "data": {}},
        {"type": "budget.alert", "data": {}, "id": "abc"},
        {"type": "budget.alert", "data": {}, "created_at": datetime(2026, 1, 1)},
    ],
)
def test_bad_events_are_typed_errors(kwargs: dict[str, object]) -> None:
    with pytest.raises(InvalidRequest):
        Event(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "payload",
    [{}, {"event": "budget.alert", "id": "evt_1", "data": [], "timestamp": "2026-01-01T00:00Z"}],
)
def test_from_payload_rejects_malformed(payload: dict[str, object]) -> None:
    with pytest.raises(InvalidRequest):
        Event.from_payload(payload)
