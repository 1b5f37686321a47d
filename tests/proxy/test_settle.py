"""settle_shielded: a settle runs to its end inline when it can, in a shielded task
when it must wait, and neither a cancelled caller nor its own error escapes."""

from __future__ import annotations

import asyncio
import logging

import pytest

from tollhouse.proxy._settle import settle_shielded


async def test_a_settle_that_never_waits_runs_inline_without_a_task() -> None:
    done: list[str] = []

    async def settle() -> None:
        done.append("settled")

    before = len(asyncio.all_tasks())
    await settle_shielded(settle(), "settle")
    assert done == ["settled"]
    assert len(asyncio.all_tasks()) == before


async def test_a_waiting_settle_gets_results_errors_and_yields_back() -> None:
    loop = asyncio.get_running_loop()
    first: asyncio.Future[int] = loop.create_future()
    failing: asyncio.Future[int] = loop.create_future()
    seen: list[object] = []

    async def settle() -> None:
        seen.append(await first)  # a result sent back in
        await asyncio.sleep(0)  # a bare yield
        try:
            await failing
        except ValueError as exc:  # an exception thrown back in
            seen.append(str(exc))
        seen.append("end")

    loop.call_soon(first.set_result, 7)
    loop.call_later(0.01, failing.set_exception, ValueError("boom"))
    await settle_shielded(settle(), "settle")
    assert seen == [7, "boom", "end"]


async def test_a_cancelled_caller_leaves_the_settle_running_to_its_end() -> None:
    gate = asyncio.Event()
    done: list[str] = []

    async def settle() -> None:
        await gate.wait()
        done.append("settled")

    caller = asyncio.ensure_future(settle_shielded(settle(), "settle"))
    await asyncio.sleep(0.01)
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    assert done == []
    gate.set()
    for _ in range(100):
        if done:
            break
        await asyncio.sleep(0.001)
    assert done == ["settled"]


@pytest.mark.parametrize("waits", [False, True])
async def test_a_failing_settle_is_logged_not_raised(
    waits: bool, caplog: pytest.LogCaptureFixture
) -> None:
    async def settle() -> None:
        if waits:
            await asyncio.sleep(0.001)
        raise RuntimeError("counters said no")

    with caplog.at_level(logging.ERROR, logger="tollhouse.proxy"):
        await settle_shielded(settle(), "settling reservation")
    assert "settling reservation failed: counters said no" in caplog.text
