from typing import Any

import pytest

from tollhouse.config import Secret, parse_config
from tollhouse.errors import ConfigError
from tollhouse.events.config import parse_webhooks

ENV = {
    "HOOK_SECRET": "whsec_c2VjcmV0",
    "SLACK_URL": "https://hooks.slack.com/services/T0/B0/abcdefghijklmnopqrstuvwx",
}


def test_parses_endpoints_filters_and_allow_list() -> None:
    cfg = parse_webhooks(
        {
            "endpoints": [
                {
                    "url": "https://hooks.example.com/gate",
                    "secret": "env:HOOK_SECRET",
                    "events": ["budget.alert", "budget.exceeded"],
                },
                {"url": "env:SLACK_URL", "type": "slack", "name": "ops"},
            ],
            "allow_private": ["10.20.0.0/16", "hooks.internal"],
            "max_attempts": 3,
        },
        env=ENV,
    )
    hook, slack = cfg.endpoints
    assert hook.secret == Secret("whsec_c2VjcmV0")
    assert hook.events == frozenset({"budget.alert", "budget.exceeded"})
    assert hook.wants("budget.alert") and not hook.wants("policy.blocked")
    assert slack.type == "slack" and slack.secret is None and slack.wants("policy.blocked")
    assert slack.url == ENV["SLACK_URL"] and slack.name == "ops"
    assert "abcdefghijkl" not in repr(slack) and "c2VjcmV0" not in repr(hook)
    assert cfg.max_attempts == 3 and cfg.max_queue == 10_000
    assert cfg.guard().address_allowed("x", "10.20.1.1")


def test_works_on_the_section_of_the_main_config() -> None:
    raw = {"webhooks": {"endpoints": [{"url": "https://h.example/x", "secret": "env:S"}]}}
    cfg = parse_webhooks(parse_config(raw, env={"S": "abc"}).section("webhooks"), env={})
    assert cfg.endpoints[0].secret == Secret("abc")
    assert parse_webhooks(None).endpoints == ()


BAD: list[tuple[Any, str]] = [
    ([], r"^webhooks: expected a mapping"),
    ({"endpoint": []}, r"^webhooks\.endpoint: unknown key"),
    ({"endpoints": {}}, r"^webhooks\.endpoints: expected a list"),
    ({"endpoints": ["x"]}, r"^webhooks\.endpoints\[0\]: expected a mapping"),
    ({"endpoints": [{"url": "ftp://h/x", "secret": "s"}]}, r"endpoints\[0\]\.url: scheme"),
    ({"endpoints": [{"url": "https:///x", "secret": "s"}]}, r"endpoints\[0\]\.url: missing host"),
    ({"endpoints": [{"url": "https://h:99999/", "secret": "s"}]}, r"endpoints\[0\]\.url: malf"),
    ({"endpoints": [{"url": "https://h/x"}]}, r"endpoints\[0\]\.secret: required"),
    ({"endpoints": [{"url": "https://h/x", "secret": "whsec_!!"}]}, r"endpoints\[0\]\.secret"),
    (
        {"endpoints": [{"url": "https://h/x", "secret": "s", "events": ["budget.alert", "nope"]}]},
        r"endpoints\[0\]\.events\[1\]: unknown event 'nope'",
    ),
    ({"endpoints": [{"url": "https://h/x", "secret": "s", "events": []}]}, r"\.events: expected"),
    ({"endpoints": [{"url": "https://h/x", "type": "email"}]}, r"endpoints\[0\]\.type"),
    ({"endpoints": [{"url": "https://h/x", "secret": "s", "retries": 3}]}, r"\.retries: unknown"),
    ({"endpoints": [{"url": "https://h/x", "secret": "env:MISSING"}]}, r"MISSING is not set"),
    ({"allow_private": "10.0.0.0/8"}, r"webhooks\.allow_private: expected a list"),
    ({"allow_private": ["10.0.0.0/8", "bad host"]}, r"webhooks\.allow_private\[1\]"),
    ({"max_queue": 0}, r"webhooks\.max_queue: expected a positive integer"),
    ({"timeout": "10"}, r"webhooks\.timeout: expected a positive number"),
]


@pytest.mark.parametrize(("raw", "match"), BAD)
def test_bad_config_names_the_key(raw: Any, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        parse_webhooks(raw, env={})
