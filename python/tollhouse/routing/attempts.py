"""The upstream-call stage with retries, fallbacks and breakers (the pipeline's glue).

``run`` tries the plan's deployments in order.  On a retryable failure (connection
error, timeout, 408, 429, 5xx) it retries the same deployment after a full-jitter
backoff (or the upstream's ``Retry-After``) while the request's retry budget allows,
then moves on to the next deployment; any other upstream answer (400, 401, 403, 404,
422, ...) is final.  A deployment whose breaker is open is skipped without a call.
``ex.route`` always names the deployment of the current try (``x-gate-provider`` and
the spend row then name the one that answered) and ``ex.attempts`` counts tries.

``open_stream`` makes a stream fail over only before its first byte: it opens the
upstream stream and waits for the first chunk inside the try.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, TypeVar

from tollhouse.errors import ProviderError, TollhouseError
from tollhouse.gateway import Gateway
from tollhouse.providers import Call
from tollhouse.proxy.pipeline import Exchange, Route, key_allows
from tollhouse.routing.registry import Target
from tollhouse.routing.retry import RetryBudget, retryable

log = logging.getLogger("tollhouse.routing")
T = TypeVar("T")
ROUTING_FIELDS = ("models", "provider")


def make_call(body: Mapping[str, Any], raw: bytes | None, target: Target) -> Call:
    """The upstream request for one try: the client's bytes when nothing changes, else
    a copy without the gateway-only fields and with the deployment's model name."""
    if any(k in body for k in ROUTING_FIELDS):
        copy = {k: v for k, v in body.items() if k not in ROUTING_FIELDS}
        raw = None
    else:
        copy = dict(body)
    call = Call(copy, raw, target.upstream_model)
    if copy.get("model") != target.upstream_model:
        call.set("model", target.upstream_model)
    return call


def route_of(gw: Gateway, target: Target) -> Route:
    return Route(target.model, gw.providers[target.provider], target.upstream_model)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, TollhouseError):
        return exc.message[:200]
    return type(exc).__name__


async def run(
    gw: Gateway,
    ex: Exchange,
    plan: list[Target],
    op: Callable[[Route, Target], Awaitable[T]],
) -> T:
    """The first successful answer of the plan's deployments (see the module doc)."""
    router = gw.router
    budget = RetryBudget(router.retry, rng=router.rng)
    last: BaseException | None = None
    for target in plan:
        breaker = router.breaker(target)
        tries = 0
        while budget.can_try():
            if not breaker.allow():
                if last is None:
                    last = ProviderError(f"deployment {target.id!r} is unavailable (circuit open)")
                break
            budget.attempts += 1
            ex.attempts = budget.attempts
            route = ex.route = route_of(gw, target)
            t = time.perf_counter()
            try:
                result = await op(route, target)
            except TollhouseError as exc:
                elapsed = time.perf_counter() - t
                ex.upstream_s += elapsed
                if not retryable(exc):
                    # The upstream answered (a 4xx about this request): it is alive.
                    router.record_success(target, None)
                    raise
                router.record_failure(target, _reason(exc))
                last = exc
                delay = budget.delay(tries, exc) if tries < router.retry.retries else None
                if delay is None:
                    break
                if delay > 0:
                    await asyncio.sleep(delay)
                    budget.spend(delay)
                tries += 1
                continue
            except BaseException:
                ex.upstream_s += time.perf_counter() - t
                breaker.release()  # cancelled (client gone) or a bug: no verdict
                raise
            elapsed = time.perf_counter() - t
            ex.upstream_s += elapsed
            router.record_success(target, elapsed)
            return result
        if not budget.can_try():
            break
    if last is None:
        last = ProviderError("no deployment could be tried (retry budget spent)")
    raise last


async def open_stream(
    gw: Gateway, route: Route, target: Target, call: Call
) -> AsyncIterator[bytes]:
    """Open an upstream stream and read its first chunk (a try ends at the first byte).
    The stream comes back whole; a failure after that first byte goes to the
    deployment's breaker (``record_failure``) and on to the caller."""
    chunks = await route.provider.chat_stream(call)
    try:
        first = await chunks.__anext__()
    except StopAsyncIteration:
        await aclose(chunks)
        raise ProviderError(
            f"provider {route.provider.name!r} ended the stream before sending anything"
        ) from None
    except BaseException:
        await aclose(chunks)
        raise
    return prepend(first, chunks, lambda exc: gw.router.record_failure(target, str(exc)))


async def aclose(chunks: AsyncIterator[bytes]) -> None:
    """Close an upstream stream (drops its connection when unfinished)."""
    close = getattr(chunks, "aclose", None)
    if close is not None:
        try:
            await close()
        except Exception as exc:  # a failing upstream being closed changes nothing
            log.debug("closing upstream stream: %s", exc)


async def prepend(
    first: bytes, rest: AsyncIterator[bytes], on_error: Callable[[BaseException], None]
) -> AsyncIterator[bytes]:
    """The stream with its already-read first chunk put back in front; an upstream
    failure after it is reported to ``on_error`` (the breaker) and raised on (the client
    then gets an in-band SSE error event)."""
    try:
        yield first
        async for chunk in rest:
            yield chunk
    except TollhouseError as exc:
        on_error(exc)
        raise
    finally:
        await aclose(rest)


def plan(gw: Gateway, ex: Exchange, body: Mapping[str, Any]) -> list[Target]:
    """The deployments to try for the resolved model (``ex.route``), its ``models``
    fallbacks and configured fallbacks, filtered by what the key may use."""
    key, route = ex.key, ex.route
    assert key is not None and route is not None  # noqa: S101 - set by resolve

    def allowed(name: str) -> bool:
        config = gw.router.registry.lookup(name)
        return key_allows(key, name) or (config is not None and key_allows(key, config.name))

    return gw.router.plan(route.model, body, allowed)
