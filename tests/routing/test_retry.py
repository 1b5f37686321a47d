"""Which failures are retried and how long a request waits (in process)."""

from __future__ import annotations

import pytest

from tollhouse.errors import InvalidRequest, ProviderError, UpstreamHTTPError
from tollhouse.routing.retry import RetryBudget, RetryConfig, full_jitter, retry_after, retryable


@pytest.mark.parametrize("status", [408, 429])
def test_retryable_upstream_statuses(status: int) -> None:
    assert retryable(UpstreamHTTPError(status, b"{}"))


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 413, 422])
def test_client_errors_are_never_retried(status: int) -> None:
    assert not retryable(UpstreamHTTPError(status, b"{}"))


def test_provider_errors_are_retried_gateway_errors_are_not() -> None:
    assert retryable(ProviderError("provider 'a' answered 503"))
    assert not retryable(InvalidRequest("bad"))
    assert not retryable(ValueError("bug"))


def test_full_jitter_bounds() -> None:
    assert full_jitter(0, 0.1, 2.0, lambda: 1.0) == pytest.approx(0.1)
    assert full_jitter(3, 0.1, 2.0, lambda: 1.0) == pytest.approx(0.8)
    assert full_jitter(10, 0.1, 2.0, lambda: 1.0) == 2.0  # capped
    assert full_jitter(10, 0.1, 2.0, lambda: 0.0) == 0.0
    assert full_jitter(10_000, 0.1, 2.0, lambda: 0.5) == 1.0  # no overflow


def test_retry_after_is_read_from_the_error() -> None:
    exc = UpstreamHTTPError(429, b"{}")
    exc.headers["retry-after"] = "3"
    assert retry_after(exc) == 3.0
    assert (
        retry_after(ProviderError("x", headers={"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}))
        == 0.0
    )
    assert retry_after(ProviderError("x")) is None


def test_budget_honours_retry_after_and_its_limits() -> None:
    cfg = RetryConfig(max_attempts=3, budget_s=1.0, max_retry_after_s=0.5)
    budget = RetryBudget(cfg, rng=lambda: 1.0)
    hinted = UpstreamHTTPError(429, b"{}")
    hinted.headers["retry-after"] = "0"
    assert budget.delay(0, hinted) == 0.0
    hinted.headers["retry-after"] = "2"  # longer than max_retry_after: move on
    assert budget.delay(0, hinted) is None
    plain = ProviderError("503")
    assert budget.delay(0, plain) == pytest.approx(0.1)
    budget.spend(0.95)
    assert budget.delay(1, plain) is None  # 0.2 s would overrun the budget
    budget.attempts = 3
    assert not budget.can_try()
    assert budget.delay(0, plain) is None
