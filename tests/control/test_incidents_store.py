"""The incident book on both backends: open_or_join opens once per source while the
incident is open (also under concurrent openers from several store connections), joins
append to the timeline, a resolved incident frees its source, transitions are checked."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tollhouse.control.incidents_book import IncidentBook, book_for
from tollhouse.errors import Conflict, NotFound
from tollhouse.events.types import Event
from tollhouse.store import SqlStore, open_store


@pytest.fixture(params=["sqlite", "postgres"])
async def stores(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[list[SqlStore]]:
    """Three store objects on one database (three workers or replicas)."""
    url = (
        f"sqlite:///{tmp_path}/inc.db"
        if request.param == "sqlite"
        else request.getfixturevalue("postgres_url")
    )
    opened: list[SqlStore] = []
    try:
        for _ in range(3):
            s = open_store(url)
            assert isinstance(s, SqlStore)
            await s.open()
            opened.append(s)
        yield opened
    finally:
        for s in opened:
            await s.close()


async def open_rule(book: IncidentBook, ref: str = "rule_1", ws: str = "default") -> str:
    joined = await book.open_or_join(
        ws,
        source_kind="alert_rule",
        source_ref=ref,
        title="High latency",
        severity="high",
        route="prod-chat",
        provider="openai",
        event={"metric": "latency", "value": 4200},
    )
    return joined.incident_id


async def test_concurrent_openers_make_one_incident_and_one_event(stores: list[SqlStore]) -> None:
    sent: list[Event] = []
    books = [IncidentBook(s, emit=sent.append) for s in stores]
    results = await asyncio.gather(
        *(
            b.open_or_join(
                "default",
                source_kind="breaker",
                source_ref="a/m-a",
                title="Circuit breaker open: a/m-a",
                severity="high",
                route="chat",
            )
            for b in books * 4
        )
    )
    assert len({r.incident_id for r in results}) == 1
    assert sum(r.opened for r in results) == 1
    assert [e.type for e in sent] == ["incident.opened"]
    assert sent[0].data["incident_id"] == results[0].incident_id
    assert sent[0].data["source"] == {"kind": "breaker", "ref": "a/m-a"}
    rows = await stores[0]._fetch("SELECT COUNT(*) FROM incidents")
    assert rows[0][0] == 1
    kinds = [e.kind for e in await books[0].timeline(results[0].incident_id)]
    assert kinds.count("opened") == 1 and kinds.count("joined") == 11


async def test_join_until_resolved_then_a_new_incident(stores: list[SqlStore]) -> None:
    book = book_for(stores[0])
    first = await open_rule(book)
    assert await open_rule(book) == first
    assert await open_rule(book, ws="other") != first  # another workspace: its own
    assert await open_rule(book, ref="rule_2") != first  # another source: its own
    timeline = await book.timeline(first)
    assert [e.kind for e in timeline] == ["opened", "joined"]
    assert timeline[0].data == {"event": {"metric": "latency", "value": 4200}}
    acked = await book.move("default", first, "acknowledged", actor="admin")
    assert acked.status == "acknowledged" and acked.acknowledged_at is not None
    assert await open_rule(book) == first  # acknowledged still joins
    assert (
        await book.append_to_source(
            "default", source_kind="alert_rule", source_ref="rule_1", kind="resolved"
        )
        == first
    )
    done = await book.move("default", first, "resolved", actor="admin")
    assert done.status == "resolved" and done.resolved_at is not None
    assert (
        await book.append_to_source(
            "default", source_kind="alert_rule", source_ref="rule_1", kind="resolved"
        )
        is None
    )
    second = await open_rule(book)
    assert second != first
    kinds = [e.kind for e in await book.timeline(first)]
    assert kinds == ["opened", "joined", "acknowledged", "joined", "resolved", "resolved"]


async def test_transitions_only_move_forward(stores: list[SqlStore]) -> None:
    book = book_for(stores[0])
    iid = await open_rule(book)
    with pytest.raises(NotFound):
        await book.move("other", iid, "acknowledged", actor="admin")  # not its workspace
    with pytest.raises(Conflict):
        await book.move("default", iid, "open", actor="admin")
    await book.move("default", iid, "resolved", actor="admin")  # open -> resolved is allowed
    for status in ("open", "acknowledged", "resolved"):
        with pytest.raises(Conflict):
            await book.move("default", iid, status, actor="admin")


async def test_racing_transitions_move_once(stores: list[SqlStore]) -> None:
    iid = await open_rule(book_for(stores[0]))
    books = [IncidentBook(s) for s in stores]
    outcomes = await asyncio.gather(
        *(b.move("default", iid, "acknowledged", actor="x") for b in books * 3),
        return_exceptions=True,
    )
    assert sum(not isinstance(o, BaseException) for o in outcomes) == 1
    assert all(isinstance(o, Conflict) for o in outcomes if isinstance(o, BaseException))
    kinds = [e.kind for e in await books[0].timeline(iid)]
    assert kinds == ["opened", "acknowledged"]


async def test_bad_arguments_are_refused(stores: list[SqlStore]) -> None:
    book = book_for(stores[0])
    with pytest.raises(ValueError, match="source_kind"):
        await book.open_or_join(
            "default", source_kind="x", source_ref="r", title="t", severity="low"
        )
    with pytest.raises(ValueError, match="severity"):
        await book.open_or_join(
            "default", source_kind="manual", source_ref="r", title="t", severity="urgent"
        )
