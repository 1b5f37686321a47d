"""Content policies: rules from the config (and from workspaces) compiled by the Rust
``PolicyMatcher``; this module decides what a match means.

Config section ``policies`` is a list of rules (or ``{rules: [...]}``) in the matcher's
shape (``id``, ``action`` block|warn, ``keywords``, ``regex``, ``models_allow``,
``models_deny``, ``max_bytes``, ``max_tokens``).  Workspace rules are added with
``PolicySet.replace_workspace``; every change compiles a new matcher and swaps it in.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tollhouse import native
from tollhouse.errors import ConfigError


@dataclass(frozen=True, slots=True)
class Verdict:
    """The result of one check: ``blocks`` and ``warns`` are the matches by action."""

    blocks: list[native.PolicyMatch]
    warns: list[native.PolicyMatch]

    @property
    def allowed(self) -> bool:
        return not self.blocks

    def violations(self) -> list[dict[str, str]]:
        return [
            {"ruleId": m.rule_id, "action": m.action, "kind": m.kind, "detail": m.detail}
            for m in (*self.blocks, *self.warns)
        ]


NO_VIOLATIONS = Verdict([], [])


MATCHER_FIELDS = (
    "keywords",
    "regex",
    "models_allow",
    "models_deny",
    "max_bytes",
    "max_tokens",
    "case_sensitive",
    "whole_word",
)


def matcher_rule(rule_id: str, record: Mapping[str, Any]) -> dict[str, Any]:
    """The ``PolicyMatcher`` rule of a stored workspace policy record."""
    out: dict[str, Any] = {"id": rule_id, "action": record.get("action", "block")}
    out.update({k: record[k] for k in MATCHER_FIELDS if record.get(k) is not None})
    return out


def config_rules(section: Any) -> list[dict[str, Any]]:
    if section is None:
        return []
    if isinstance(section, Mapping):
        section = section.get("rules") or []
    if not isinstance(section, list) or not all(isinstance(r, Mapping) for r in section):
        raise ConfigError("policies: expected a list of rule mappings")
    return [dict(r) for r in section]


class PolicySet:
    """The current rules (config + every workspace) and their compiled matcher."""

    def __init__(self, rules: Sequence[Mapping[str, Any]] = ()) -> None:
        self._config = [dict(r) for r in rules]
        self._workspaces: dict[str, list[dict[str, Any]]] = {}
        self._matcher = native.PolicyMatcher(self._config)
        self._needs_tokens = _needs_tokens(self._config)

    @classmethod
    def from_config(cls, section: Any) -> PolicySet:
        return cls(config_rules(section))

    def all_rules(self) -> list[dict[str, Any]]:
        out = list(self._config)
        for rules in self._workspaces.values():
            out.extend(rules)
        return out

    def replace_workspace(self, workspace: str, rules: Sequence[Mapping[str, Any]]) -> None:
        """Swap in a workspace's rules (raises ``ConfigError`` and keeps the old matcher
        when they do not compile)."""
        candidate = dict(self._workspaces)
        candidate[workspace] = [dict(r) for r in rules]
        combined = list(self._config)
        for ws_rules in candidate.values():
            combined.extend(ws_rules)
        matcher = native.PolicyMatcher(combined)
        self._workspaces, self._matcher = candidate, matcher
        self._needs_tokens = _needs_tokens(combined)

    def replace_workspaces(self, rules: dict[str, list[dict[str, Any]]]) -> None:
        """Swap in every workspace's rules at once (``ConfigError``: old ones kept)."""
        combined = list(self._config)
        for ws_rules in rules.values():
            combined.extend(ws_rules)
        matcher = native.PolicyMatcher(combined)
        self._workspaces, self._matcher = dict(rules), matcher
        self._needs_tokens = _needs_tokens(combined)

    @property
    def has_workspaces(self) -> bool:
        return bool(self._workspaces)

    @property
    def empty(self) -> bool:
        return self._matcher.rule_count() == 0

    @property
    def needs_tokens(self) -> bool:
        return self._needs_tokens

    def check(self, text: str, model: str | None, tokens: int | None = None) -> Verdict:
        if self.empty:
            return NO_VIOLATIONS
        matches = self._matcher.check(text, model, tokens)
        if not matches:
            return NO_VIOLATIONS
        return Verdict(
            [m for m in matches if m.action == "block"],
            [m for m in matches if m.action != "block"],
        )


def _needs_tokens(rules: Sequence[Mapping[str, Any]]) -> bool:
    return any(r.get("max_tokens") is not None for r in rules)
