"""Run a request's settle step to completion even when the request is cancelled.

A settle must never be cut short (a reservation would stay held until it expires), so
it used to run as its own task behind ``asyncio.shield`` — a task, a shield future and
two extra event-loop turns per settle, per request.  With the in-process counters a
settle never suspends at all, so ``settle_shielded`` first runs the coroutine inline,
up to its first suspension: when it finishes there (the common case), no task is made.
Only a settle that really waits (Redis) continues in a task, shielded as before: a
cancellation of the request leaves it running to the end in the background.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Generator
from typing import Any

log = logging.getLogger("tollhouse.proxy")

_RUNNING: set[asyncio.Future[Any]] = set()  # settles left running by a cancelled request


class _Resume:
    """Awaitable that goes on driving a coroutine already run up to a suspension:
    what it yielded goes to the driving task, and the task's answers go back in."""

    __slots__ = ("_coro", "_yielded")

    def __init__(self, coro: Coroutine[Any, Any, Any], yielded: Any) -> None:
        self._coro = coro
        self._yielded = yielded

    def __await__(self) -> Generator[Any, Any, Any]:
        coro, yielded = self._coro, self._yielded
        while True:
            try:
                sent = yield yielded
            except BaseException as exc:  # noqa: BLE001 - thrown in by the task: pass it on
                try:
                    yielded = coro.throw(exc)
                except StopIteration as stop:
                    return stop.value
            else:
                try:
                    yielded = coro.send(sent)
                except StopIteration as stop:
                    return stop.value


async def _finish(resume: _Resume) -> None:
    await resume


async def settle_shielded(coro: Coroutine[Any, Any, None], what: str) -> None:
    """Run ``coro`` to its end whatever happens to the caller; an exception it raises
    is logged (a settle must never turn a served answer into an error)."""
    try:
        yielded = coro.send(None)
    except StopIteration:
        return
    except Exception as exc:
        log.error("%s failed: %s", what, exc)
        return
    task = asyncio.ensure_future(_finish(_Resume(coro, yielded)))
    _RUNNING.add(task)
    task.add_done_callback(_RUNNING.discard)
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        raise  # the shielded settle still completes in the background
    except Exception as exc:
        log.error("%s failed: %s", what, exc)
