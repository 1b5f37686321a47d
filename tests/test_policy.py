"""The policy matcher: keywords, regexes, model globs, size limits, and bad rules."""

from __future__ import annotations

import fnmatch
import re
import threading
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tollhouse.errors import ConfigError
from tollhouse.native import PolicyMatcher


def ids(matcher: PolicyMatcher, text: str, **kw: Any) -> list[str]:
    return [m.rule_id for m in matcher.check(text, **kw)]


def test_keyword_match_fields() -> None:
    matcher = PolicyMatcher([{"id": "exfil", "action": "warn", "keywords": ["Internal Only"]}])
    (match,) = matcher.check("this doc is INTERNAL ONLY, do not share")
    assert match.rule_id == "exfil"
    assert match.action == "warn"
    assert match.kind == "keyword"
    assert match.detail == "Internal Only"
    assert matcher.rule_count() == 1
    assert matcher.check("nothing to see") == []


def test_action_defaults_to_block() -> None:
    matcher = PolicyMatcher([{"id": "r", "keywords": ["x"]}])
    assert matcher.check("x")[0].action == "block"


def test_case_sensitive_and_whole_word() -> None:
    matcher = PolicyMatcher(
        [
            {"id": "cs", "keywords": ["NDA"], "case_sensitive": True},
            {"id": "ww", "keywords": ["kill"], "whole_word": True},
        ]
    )
    assert ids(matcher, "sign the nda") == []
    assert ids(matcher, "sign the NDA") == ["cs"]
    assert ids(matcher, "skill and killer") == []
    assert ids(matcher, "kill -9 the NDA process") == ["cs", "ww"]
    assert ids(matcher, "KILL.") == ["ww"]


def test_results_in_rule_order_one_per_rule() -> None:
    matcher = PolicyMatcher(
        [
            {"id": "third", "keywords": ["gamma"]},
            {"id": "first", "keywords": ["alpha", "beta"], "regex": ["alp.a"]},
            {"id": "second", "keywords": ["beta"]},
        ]
    )
    matches = matcher.check("beta alpha gamma alpha beta")
    assert [m.rule_id for m in matches] == ["third", "first", "second"]
    assert matches[1].kind == "keyword"
    assert matches[1].detail == "beta"  # the first keyword of that rule in the text


def test_regex_detail_is_the_pattern_not_the_text() -> None:
    pattern = r"\b\d{3}-\d{2}-\d{4}\b"
    matcher = PolicyMatcher([{"id": "ssn", "regex": [pattern]}])
    (match,) = matcher.check("my number is 123-45-6789 ok")
    assert match.kind == "regex"
    assert match.detail == pattern
    assert "123" not in match.detail


def test_model_globs() -> None:
    matcher = PolicyMatcher(
        [
            {"id": "allow", "models_allow": ["gpt-4o*", "claude-*"]},
            {"id": "deny", "action": "warn", "models_deny": ["*-preview"]},
        ]
    )
    assert ids(matcher, "hi", model="gpt-4o-mini") == []
    assert ids(matcher, "hi", model="claude-sonnet-4-5") == []
    assert ids(matcher, "hi", model="o3") == ["allow"]
    assert matcher.check("hi", model="o3")[0].detail == "o3"
    deny = matcher.check("hi", model="gpt-4o-audio-preview")
    assert [(m.rule_id, m.kind, m.detail) for m in deny] == [("deny", "model", "*-preview")]
    assert ids(matcher, "hi") == []  # no model given: model rules do not apply


def test_size_limits() -> None:
    matcher = PolicyMatcher([{"id": "size", "max_bytes": 10, "max_tokens": 5}])
    assert ids(matcher, "0123456789") == []
    (match,) = matcher.check("0123456789!")
    assert (match.kind, match.detail) == ("size", "max_bytes=10")
    assert matcher.check("ok", tokens=6)[0].detail == "max_tokens=5"
    assert matcher.check("ok", tokens=5) == []
    # bytes are UTF-8 bytes: four 3-byte characters exceed ten bytes
    assert ids(matcher, "€€€€") == ["size"]
    with pytest.raises(ValueError):
        matcher.check("ok", tokens=-1)


def test_unicode_keywords_fold_case() -> None:
    matcher = PolicyMatcher([{"id": "u", "keywords": ["Überweisung"], "whole_word": True}])
    assert ids(matcher, "bitte ÜBERWEISUNG prüfen") == ["u"]
    assert ids(matcher, "Überweisungen") == []


@pytest.mark.parametrize(
    ("rules", "fragment"),
    [
        ([{"id": "bad", "regex": ["(unclosed"]}], "'bad'"),
        ([{"id": "look", "regex": ["(?<=x)y"]}], "'look'"),
        ([{"id": "empty"}], "'empty'"),
        ([{"id": "act", "action": "drop", "keywords": ["x"]}], "'act'"),
        ([{"id": "typo", "keyword": ["x"]}], "'typo'"),
        ([{"id": "kw", "keywords": "x"}], "'kw'"),
        ([{"id": "kw2", "keywords": ["x", 3]}], "'kw2'"),
        ([{"id": "kw3", "keywords": [""]}], "'kw3'"),
        ([{"id": "flag", "keywords": ["x"], "whole_word": "yes"}], "'flag'"),
        ([{"id": "neg", "max_bytes": -1}], "'neg'"),
        ([{"id": "boolsize", "max_tokens": True}], "'boolsize'"),
        ([{"id": "glob", "models_deny": [""]}], "'glob'"),
        ([{"id": "d", "keywords": ["x"]}, {"id": "d", "keywords": ["y"]}], "'d'"),
        ([{"keywords": ["x"]}], "#0"),
        ([{"id": "", "keywords": ["x"]}], "#0"),
        ([{"id": "ok", "keywords": ["x"]}, "not a rule"], "#1"),
    ],
)
def test_bad_rules_raise_config_error_naming_the_rule(rules: list[Any], fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        PolicyMatcher(rules)
    assert fragment in str(info.value)


def test_rules_must_be_a_list() -> None:
    with pytest.raises(ConfigError):
        PolicyMatcher({"id": "x"})  # type: ignore[arg-type]
    assert PolicyMatcher([]).check("anything") == []


def test_matcher_is_immutable() -> None:
    matcher = PolicyMatcher([{"id": "x", "keywords": ["x"]}])
    with pytest.raises(AttributeError):
        matcher._matcher = None  # type: ignore[misc]


def test_large_text_checks_run_in_parallel_threads() -> None:
    matcher = PolicyMatcher(
        [{"id": "k", "keywords": [f"needle{i}" for i in range(1000)], "whole_word": True}]
    )
    text = ("lorem ipsum dolor sit amet " * 8000) + " needle999 "
    results: list[list[str]] = []

    def work() -> None:
        results.append(ids(matcher, text))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert results == [["k"]] * 4


# -- property tests against a plain Python reference ------------------------------------

WORD = st.text(alphabet="abcAB _-", min_size=1, max_size=4)


def reference_keyword_rule(
    text: str, keywords: list[str], case_sensitive: bool, whole_word: bool
) -> bool:
    flags = 0 if case_sensitive else re.IGNORECASE
    for kw in keywords:
        body = re.escape(kw)
        pattern = rf"(?<!\w){body}(?!\w)" if whole_word else body
        if re.search(pattern, text, flags):
            return True
    return False


@settings(max_examples=300, deadline=None)
@given(
    text=st.text(alphabet="abcAB _-.", max_size=40),
    rules=st.lists(
        st.tuples(st.lists(WORD, min_size=1, max_size=3), st.booleans(), st.booleans()),
        min_size=1,
        max_size=4,
    ),
)
def test_keyword_rules_match_python_reference(
    text: str, rules: list[tuple[list[str], bool, bool]]
) -> None:
    specs = [
        {"id": f"r{i}", "keywords": kws, "case_sensitive": cs, "whole_word": ww}
        for i, (kws, cs, ww) in enumerate(rules)
    ]
    expected = [
        f"r{i}"
        for i, (kws, cs, ww) in enumerate(rules)
        if reference_keyword_rule(text, kws, cs, ww)
    ]
    assert ids(PolicyMatcher(specs), text) == expected


@settings(max_examples=200, deadline=None)
@given(
    glob=st.text(alphabet="ab*?-", max_size=6),
    model=st.text(alphabet="ab-", max_size=6),
)
def test_globs_match_fnmatch(glob: str, model: str) -> None:
    if not glob:
        return
    matcher = PolicyMatcher([{"id": "deny", "models_deny": [glob]}])
    assert bool(matcher.check("", model=model)) == fnmatch.fnmatchcase(model, glob)


LONG_WORD = st.text(alphabet="abAB_-", min_size=4, max_size=7)


@settings(max_examples=60, deadline=None)
@given(
    keywords=st.lists(LONG_WORD, min_size=80, max_size=120, unique=True),
    picks=st.lists(st.integers(min_value=0, max_value=79), max_size=4),
    noise=st.text(alphabet="abAB _-.", max_size=60),
    whole_word=st.booleans(),
    case_sensitive=st.booleans(),
)
def test_large_keyword_sets_match_python_reference(
    keywords: list[str],
    picks: list[int],
    noise: str,
    whole_word: bool,
    case_sensitive: bool,
) -> None:
    # 80+ keywords of 4+ bytes take the sampled 4-gram index instead of the automaton.
    text = noise + " ".join(keywords[i].swapcase() if i % 2 else keywords[i] for i in picks)
    chunks = [keywords[i : i + 20] for i in range(0, len(keywords), 20)]
    specs = [
        {"id": f"r{i}", "keywords": kws, "case_sensitive": case_sensitive, "whole_word": whole_word}
        for i, kws in enumerate(chunks)
    ]
    expected = [
        f"r{i}"
        for i, kws in enumerate(chunks)
        if reference_keyword_rule(text, kws, case_sensitive, whole_word)
    ]
    assert ids(PolicyMatcher(specs), text) == expected
