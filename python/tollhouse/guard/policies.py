"""Content policies: rules from the config (and from workspaces) compiled by the Rust
``PolicyMatcher``; this module decides what a match means.

Config section ``policies`` is a list of rules (or ``{rules: [...]}``) in the matcher's
shape (``id``, ``action`` block|warn, ``keywords``, ``regex``, ``models_allow``,
``models_deny``, ``max_bytes``, ``max_tokens``); those rules apply to every key.  A
workspace's rules (``/v1/workspaces/{id}/policies``, swapped in with
``PolicySet.replace_workspaces``) apply only to the keys of that workspace: each workspace
with rules gets its own matcher (config rules + its own), compiled when they change, and
the request picks it by the key's ``workspace_id`` (``PolicySet.of``).
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
DEFAULT_WORKSPACE = "default"  # a key's workspace unless it names one


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


@dataclass(frozen=True, slots=True, eq=False)
class Rules:
    """One compiled rule set: the config's rules, then one workspace's (if any)."""

    rules: tuple[dict[str, Any], ...]
    matcher: native.PolicyMatcher
    empty: bool
    needs_tokens: bool

    @classmethod
    def compile(cls, rules: Sequence[Mapping[str, Any]]) -> Rules:
        """Raises ``ConfigError`` when a rule does not compile."""
        owned = tuple(dict(r) for r in rules)
        matcher = native.PolicyMatcher(owned)
        return cls(owned, matcher, matcher.rule_count() == 0, _needs_tokens(owned))

    def check(self, text: str, model: str | None, tokens: int | None = None) -> Verdict:
        if self.empty:
            return NO_VIOLATIONS
        matches = self.matcher.check(text, model, tokens)
        if not matches:
            return NO_VIOLATIONS
        return Verdict(
            [m for m in matches if m.action == "block"],
            [m for m in matches if m.action != "block"],
        )


class PolicySet:
    """The config's rules apply to every key; a workspace's rules only to its keys.

    Each workspace with rules has its own compiled matcher (config rules first), built
    when its rules change; ``of(workspace_id)`` picks it with one dict lookup, and a
    workspace without rules gets the config-only matcher.
    """

    def __init__(self, rules: Sequence[Mapping[str, Any]] = ()) -> None:
        self._base = Rules.compile(rules)
        self._workspaces: dict[str, Rules] = {}
        self._own: dict[str, list[dict[str, Any]]] = {}  # each workspace's own rules

    @classmethod
    def from_config(cls, section: Any) -> PolicySet:
        return cls(config_rules(section))

    def of(self, workspace_id: str) -> Rules:
        """The rules a key of ``workspace_id`` is checked against."""
        return self._workspaces.get(workspace_id, self._base)

    def rules_of(self, workspace_id: str) -> list[dict[str, Any]]:
        return list(self.of(workspace_id).rules)

    def _compiled(self, workspace: str, rules: list[dict[str, Any]]) -> Rules:
        old = self._workspaces.get(workspace)
        if old is not None and self._own.get(workspace) == rules:
            return old  # unchanged: no recompile every reload
        return Rules.compile([*self._base.rules, *rules])

    def replace_workspace(self, workspace: str, rules: Sequence[Mapping[str, Any]]) -> None:
        """Swap in one workspace's rules (raises ``ConfigError`` and keeps the old
        matcher when they do not compile)."""
        own = [dict(r) for r in rules]
        workspaces, mine = dict(self._workspaces), dict(self._own)
        if own:
            workspaces[workspace] = self._compiled(workspace, own)
            mine[workspace] = own
        else:
            workspaces.pop(workspace, None)
            mine.pop(workspace, None)
        self._workspaces, self._own = workspaces, mine

    def replace_workspaces(self, rules: Mapping[str, list[dict[str, Any]]]) -> dict[str, str]:
        """Swap in every workspace's rules at once; workspaces left out have none.  A
        workspace whose rules do not compile keeps its old matcher (if any); the answer
        maps each such workspace to the error."""
        workspaces: dict[str, Rules] = {}
        mine: dict[str, list[dict[str, Any]]] = {}
        failed: dict[str, str] = {}
        for ws, own in rules.items():
            if not own:
                continue
            try:
                workspaces[ws] = self._compiled(ws, own)
                mine[ws] = own
            except ConfigError as exc:
                failed[ws] = exc.message
                if ws in self._workspaces:
                    workspaces[ws], mine[ws] = self._workspaces[ws], self._own[ws]
        self._workspaces, self._own = workspaces, mine
        return failed

    @property
    def has_workspaces(self) -> bool:
        return bool(self._workspaces)


def _needs_tokens(rules: Sequence[Mapping[str, Any]]) -> bool:
    return any(r.get("max_tokens") is not None for r in rules)
