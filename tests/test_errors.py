import orjson
import pytest

from tollhouse import errors

TABLE = [
    (errors.InvalidKey, 401, "invalid_key"),
    (errors.ModelNotAllowed, 403, "model_not_allowed"),
    (errors.PolicyBlocked, 403, "policy_blocked"),
    (errors.ModelNotFound, 404, "model_not_found"),
    (errors.RateLimited, 429, "rate_limited"),
    (errors.BudgetExceeded, 429, "budget_exceeded"),
    (errors.SessionKilled, 429, "session_killed"),
    (errors.AuditBlocked, 451, "audit_blocked"),
    (errors.ProviderError, 502, "provider_error"),
    (errors.NoProviderKey, 503, "no_provider_key"),
    (errors.InvalidRequest, 400, "invalid_request"),
    (errors.PayloadTooLarge, 413, "payload_too_large"),
]


@pytest.mark.parametrize(("cls", "status", "code"), TABLE)
def test_status_and_code_follow_the_contract(
    cls: type[errors.TollhouseError], status: int, code: str
) -> None:
    err = cls("nope")
    assert err.status == status
    assert orjson.loads(err.body_bytes()) == {
        "error": {"message": "nope", "type": "gate_error", "code": code}
    }


def test_validation_error_lists_fields() -> None:
    err = errors.ValidationError("bad body", {"name": "required"})
    assert err.status == 422
    assert err.body()["error"]["fields"] == {"name": "required"}


def test_errors_subclass_builtins() -> None:
    assert issubclass(errors.ConfigError, ValueError)
    assert issubclass(errors.InvalidRequest, ValueError)
    assert issubclass(errors.ProviderError, ConnectionError)
