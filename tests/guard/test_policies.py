"""PolicySet: config rules for every workspace, a workspace's rules for its own, swapped in
atomically, verdicts."""

from __future__ import annotations

import pytest

from tollhouse.errors import ConfigError
from tollhouse.guard.policies import NO_VIOLATIONS, PolicySet, config_rules

RULES = [
    {"id": "no-secrets", "keywords": ["project falcon"]},
    {"id": "soft", "action": "warn", "regex": [r"\bpassword\b"]},
    {"id": "models", "models_deny": ["gpt-3*"]},
    {"id": "size", "max_tokens": 100},
]


def test_verdicts_by_action() -> None:
    ps = PolicySet.from_config(RULES)
    rules = ps.of("default")
    assert rules.needs_tokens and not rules.empty
    v = rules.check("tell me about Project Falcon and the password", "gpt-4o", 10)
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
    assert rules.check("hello", "gpt-4o", 10).allowed
    assert not rules.check("hello", "gpt-3.5-turbo", 10).allowed
    assert [m.kind for m in rules.check("hello", "gpt-4o", 101).blocks] == ["size"]


def test_config_shapes() -> None:
    assert config_rules(None) == []
    assert config_rules({"rules": RULES[:1]}) == RULES[:1]
    with pytest.raises(ConfigError):
        config_rules("nope")
    with pytest.raises(ConfigError, match="bad"):
        PolicySet.from_config([{"id": "bad", "regex": ["(?=x)"]}])
    assert PolicySet.from_config(None).of("default").empty


def test_workspace_rules_replace_atomically() -> None:
    ps = PolicySet.from_config(RULES[:1])
    ps.replace_workspace("default", [{"id": "ws-1", "keywords": ["internal only"]}])
    assert not ps.of("default").check("INTERNAL ONLY data", None).allowed
    with pytest.raises(ConfigError):
        ps.replace_workspace("default", [{"id": "ws-2", "regex": ["("]}])
    assert not ps.of("default").check("internal only", None).allowed  # the old rules hold
    ps.replace_workspace("default", [])
    assert ps.of("default").check("internal only", None).allowed
    assert [r["id"] for r in ps.rules_of("default")] == ["no-secrets"]


def test_workspace_rules_apply_to_their_workspace_only() -> None:
    ps = PolicySet.from_config(RULES[:1])
    a = [{"id": "a-1", "keywords": ["heron"]}]
    b = [{"id": "b-1", "action": "warn", "keywords": ["heron"]}, {"id": "b-2", "max_tokens": 5}]
    assert ps.replace_workspaces({"A": a, "B": b}) == {}
    assert [m.rule_id for m in ps.of("A").check("heron", None).blocks] == ["a-1"]
    assert ps.of("B").check("heron", None).allowed
    assert [m.rule_id for m in ps.of("B").check("heron", None).warns] == ["b-1"]
    assert ps.of("C").check("heron", None) is NO_VIOLATIONS  # no rules: config only
    for ws in ("A", "B", "C"):  # the config's rules apply to every workspace, first
        assert [m.rule_id for m in ps.of(ws).check("project falcon", None).blocks] == ["no-secrets"]
    assert ps.of("B").needs_tokens and not ps.of("A").needs_tokens
    assert [r["id"] for r in ps.rules_of("B")] == ["no-secrets", "b-1", "b-2"]
    # a reload with the same rules keeps the compiled matchers
    a_rules = ps.of("A")
    assert ps.replace_workspaces({"A": list(a), "B": list(b)}) == {}
    assert ps.of("A") is a_rules and ps.of("B") is not ps.of("A")
    # a workspace whose rules do not compile keeps its old ones; the others move on
    failed = ps.replace_workspaces({"A": [{"id": "a-2", "regex": ["("]}], "C": a})
    assert list(failed) == ["A"] and "a-2" in failed["A"]
    assert ps.of("A") is a_rules
    assert not ps.of("C").check("heron", None).allowed
    assert ps.of("B").check("heron", None).allowed and not ps.of("B").check("heron", None).warns
    assert ps.replace_workspaces({}) == {} and not ps.has_workspaces
    assert ps.of("A").check("heron", None).allowed
