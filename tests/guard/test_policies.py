"""PolicySet: config rules, workspace rules swapped in atomically, verdicts."""

from __future__ import annotations

import pytest

from tollhouse.errors import ConfigError
from tollhouse.guard.policies import PolicySet, config_rules

RULES = [
    {"id": "no-secrets", "keywords": ["project falcon"]},
    {"id": "soft", "action": "warn", "regex": [r"\bpassword\b"]},
    {"id": "models", "models_deny": ["gpt-3*"]},
    {"id": "size", "max_tokens": 100},
]


def test_verdicts_by_action() -> None:
    ps = PolicySet.from_config(RULES)
    assert ps.needs_tokens and not ps.empty
    v = ps.check("tell me about Project Falcon and the password", "gpt-4o", 10)
    assert not v.allowed
    assert [m.rule_id for m in v.blocks] == ["no-secrets"] and [m.rule_id for m in v.warns] == [
        "soft"
    ]
    assert v.violations()[0] == {
        "ruleId": "no-secrets",
        "action": "block",
        "kind": "keyword",
        "detail": "project falcon",
    }
    assert ps.check("hello", "gpt-4o", 10).allowed
    assert not ps.check("hello", "gpt-3.5-turbo", 10).allowed
    assert [m.kind for m in ps.check("hello", "gpt-4o", 101).blocks] == ["size"]


def test_config_shapes() -> None:
    assert config_rules(None) == []
    assert config_rules({"rules": RULES[:1]}) == RULES[:1]
    with pytest.raises(ConfigError):
        config_rules("nope")
    with pytest.raises(ConfigError, match="bad"):
        PolicySet.from_config([{"id": "bad", "regex": ["(?=x)"]}])
    assert PolicySet.from_config(None).empty


def test_workspace_rules_replace_atomically() -> None:
    ps = PolicySet.from_config(RULES[:1])
    ps.replace_workspace("default", [{"id": "ws-1", "keywords": ["internal only"]}])
    assert not ps.check("INTERNAL ONLY data", None).allowed
    with pytest.raises(ConfigError):
        ps.replace_workspace("default", [{"id": "ws-2", "regex": ["("]}])
    assert not ps.check("internal only", None).allowed  # the old rules still hold
    ps.replace_workspace("default", [])
    assert ps.check("internal only", None).allowed
    assert [r["id"] for r in ps.all_rules()] == ["no-secrets"]
